// Validation during emulator training through the compiled CLI, on a tiny data set: `valid.every` scores the
// weights during training (log.jsonl `validation` events), `valid.select=best` keeps the best-scoring weights in
// checkpoints/best.safetensors and saves them as the model (metrics.json names the step), a rerun with more steps
// goes on from the best score recorded, a run directory recorded before these settings existed still resumes, and
// the settings that cannot work together are usage errors (exit 2) before any work.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../../src/formats/safetensors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });
}

interface Validation { event: string; step: number; validLoss: number; best?: { step: number; score: number } | null }
const validations = (dir: string): Validation[] =>
  readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Validation).filter((e) => e.event === 'validation' && e.step !== undefined); // during training (the saved model's has none)

t.test('valid.every and valid.select=best in train-surrogate', { skip: built ? false : 'run `npm run build` first', timeout: 400_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const ae = join(dir, 'ae');
  const cache = join(dir, 'cache');
  const must = (args: string[]) => {
    const r = run(args);
    t.equal(r.status, 0, `${args[0]} exits 0${r.status === 0 ? '' : `: ${r.stderr.slice(-600)}`}`);
    return r;
  };
  must(['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '8', '--seed', '3']);
  must(['train-ae', '--data', data, '--run', ae, '--set', 'train.steps=20', '--set', 'train.warmup=2', '--set', 'train.batchSize=8', '--set', 'model.channels=[8,16]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=4', '--set', 'train.workers=1']);
  must(['cache', '--ae', ae, '--data', data, '--run', cache]);
  const tinyVit = ['--set', 'train.workers=1', '--set', 'train.warmup=1', '--set', 'train.batchSize=4', '--set', 'train.lr=0.01', '--set', 'model.width=16', '--set', 'model.depth=1', '--set', 'model.heads=2', '--set', 'train.shuffleBuffer=8', '--set', 'valid.batches=2'];

  const sur = join(dir, 'sur');
  const select = [...tinyVit, '--set', 'valid.every=2', '--set', 'valid.select=best'];
  must(['train-surrogate', '--cache', cache, '--run', sur, ...select, '--set', 'train.steps=6']);
  const modelEvent = readFileSync(join(sur, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; checkpointing?: boolean }).find((e) => e.event === 'model');
  t.equal(modelEvent?.checkpointing, false, 'model.checkpointing auto: a tiny ViT keeps its tape (logged)');
  const first = validations(sur);
  t.same(first.map((v) => v.step), [2, 4, 6], 'scored every 2 steps and at the last');
  const min = (vs: Validation[]) => vs.reduce((a, b) => (b.validLoss < a.validLoss ? b : a));
  const best = await readSafetensors(join(sur, 'checkpoints', 'best.safetensors'));
  t.equal(Number(best.metadata.step), min(first).step, `best.safetensors holds the best-scoring step (${min(first).step})`);
  t.equal(Number(best.metadata.validLoss), min(first).validLoss, 'with its score');
  const model = await readSafetensors(join(sur, 'emulator.safetensors'));
  let equal = 0;
  for (const [name, tensor] of best.tensors) {
    const saved = model.tensors.get(name)!.data as Float32Array;
    if ((tensor.data as Float32Array).every((v, i) => Object.is(v, saved[i]))) equal++;
  }
  t.equal(equal, best.tensors.size, 'the saved model is the best weights, tensor for tensor');
  const metrics = JSON.parse(readFileSync(join(sur, 'metrics.json'), 'utf8')) as { steps: number; selectedStep: number; select: string; validLoss: number };
  t.same([metrics.steps, metrics.selectedStep, metrics.select], [6, min(first).step, 'best'], 'metrics.json: 6 steps trained, the selected step');
  // The final validation loss (of the saved file, same batches and noise) is the selected weights' score.
  t.ok(Math.abs(metrics.validLoss - min(first).validLoss) <= 1e-6 * Math.abs(min(first).validLoss), `metrics validLoss ${metrics.validLoss} = the selected score`);

  // A rerun with more steps: scored at 8 and 10, the selection over all five scores.
  must(['train-surrogate', '--cache', cache, '--run', sur, ...select, '--set', 'train.steps=10']);
  const all = validations(sur);
  t.same(all.map((v) => v.step), [2, 4, 6, 8, 10], 'the rerun scores steps 8 and 10');
  const resumedMetrics = JSON.parse(readFileSync(join(sur, 'metrics.json'), 'utf8')) as { selectedStep: number };
  t.equal(resumedMetrics.selectedStep, min(all).step, `the selection spans both sessions (step ${min(all).step})`);

  // valid.every alone: the scores are logged, the last weights are the model, no best file.
  const last = join(dir, 'last');
  must(['train-surrogate', '--cache', cache, '--run', last, ...tinyVit, '--set', 'valid.every=3', '--set', 'train.steps=6']);
  t.same(validations(last).map((v) => v.step), [3, 6], 'scored at 3 and 6');
  t.notOk(existsSync(join(last, 'checkpoints', 'best.safetensors')), 'no best file without valid.select=best');
  t.equal((JSON.parse(readFileSync(join(last, 'metrics.json'), 'utf8')) as { selectedStep: number }).selectedStep, 6, 'the last weights are the model');

  // A run recorded before valid.every / valid.select existed resumes (at their defaults).
  const record = JSON.parse(readFileSync(join(dir, 'last', 'run.json'), 'utf8')) as { config: { valid: Record<string, unknown> } };
  const old = join(dir, 'old');
  must(['train-surrogate', '--cache', cache, '--run', old, ...tinyVit, '--set', 'train.steps=2']);
  const oldRecord = JSON.parse(readFileSync(join(old, 'run.json'), 'utf8')) as { config: { valid: Record<string, unknown> } };
  delete oldRecord.config.valid.every;
  delete oldRecord.config.valid.select;
  writeFileSync(join(old, 'run.json'), JSON.stringify(oldRecord));
  t.ok(record.config.valid.every === 3, 'recorded settings hold valid.every');
  must(['train-surrogate', '--cache', cache, '--run', old, ...tinyVit, '--set', 'train.steps=3']);

  for (const [sets, message] of [
    [['valid.select=best'], /valid\.select "best" chooses among the scores during training: set valid\.every > 0 too/],
    [['valid.select=best', 'valid.every=2', 'train.ema=0.9'], /valid\.select "best" and train\.ema both choose the weights to keep/],
    [['valid.select=first'], /valid\.select must be "last" or "best", got "first"/],
    [['valid.every=-1'], /valid\.every must be a whole number of steps/],
    [['model.checkpointing=sometimes'], /model\.checkpointing must be "auto", "on" or "off", got "sometimes"/],
  ] as const) {
    const badRun = join(dir, `bad-${sets.join('-')}`);
    const bad = run(['train-surrogate', '--cache', cache, '--run', badRun, ...tinyVit, ...sets.flatMap((s) => ['--set', s])]);
    t.equal(bad.status, 2, `${sets.join(' ')}: a usage error`);
    t.match(bad.stderr, message);
    t.notOk(existsSync(join(badRun, 'checkpoints', 'last.safetensors')), 'no training happened');
  }
});
