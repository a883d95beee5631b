/**
 * The time cost of guidance per rollout window, at the demo's scale: a DCAE (channels 16-32-64-128, 32x32x5 ->
 * 4x4x16) as the decoder under the likelihood and a ViT (width 96, depth 4, 4 heads, windows of 5 states of 4x4
 * tokens) as the denoiser, 16 steps of 3rd-order Adams-Bashforth, an ensemble of 4, context 1. One window is
 * timed unguided, with MMPS (1 and 2 GMRES iterations, its default solver; the Tweedie covariance up to noise level 1
 * then the isotropic one, as `eval` does; the isotropic covariance alone) and with DPS, every one of its 4 new
 * states observed by 1-in-16 subsampling (stride 16 along both axes: 2x2 pixels x 5 fields) with noise 0.1.
 *
 * Figures: seconds per window for each, and the ratio guided / unguided. `BENCH_GUIDANCE_WINDOWS` sets how many
 * windows are timed (default 1). Untrained weights: the cost does not depend on them.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/models/backend/index.js';
import { createDcae, createVit, presets } from '../src/models/nn/index.js';
import { diffusionEmulator, dps, mmps, rollout, vitBackbone, type Guidance, type LeadObservation } from '../src/models/diffusion/index.js';
import { subsample } from '../src/physics/observe.js';

const BENCH = 'guidance';
const windows = Number(process.env.BENCH_GUIDANCE_WINDOWS ?? 1);
const [ensemble, windowSize, context] = [4, 5, 1];

function emit(figure: string, value: number, unit: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ bench: BENCH, figure, value: Number(value.toPrecision(4)), unit, ...extra }));
}

const info = await selectBackend();
const dcae = createDcae({ inChannels: 5, latentChannels: 16, channels: [16, 32, 64, 128], blocks: 1, seed: 0 });
const vit = createVit(presets['vit-small']({ width: 96, depth: 4, heads: 4, tokens: [windowSize, 4, 4], checkpointing: false, seed: 0 }));
const emulator = diffusionEmulator(vitBackbone(vit), { sampling: { sampler: 'ab', steps: 16, order: 3 } });
const operator = subsample({ shape: [32, 32], channels: ['energy', 'density', 'pressure', 'momentum_x', 'momentum_y'] }, { stride: 16, noise: 0.1 });
const decoder = (z: tf.Tensor4D) => dcae.decode(z);
const horizon = windows * (windowSize - context);
const start = { states: Float32Array.from({ length: 4 * 4 * 16 }, (_, i) => Math.sin(i)), shape: [1, 4, 4, 16] as const, labels: null };

async function* observations(): AsyncGenerator<LeadObservation> {
  for (let lead = 1; lead <= horizon; lead++) yield { lead, values: Float32Array.from({ length: operator.size }, (_, i) => Math.cos(i + lead)) };
}

async function timeWindow(guidance: Guidance | null): Promise<number> {
  const t0 = performance.now();
  const options = { horizon, ensemble, window: windowSize, context, seed: 0 };
  const states = guidance ? rollout(emulator, start, { ...options, guidance: { guidance, operator, decoder, observations: observations() } }) : rollout(emulator, start, options);
  for await (const _ of states);
  return (performance.now() - t0) / 1000 / windows;
}

await timeWindow(null); // warm-up (kernel set-up, wasm memory growth)
const plain = await timeWindow(null);
const extra = { backend: info.name, ensemble, steps: 16, windows, note: 'machine shared by several engineers (2 cores): noisy' };
emit('unguided window (demo scale)', plain, 's', extra);
const variants: Array<[string, Guidance]> = [
  ['mmps, 1 iteration', mmps({ iterations: 1 })],
  ['mmps, 2 iterations', mmps({ iterations: 2 })],
  ['mmps, Tweedie covariance up to sigma 1 then isotropic (eval default)', mmps({ tweedieUpTo: 1 })],
  ['mmps, isotropic covariance, 1 CG iteration', mmps({ covariance: 'isotropic', solver: 'cg' })],
  ['dps', dps()],
];
for (const [name, g] of variants) {
  const seconds = await timeWindow(g);
  emit(`guided window, ${name} (demo scale)`, seconds, 's', extra);
  emit(`guided / unguided, ${name}`, seconds / plain, 'x', extra);
}
dcae.dispose();
vit.dispose();
