/**
 * The pipelines on the webgpu backend: a tiny generate -> train-ae -> cache -> train-diffusion -> eval run with
 * WELLSPRING_BACKEND=webgpu, whose checkpoints load on wasm (the same safetensors) and score the same there; and a
 * device failure in the middle of training: the run stops with the device's message, keeps its last periodic
 * checkpoint, and a rerun resumes from it. Skips where no WebGPU adapter can be had.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { findWebgpuAdapter, simulateWebgpuFailure } from '../../src/models/backend/webgpu.js';
import { selectBackend } from '../../src/models/backend/select.js';
import { Trainer } from '../../src/models/train/trainer.js';
import { Rng } from '../../src/streams/random.js';
import { openRunDir } from '../../pipelines/cli/run-dir.js';
import { resumeTrainer, runTraining } from '../../pipelines/jobs/training.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const unavailable = await findWebgpuAdapter().then(
  () => (existsSync(cli) ? false : 'run `npm run build` first'),
  (err: Error) => `no WebGPU adapter here: ${err.message}`,
);

function ok(t: Tap.Test, backend: string, args: string[]) {
  const env = { ...process.env, WELLSPRING_BACKEND: backend, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
  t.equal(r.status, 0, `wellspring ${args[0]} on ${backend} exits 0${r.status === 0 ? '' : `: ${r.stderr.slice(-800)}`}`);
  return r;
}

t.test('a tiny pipeline end to end on webgpu; its runs load and score the same on wasm', { skip: unavailable, timeout: 600_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const ae = join(dir, 'ae');
  ok(t, 'wasm', ['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '8', '--seed', '2']);
  const tinyAe = ['--set', 'train.steps=30', '--set', 'train.warmup=5', '--set', 'train.batchSize=4', '--set', 'train.lr=0.003', '--set', 'model.channels=[8,16]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=8', '--set', 'train.checkpointEvery=10'];
  const trained = ok(t, 'webgpu', ['train-ae', '--data', data, '--run', ae, ...tinyAe]);
  t.match(trained.stderr, /backend: webgpu on (GPU|CPU) \(@tensorflow\/tfjs-backend-webgpu; adapter: /, 'train-ae ran on webgpu and names the adapter');
  const log = readFileSync(join(ae, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; backend?: string; adapter?: object });
  t.equal(log.find((l) => l.event === 'backend')?.backend, 'webgpu', 'the run log records the backend');
  t.ok(log.find((l) => l.event === 'backend')?.adapter, 'and the adapter');
  const aeMetrics = JSON.parse(readFileSync(join(ae, 'metrics.json'), 'utf8')) as { vrmseMean: number; baselineVrmseMean: number };
  t.ok(aeMetrics.vrmseMean < aeMetrics.baselineVrmseMean, `autoencoder VRMSE ${aeMetrics.vrmseMean.toFixed(3)} beats the mean-field baseline ${aeMetrics.baselineVrmseMean.toFixed(3)}`);

  const cache = join(dir, 'cache');
  ok(t, 'webgpu', ['cache', '--ae', ae, '--data', data, '--run', cache, '--set', 'splits.train=1']);
  const tinyVit = ['--set', 'train.steps=6', '--set', 'train.warmup=1', '--set', 'train.batchSize=4', '--set', 'model.width=16', '--set', 'model.depth=1', '--set', 'model.heads=2', '--set', 'train.shuffleBuffer=8', '--set', 'sampling.steps=2'];
  ok(t, 'webgpu', ['train-surrogate', '--cache', cache, '--run', join(dir, 'sur'), ...tinyVit.slice(0, -2)]);
  ok(t, 'webgpu', ['train-diffusion', '--cache', cache, '--run', join(dir, 'dif'), ...tinyVit]);
  const m = JSON.parse(readFileSync(join(dir, 'dif', 'metrics.json'), 'utf8')) as { validLoss: number; steps: number };
  t.ok(Number.isFinite(m.validLoss) && m.steps === 6, `diffusion: 6 steps, finite validation loss ${m.validLoss}`);

  // The autoencoder's reconstruction scores, evaluated on webgpu and on wasm from the same webgpu-trained run.
  const scores: Record<string, number> = {};
  for (const backend of ['webgpu', 'wasm']) {
    const evalRun = join(dir, `eval-${backend}`);
    ok(t, backend, ['eval', '--ae', ae, '--cache', cache, '--data', data, '--surrogate', join(dir, 'sur'), '--diffusion', join(dir, 'dif'), '--run', evalRun, '--set', 'ensemble=2', '--set', 'bands=1-7']);
    const saved = JSON.parse(readFileSync(join(evalRun, 'results', 'results.json'), 'utf8')) as {
      aggregates: { bandRows: Array<{ model: string; field: string; metrics: { vrmse: { mean: number } } }> };
    };
    const row = saved.aggregates.bandRows.find((r) => r.model === 'autoencoder' && r.field === 'all');
    scores[backend] = row!.metrics.vrmse.mean;
  }
  t.ok(Number.isFinite(scores.webgpu), `reconstruction VRMSE on webgpu ${scores.webgpu}`);
  t.ok(Math.abs(scores.webgpu - scores.wasm) <= 1e-4 * scores.wasm, `equals the score on wasm (${scores.wasm}) to 1e-4`);
});

t.test('a device failure stops training with its message; the rerun resumes from the last checkpoint', { skip: unavailable }, async (t) => {
  const dir = t.testdir();
  await selectBackend({ prefer: 'webgpu' });
  const rng = new Rng(4);
  const make = () => {
    const w = tf.variable(tf.tensor(rng.normalArray(8), [8, 1]));
    const params = new Map([['w', w]]);
    const trainer = new Trainer<tf.Tensor>({ params, loss: (x) => x.matMul(w).square().mean() as tf.Scalar, optimizer: { lr: 0.01 } });
    return { trainer, params };
  };
  const batches = async function* (from: number, failAt?: number) {
    for (let i = from; ; i++) {
      if (i === failAt) simulateWebgpuFailure('WebGPU device lost (unknown): simulated in the test');
      yield tf.tensor(new Rng(100 + i).normalArray(16), [2, 8]);
    }
  };
  const run = await openRunDir(join(dir, 'run'), 'test', {});
  const first = make();
  const checkpoint = await resumeTrainer(first.trainer, run);
  const loop = { run, checkpoint, checkpointEvery: 5, steps: 20, label: 'test' };
  await t.rejects(runTraining({ ...loop, trainer: first.trainer, batches: batches(0, 12) }), /WebGPU device lost \(unknown\): simulated in the test/);
  simulateWebgpuFailure(undefined);
  const events = readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; step?: number; message?: string });
  const failed = events.find((e) => e.event === 'device-error');
  t.ok(failed, 'the run log records the device error');
  t.match(failed?.message ?? '', /simulated in the test.*resume from its last checkpoint/);
  tf.dispose([...first.params.values()]);

  const second = make();
  await resumeTrainer(second.trainer, run);
  t.equal(second.trainer.step, 10, 'the rerun resumes from the last periodic checkpoint (step 10), not from the failed state');
  await runTraining({ ...loop, trainer: second.trainer, batches: batches(second.trainer.step) });
  const third = make();
  await resumeTrainer(third.trainer, run);
  t.equal(third.trainer.step, 20, 'and finishes');
  third.trainer.dispose();
  tf.dispose([...second.params.values(), ...third.params.values()]);
  run.release();
});
