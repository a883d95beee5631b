/**
 * Rollout throughput of the diffusion emulator: `vit-small` (src/models/nn presets), EDM preconditioning on the
 * log-logit schedule, 16 steps of 3rd-order Adams-Bashforth, an ensemble of 16 members batched together, windows
 * of 5 latent states with context 1 (4 new states per member per window). Then, in the same run, the same
 * sampling loop in PyTorch on the CPU (bench/torch_sampling.py, 2 threads) when python3 with torch is present.
 *
 * Figures: latent states per second (members x lead times), ms per denoiser call, and the PyTorch/wellspring
 * ratio. `BENCH_DIFFUSION_WINDOWS` sets how many windows are timed (default 1).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/models/backend/index.js';
import { countParameters, createVit, presets } from '../src/models/nn/index.js';
import { diffusionEmulator, rollout, vitBackbone } from '../src/models/diffusion/index.js';

const BENCH = 'diffusion';
const FIGURE = 'rollout throughput (vit-small, AB3 16 steps, ensemble 16)';
const windows = Number(process.env.BENCH_DIFFUSION_WINDOWS ?? 1);
const [ensemble, steps, windowSize, context] = [16, 16, 5, 1];

function emit(figure: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, figure, value: Number(value.toPrecision(4)), unit, ...extra }));
}

const info = await selectBackend();
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
const t0 = performance.now();
let states = 0;
for await (const s of rollout(emulator, start, { horizon, ensemble, window: windowSize, context, seed: 0 })) states += s.shape[0];
const seconds = (performance.now() - t0) / 1000;
const throughput = states / seconds;
const context_ = {
  backend: info.name,
  params: countParameters(vit),
  windows,
  states,
  seconds: Number(seconds.toFixed(2)),
  note: 'machine shared by several engineers (2 cores): noisy',
};
emit(FIGURE, throughput, 'latent states/s', { impl: 'wellspring', ...context_ });
emit('denoiser call (vit-small, batch 16)', (1000 * seconds) / (windows * steps), 'ms', { impl: 'wellspring', backend: info.name });
vit.dispose();

// PyTorch on the CPU, same loop.
const script = join(dirname(fileURLToPath(import.meta.url)), '../../bench/torch_sampling.py');
const python = ['python3', '/usr/bin/python3'].find(
  (exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
);
if (!python) {
  console.log(JSON.stringify({ bench: BENCH, figure: `${FIGURE} [pytorch cpu]`, skipped: 'no python3 with torch found' }));
} else {
  const run = spawnSync(python, [script, '--threads', '2', '--windows', String(windows), '--ensemble', String(ensemble), '--steps', String(steps)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '2' },
  });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  if (run.status !== 0 || !line.startsWith('{')) {
    console.log(JSON.stringify({ bench: BENCH, figure: `${FIGURE} [pytorch cpu]`, skipped: `torch_sampling.py failed: ${run.stderr.trim().split('\n').pop()}` }));
  } else {
    const py = JSON.parse(line) as {
      states_per_second: number;
      ms_per_denoiser_call: number;
      params: number;
      threads: number;
      torch: string;
      seconds: number;
      blas: string;
      path: string;
    };
    emit(FIGURE, py.states_per_second, 'latent states/s', {
      impl: 'pytorch-cpu',
      threads: py.threads,
      torch: py.torch,
      blas: py.blas,
      matmuls: py.path,
      params: py.params,
      seconds: Number(py.seconds.toFixed(2)),
    });
    emit('denoiser call (vit-small, batch 16)', py.ms_per_denoiser_call, 'ms', { impl: 'pytorch-cpu', threads: py.threads });
    emit('pytorch / wellspring throughput ratio', py.states_per_second / throughput, 'x', { wellspring: info.name, pytorch_threads: py.threads });
  }
}
