/**
 * Rollout throughput of the diffusion emulator: `vit-small` (src/models/nn presets), EDM preconditioning on the
 * log-logit schedule, 16 steps of 3rd-order Adams-Bashforth, an ensemble of 16 members, windows of 5 latent
 * states with context 1 (4 new states per member per window). wellspring runs it two ways: on rollout worker
 * threads (src/models/rollout-workers.ts: the members split over `BENCH_DIFFUSION_WORKERS` workers, default one
 * per core, each batching its members; the headline figure, its worker count in `workers`) and on the main
 * thread alone (all 16 members batched; the `[1 thread]` figure). Then, in the same run, the same sampling loop in
 * PyTorch on the CPU (bench/torch_sampling.py, one thread per core, both its oneDNN and its BLAS path) when
 * python3 with torch is present.
 *
 * Conditions: the runs interleave (workers, main thread, PyTorch paths, then again) over
 * `BENCH_DIFFUSION_ROUNDS` rounds (default 3) and every figure is a median over rounds, with the load averages
 * before and after, the CPU used by other processes meanwhile and `underLoad: true` when bench/conditions.ts's
 * rule says the machine was not quiet. The workers' speedup over the main thread is the median of the per-round
 * ratios (each pair measured back to back, so slow drifts in the machine's load cancel).
 *
 * Figures: latent states per second (members x lead times), ms per denoiser call (main thread), the workers'
 * speedup and the PyTorch/wellspring ratio (PyTorch's faster path against the workers).
 * `BENCH_DIFFUSION_WINDOWS` sets how many windows each run times (default 1).
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/models/backend/index.js';
import { countParameters, createVit, presets } from '../src/models/nn/index.js';
import { diffusionEmulator, rollout, vitBackbone } from '../src/models/diffusion/index.js';
import { RolloutWorkers } from '../src/models/rollout-workers.js';
import { conditions, median, startInterval } from './conditions.js';
import { profileStep } from './profile.js';

const BENCH = 'diffusion';
const FIGURE = 'rollout throughput (vit-small, AB3 16 steps, ensemble 16)';
const windows = Number(process.env.BENCH_DIFFUSION_WINDOWS ?? 1);
const rounds = Number(process.env.BENCH_DIFFUSION_ROUNDS ?? 3);
const [ensemble, steps, windowSize, context] = [16, 16, 5, 1];

function emit(figure: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, figure, value: Number(value.toPrecision(4)), unit, ...extra }));
}

const info = await selectBackend();
console.log(JSON.stringify({ bench: BENCH, figure: 'conditions at start', ...conditions() }));
const vitConfig = presets['vit-small']({ seed: 0 });
const vit = createVit(vitConfig);
const [L, H, W] = vit.config.tokens!;
const C = vit.config.channels;
const sampling = { sampler: 'ab' as const, steps, order: 3 };
const emulator = diffusionEmulator(vitBackbone(vit), { sampling });
// The same emulator on worker threads (each rebuilds it from the spec and copies the weights).
const pool = await RolloutWorkers.start(
  { spec: { kind: 'diffusion', vit: vitConfig, formulation: 'diffusion', sampling }, vit },
  { workers: Number(process.env.BENCH_DIFFUSION_WORKERS ?? 0) },
);

// Warm-up: one denoiser call at the benchmark's batch size (kernel set-up, wasm memory growth).
tf.tidy(() => {
  const x = tf.zeros([ensemble, L, H, W, C]) as tf.Tensor5D;
  const mask = tf.zeros([ensemble, L]) as tf.Tensor2D;
  emulator.denoiser(x, 0.5, mask, null).dataSync();
});

const start = {
  states: Float32Array.from({ length: H * W * C }, (_, i) => Math.sin(i)),
  shape: [1, H, W, C] as const,
  labels: null,
};
const horizon = windows * (windowSize - context);
const rolloutOptions = { horizon, ensemble, window: windowSize, context, seed: 0 };
/** One wellspring rollout, on the workers or on the main thread: latent states per second. */
async function ours(on: 'workers' | 'main'): Promise<number> {
  const t0 = performance.now();
  let states = 0;
  const stream = on === 'workers' ? pool.rollout(start, rolloutOptions) : rollout(emulator, start, rolloutOptions);
  for await (const s of stream) states += s.shape[0];
  return states / ((performance.now() - t0) / 1000);
}
// Warm-up of the workers: one window with one member each (kernel set-up).
for await (const _ of pool.rollout(start, { ...rolloutOptions, horizon: 1, ensemble: pool.workers }));

// PyTorch on the CPU, same loop, one thread per core, both of its matrix-product paths (see torch_sampling.py).
const script = join(dirname(fileURLToPath(import.meta.url)), '../../bench/torch_sampling.py');
const python = ['python3', '/usr/bin/python3'].find(
  (exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
);
const threads = cpus().length;
interface TorchRun { states_per_second: number; ms_per_denoiser_call: number; threads: number; torch: string; blas: string; blasBuild: string; path: string }
let torchError: string | undefined = python ? undefined : 'no python3 with torch found (apt-get install python3-torch)';
function torch(path: string): TorchRun | undefined {
  if (torchError) return undefined;
  const args = [script, '--threads', String(threads), '--windows', String(windows), '--ensemble', String(ensemble), '--steps', String(steps), '--path', path];
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const run = spawnSync(python!, args, { encoding: 'utf8', env });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !line.startsWith('{')) {
    torchError = `torch_sampling.py failed: ${run.stderr.trim().split('\n').pop()}`;
    return undefined;
  }
  return JSON.parse(line) as TorchRun;
}

// Rounds: wellspring on the workers, on the main thread, then PyTorch on each path (A B C D A B C D ...); figures
// are medians over rounds.
const paths = ['onednn', 'plain'];
const oursRuns: number[] = [];
const mainRuns: number[] = [];
const torchRuns = new Map<string, TorchRun[]>(paths.map((p) => [p, []]));
const end = startInterval();
for (let r = 0; r < rounds; r++) {
  oursRuns.push(await ours('workers'));
  mainRuns.push(await ours('main'));
  for (const p of paths) {
    const run = torch(p);
    if (run) torchRuns.get(p)!.push(run);
  }
}
const cond = end();
await pool.close();
const throughput = median(oursRuns);
const mainThroughput = median(mainRuns);
const rounded = (values: number[]) => values.map((v) => Number(v.toPrecision(4)));
emit(FIGURE, throughput, 'latent states/s', {
  impl: 'wellspring',
  backend: info.name,
  workers: pool.workers,
  membersPerWorker: `${Math.ceil(ensemble / pool.workers)} at most`,
  params: countParameters(vit),
  windows,
  rounds,
  roundValues: rounded(oursRuns),
  ...cond,
});
emit(`${FIGURE} [1 thread]`, mainThroughput, 'latent states/s', {
  impl: 'wellspring',
  backend: info.name,
  workers: 0,
  note: 'the main thread alone, all members batched',
  roundValues: rounded(mainRuns),
  ...cond,
});
const speedups = oursRuns.map((v, r) => v / mainRuns[r]!);
emit(`rollout workers speedup (${pool.workers} workers / 1 thread)`, median(speedups), 'x', {
  note: 'median of per-round ratios, each pair run back to back',
  roundValues: rounded(speedups),
  cores: threads,
  underLoad: cond.underLoad,
});
emit('denoiser call (vit-small, batch 16)', (1000 * windows * (windowSize - context) * ensemble) / mainThroughput / (windows * steps), 'ms', { impl: 'wellspring', backend: info.name, thread: 'main', underLoad: cond.underLoad });
{
  // Kernel profile of one denoiser call at the rollout's batch size.
  const x = tf.randomNormal([ensemble, L, H, W, C], 0, 1, 'float32', 1) as tf.Tensor5D;
  const mask = tf.zeros([ensemble, L]) as tf.Tensor2D;
  const { stepMs, kernels } = await profileStep(async () => {
    const y = tf.tidy(() => emulator.denoiser(x, 0.5, mask, null));
    await y.data();
    y.dispose();
  });
  tf.dispose([x, mask]);
  console.log(JSON.stringify({ bench: BENCH, figure: 'kernel profile, denoiser call (vit-small, batch 16)', stepMs: Math.round(stepMs), unit: '[op, ms, share of call]', kernels }));
}
vit.dispose();

if (torchError) {
  console.log(JSON.stringify({ bench: BENCH, figure: `${FIGURE} [pytorch cpu]`, skipped: torchError }));
} else {
  let best: { path: string; value: number } | undefined;
  for (const [path, runs] of torchRuns) {
    const value = median(runs.map((r) => r.states_per_second));
    const last = runs[runs.length - 1]!;
    emit(`${FIGURE} [pytorch cpu, ${path}]`, value, 'latent states/s', {
      impl: 'pytorch-cpu',
      path,
      threads: last.threads,
      torch: last.torch,
      blas: last.blas,
      blasBuild: last.blasBuild,
      roundValues: runs.map((r) => Number(r.states_per_second.toPrecision(4))),
      msPerDenoiserCall: Number(median(runs.map((r) => r.ms_per_denoiser_call)).toPrecision(4)),
      ...cond,
    });
    if (!best || value > best.value) best = { path, value };
  }
  emit('pytorch / wellspring throughput ratio', best!.value / throughput, 'x', {
    pytorchPath: best!.path,
    pytorchThreads: threads,
    wellspringWorkers: pool.workers,
    note: 'medians over interleaved rounds; PyTorch = its faster path',
    underLoad: cond.underLoad,
  });
}
console.log(JSON.stringify({ bench: BENCH, figure: 'conditions at end', ...conditions() }));
