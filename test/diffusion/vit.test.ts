/**
 * The emulators on the project's space-time ViT (src/models/nn), through `vitBackbone`: the frame mask becomes
 * the ViT's mask channels, c_noise its noise input, labels its label input. A tiny ViT trains a few steps as a
 * diffusion model and as a surrogate (the loss goes down) and rolls out with labels.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { createVit } from '../../src/models/nn/index.js';
import { Trainer, cosineSchedule } from '../../src/models/train/index.js';
import { pipe } from '../../src/streams/core.js';
import { map } from '../../src/streams/basic.js';
import { Rng } from '../../src/streams/random.js';
import {
  diffusionEmulator,
  emulatorBatches,
  windowBatchTensors,
  emulatorLoss,
  drawContextCounts,
  frameMaskFromCounts,
  rollout,
  surrogateEmulator,
  vitBackbone,
  type Emulator,
  type LatentTrajectory,
} from '../../src/models/diffusion/index.js';
import { collect } from '../../src/sinks/basic.js';

await selectBackend({ prefer: 'wasm' });

const [L, H, W, C, P] = [5, 2, 2, 2, 3];

/** Smooth windows: each frame is a fixed pattern scaled by a label-dependent decay. */
function batch(rng: Rng, B: number) {
  const x = new Float32Array(B * L * H * W * C);
  const labels = new Float32Array(B * P);
  for (let b = 0; b < B; b++) {
    const decay = 0.5 + 0.4 * rng.uniform();
    labels.set([decay, 1, -1], b * P);
    const amp = rng.normal();
    for (let l = 0; l < L; l++) for (let k = 0; k < H * W * C; k++) x[((b * L + l) * H * W * C) + k] = amp * decay ** l * Math.cos(k);
  }
  const mask = frameMaskFromCounts(drawContextCounts(rng, B, L), L);
  return { x: tf.tensor5d(x, [B, L, H, W, C]), mask: tf.tensor2d(mask, [B, L]), labels: tf.tensor2d(labels, [B, P]) };
}

function fit(emulator: Emulator, steps: number): number[] {
  const optimizer = tf.train.adam(2e-3);
  const rng = new Rng(1);
  const data = new Rng(2);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const b = batch(data, 16);
    const loss = optimizer.minimize(() => emulator.loss(b, rng), true, [...(emulator.backbone.variables ?? [])])!;
    losses.push(loss.dataSync()[0]);
    tf.dispose([loss, b.x, b.mask, b.labels]);
  }
  optimizer.dispose();
  return losses;
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

for (const kind of ['diffusion', 'surrogate'] as const) {
  t.test(`${kind} on a tiny ViT trains and rolls out`, async (t) => {
    const vit = createVit({ channels: C, width: 32, depth: 1, heads: 2, embeddingFeatures: 32, labelFeatures: P, noise: kind === 'diffusion', seed: 4 });
    const backbone = vitBackbone(vit);
    t.equal(backbone.variables?.length, vit.params.size, 'all ViT parameters are trainable variables');
    const emulator = kind === 'diffusion' ? diffusionEmulator(backbone, { sampling: { steps: 4 } }) : surrogateEmulator(backbone);
    const before = tf.memory().numTensors;
    const losses = fit(emulator, 60);
    t.ok(mean(losses.slice(-10)) < 0.8 * mean(losses.slice(0, 10)), `loss went down by > 20%: ${mean(losses.slice(0, 10)).toFixed(3)} -> ${mean(losses.slice(-10)).toFixed(3)}`);
    const start = { states: Float32Array.from({ length: H * W * C }, (_, k) => Math.cos(k)), shape: [1, H, W, C] as const, labels: Float32Array.from([0.7, 1, -1]) };
    const states = await collect(rollout(emulator, start, { horizon: 6, ensemble: 2, seed: 0 }));
    t.equal(states.length, 6);
    t.ok(states.every((s) => s.states.every(Number.isFinite)), 'finite states');
    t.equal(tf.memory().numTensors, before, 'no tensors leaked');
    vit.dispose();
  });
}

t.test('cached trajectories -> emulatorBatches -> Trainer stage with emulatorLoss', async (t) => {
  const vit = createVit({ channels: C, width: 32, depth: 1, heads: 2, embeddingFeatures: 32, labelFeatures: P, seed: 5 });
  const emulator = diffusionEmulator(vitBackbone(vit), { formulation: 'flow' });
  const steps = 24;
  const trainer = new Trainer({
    params: vit.params,
    loss: emulatorLoss(emulator),
    optimizer: { lr: 2e-3, betas: [0.9, 0.99], weightDecay: 0 },
    schedule: cosineSchedule({ lr: 2e-3, total: steps }),
    clipNorm: 1,
    seed: 3,
  });
  const rng = new Rng(8);
  const trajectories: LatentTrajectory[] = Array.from({ length: 6 }, (_, k) => {
    const decay = 0.5 + 0.4 * rng.uniform();
    const latents = new Float32Array(12 * H * W * C);
    const amp = rng.normal();
    for (let s = 0; s < 12; s++) for (let i = 0; i < H * W * C; i++) latents[s * H * W * C + i] = amp * decay ** s * Math.cos(i);
    return { latents, shape: [12, H, W, C], labels: Float32Array.from([decay, 1, -1]), origin: `synthetic-${k}` };
  });
  const counts: number[] = [];
  const losses: number[] = [];
  const epochs = async function* () {
    for (let e = 0; e < 3; e++) yield* trajectories;
  };
  for await (const report of pipe(epochs(), emulatorBatches({ batchSize: 6, seed: 17, shuffleBuffer: 32 }), map(windowBatchTensors), trainer.stage())) {
    losses.push(report.loss);
    counts.push(tf.memory().numTensors);
    if (losses.length === steps) break;
  }
  t.equal(losses.length, steps);
  t.ok(losses.every(Number.isFinite), 'finite losses');
  t.ok(mean(losses.slice(-6)) < mean(losses.slice(0, 6)), `loss goes down: ${mean(losses.slice(0, 6)).toFixed(3)} -> ${mean(losses.slice(-6)).toFixed(3)}`);
  // after the first step (which creates the optimiser moments) the count stays put: batches are disposed
  t.equal(counts[steps - 1], counts[0], `tensor count flat across training steps (${counts[0]} -> ${counts[steps - 1]})`);
  trainer.dispose();
  vit.dispose();
});
