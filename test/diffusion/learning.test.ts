/**
 * Real training on tiny problems: both formulations recover the modes of a 2D Gaussian mixture, and on a stable
 * linear latent dynamical system with noise, x_{k+1} = A x_k + w, both the deterministic surrogate and the
 * diffusion emulator learn the dynamics (one-step prediction close to the optimal A x_k) and the diffusion
 * ensemble is calibrated over a rollout (spread-skill ratio near 1).
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { Rng } from '../../src/streams/random.js';
import {
  diffusionEmulator,
  drawContextCounts,
  frameMaskFromCounts,
  rollout,
  sample,
  surrogateEmulator,
  unconditionedDenoiser,
  type Emulator,
} from '../../src/models/diffusion/index.js';
import { collect } from '../../src/sinks/basic.js';
import { mlpBackbone, train } from './mlp.js';

await selectBackend({ prefer: 'wasm' });

t.test('both formulations recover the modes of a 2D mixture', async (t) => {
  const modes = [
    [1, 1],
    [-1, 1],
    [1, -1],
    [-1, -1],
  ];
  const std = 0.15;
  for (const name of ['diffusion', 'flow'] as const) {
    const rng = new Rng(5);
    const draw = (B: number) => {
      const v = new Float32Array(B * 2);
      for (let i = 0; i < B; i++) {
        const m = modes[Math.floor(rng.uniform() * 4)];
        v[2 * i] = m[0] + std * rng.normal();
        v[2 * i + 1] = m[1] + std * rng.normal();
      }
      return tf.tensor5d(v, [B, 1, 1, 1, 2]);
    };
    const emulator = diffusionEmulator(mlpBackbone({ window: [1, 1, 1, 2] }), { formulation: name });
    train(emulator, () => ({ x: draw(256), mask: null, labels: null }), { steps: 400 });
    const n = 1000;
    const out = sample(unconditionedDenoiser(emulator.denoiser), emulator.formulation.schedule, [n, 1, 1, 1, 2], { seed: 1 });
    const o = out.dataSync();
    out.dispose();
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      const d = modes.map((m) => Math.hypot(o[2 * i] - m[0], o[2 * i + 1] - m[1]));
      const k = d.indexOf(Math.min(...d));
      if (d[k] < 3 * std) counts[k]++;
    }
    const near = counts.reduce((a, b) => a + b, 0) / n;
    t.ok(near > 0.85, `${name}: ${(100 * near).toFixed(1)}% of samples within 3 std of a mode (> 85%)`);
    t.ok(Math.min(...counts) > 0.18 * n && Math.max(...counts) < 0.32 * n, `${name}: every mode gets 18-32% of the samples (${counts})`);
    for (const v of emulator.backbone.variables ?? []) v.dispose();
  }
});

// A stable linear system: A = 0.9 x rotation(0.5 rad), noise std 0.4, stationary variance q^2 / (1 - 0.81).
const L = 5;
const C = 2;
const q = 0.4;
const A = [
  [0.9 * Math.cos(0.5), -0.9 * Math.sin(0.5)],
  [0.9 * Math.sin(0.5), 0.9 * Math.cos(0.5)],
];
const stationaryStd = Math.sqrt((q * q) / (1 - 0.81));
const apply = (x: number[]) => [A[0][0] * x[0] + A[0][1] * x[1], A[1][0] * x[0] + A[1][1] * x[1]];

function trajectory(rng: Rng, T: number): number[][] {
  let x = [stationaryStd * rng.normal(), stationaryStd * rng.normal()];
  const out = [x];
  for (let i = 1; i < T; i++) {
    const m = apply(x);
    x = [m[0] + q * rng.normal(), m[1] + q * rng.normal()];
    out.push(x);
  }
  return out;
}

function windows(rng: Rng, B: number) {
  const v = new Float32Array(B * L * C);
  for (let b = 0; b < B; b++) trajectory(rng, L).forEach((x, l) => v.set(x, (b * L + l) * C));
  const counts = drawContextCounts(rng, B, L);
  return { x: tf.tensor5d(v, [B, L, 1, 1, C]), mask: tf.tensor2d(frameMaskFromCounts(counts, L), [B, L]), labels: null };
}

/** Rolls `trajectories` test trajectories out `horizon` steps; per-lead skill (RMSE of the mean), spread, one-step error. */
async function evaluate(emulator: Emulator, members: number, trajectories: number, horizon: number) {
  const rng = new Rng(99);
  const mse = new Array<number>(horizon).fill(0);
  const variance = new Array<number>(horizon).fill(0);
  let oneStep = 0;
  for (let n = 0; n < trajectories; n++) {
    const truth = trajectory(rng, horizon + 1);
    const start = { states: Float32Array.from(truth[0]), shape: [1, 1, 1, C] as const, labels: null };
    const states = await collect(rollout(emulator, start, { horizon, ensemble: members, seed: n }));
    states.forEach((s, k) => {
      const mean = [0, 1].map((c) => Array.from({ length: members }, (_, m) => s.states[m * C + c]).reduce((a, b) => a + b) / members);
      mse[k] += ((mean[0] - truth[k + 1][0]) ** 2 + (mean[1] - truth[k + 1][1]) ** 2) / (2 * trajectories);
      for (let m = 0; m < members; m++) {
        variance[k] += ((s.states[m * C] - mean[0]) ** 2 + (s.states[m * C + 1] - mean[1]) ** 2) / (2 * members * trajectories);
      }
      if (k === 0) {
        const best = apply(truth[0]);
        oneStep += ((mean[0] - best[0]) ** 2 + (mean[1] - best[1]) ** 2) / (2 * trajectories);
      }
    });
  }
  const skill = mse.map(Math.sqrt);
  const spread = variance.map((v) => Math.sqrt(((members + 1) / Math.max(members - 1, 1)) * v));
  return { skill, spread, oneStep: Math.sqrt(oneStep) };
}

t.test('surrogate and diffusion emulator learn a linear latent dynamical system', async (t) => {
  const horizon = 12;
  const before = tf.memory().numTensors;

  const surrogate = surrogateEmulator(mlpBackbone({ window: [L, 1, 1, C], noise: false }));
  const dataRng = new Rng(11);
  train(surrogate, () => windows(dataRng, 128), { steps: 400 });
  const s = await evaluate(surrogate, 1, 32, horizon);
  // The optimal one-step prediction is A x_0 (its own error vs the truth is q = 0.4 per component).
  t.ok(s.oneStep < 0.08, `surrogate one-step RMSE vs the optimal A x: ${s.oneStep.toFixed(3)} < 0.08`);
  t.ok(s.skill[0] < 0.5, `surrogate one-step RMSE vs truth ${s.skill[0].toFixed(3)} < 0.5 (optimal 0.4)`);

  const diffusion = diffusionEmulator(mlpBackbone({ window: [L, 1, 1, C] }));
  train(diffusion, () => windows(dataRng, 128), { steps: 400 });
  const members = 16;
  const d = await evaluate(diffusion, members, 32, horizon);
  // The 16-member mean carries Monte Carlo noise of about 0.4 / sqrt(16) = 0.1 on top of the model's error.
  t.ok(d.oneStep < 0.2, `diffusion one-step RMSE of the ensemble mean vs A x: ${d.oneStep.toFixed(3)} < 0.2`);
  t.ok(d.skill[0] < 0.5, `diffusion one-step RMSE vs truth ${d.skill[0].toFixed(3)} < 0.5`);
  t.ok(Math.abs(d.spread[0] - q) < 0.1, `one-step ensemble spread ${d.spread[0].toFixed(3)} near the noise std ${q}`);
  const ratios = d.spread.map((v, k) => v / d.skill[k]);
  const meanRatio = ratios.reduce((a, b) => a + b) / ratios.length;
  t.ok(meanRatio > 0.8 && meanRatio < 1.25, `spread-skill ratio over ${horizon} leads: mean ${meanRatio.toFixed(2)} in [0.8, 1.25] (${ratios.map((r) => r.toFixed(2)).join(' ')})`);
  t.ok(ratios.every((r) => r > 0.6 && r < 1.6), 'every lead within [0.6, 1.6]');
  t.ok(d.skill[horizon - 1] < 1.2 * stationaryStd, `long-lead RMSE ${d.skill[horizon - 1].toFixed(2)} stays near the climatology ${stationaryStd.toFixed(2)} (stable rollout)`);

  for (const e of [surrogate, diffusion]) for (const v of e.backbone.variables ?? []) v.dispose();
  t.equal(tf.memory().numTensors, before, 'no tensors leaked by training and rollouts');
});
