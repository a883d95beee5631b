/**
 * Rollout throughput of the diffusion emulator: `vit-small` (src/models/nn presets), EDM preconditioning on the
 * log-logit schedule, 16 steps of 3rd-order Adams-Bashforth, an ensemble of 16 members batched together, windows
 * of 5 latent states with context 1 (4 new states per member per window). Then, in the same run, the same
 * sampling loop in PyTorch on the CPU (bench/torch_sampling.py, one thread per core, both its oneDNN and its BLAS
 * path) when python3 with torch is present.
 *
 * Conditions: wellspring and PyTorch runs interleave (A B A B ...) over `BENCH_DIFFUSION_ROUNDS` rounds (default
 * 3) and every figure is a median over rounds, with the load averages before and after, the CPU used by other
 * processes meanwhile and `underLoad: true` when bench/conditions.ts's rule says the machine was not quiet.
 *
 * Figures: latent states per second (members x lead times), ms per denoiser call, and the PyTorch/wellspring
 * ratio (PyTorch's faster path). `BENCH_DIFFUSION_WINDOWS` sets how many windows each run times (default 1).
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/models/backend/index.js';
import { countParameters, createVit, presets } from '../src/models/nn/index.js';
import { diffusionEmulator, rollout, vitBackbone } from '../src/models/diffusion/index.js';
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
const vit = createVit(presets['vit-small']({ seed: 0 }));
const [L, H, W] = vit.config.tokens!;
const C = vit.config.channels;
const emulator = diffusionEmulator(vitBackbone(vit), { sampling: { sampler: 'ab', steps, order: 3 } });

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
/** One wellspring rollout: latent states per second. */
async function ours(): Promise<number> {
  const t0 = performance.now();
  let states = 0;
  for await (const s of rollout(emulator, start, { horizon, ensemble, window: windowSize, context, seed: 0 })) states += s.shape[0];
  return states / ((performance.now() - t0) / 1000);
}

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

// Rounds: wellspring, then PyTorch on each path (A B C A B C ...); figures are medians over rounds.
const paths = ['onednn', 'plain'];
const oursRuns: number[] = [];
const torchRuns = new Map<string, TorchRun[]>(paths.map((p) => [p, []]));
const end = startInterval();
for (let r = 0; r < rounds; r++) {
  oursRuns.push(await ours());
  for (const p of paths) {
    const run = torch(p);
    if (run) torchRuns.get(p)!.push(run);
  }
}
const cond = end();
const throughput = median(oursRuns);
emit(FIGURE, throughput, 'latent states/s', {
  impl: 'wellspring',
  backend: info.name,
  params: countParameters(vit),
  windows,
  rounds,
  roundValues: oursRuns.map((v) => Number(v.toPrecision(4))),
  ...cond,
});
emit('denoiser call (vit-small, batch 16)', (1000 * windows * (windowSize - context) * ensemble) / throughput / (windows * steps), 'ms', { impl: 'wellspring', backend: info.name, underLoad: cond.underLoad });
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
    note: 'medians over interleaved rounds; PyTorch = its faster path',
    underLoad: cond.underLoad,
  });
}
console.log(JSON.stringify({ bench: BENCH, figure: 'conditions at end', ...conditions() }));
