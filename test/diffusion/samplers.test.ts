/**
 * Samplers driven by the exact denoiser of a Gaussian target. The deterministic samplers map the initial noise
 * affinely, so their output distribution is computed exactly (no Monte Carlo) by running them on the origin and
 * on scaled basis vectors; the stochastic sampler is checked by Monte Carlo with a fixed seed.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import {
  adamsBashforthSampler,
  adamsBashforthWeights,
  conditionedDenoiser,
  eulerSampler,
  formulation,
  heunSampler,
  sample,
  timeGrid,
  type IntegrationVariable,
  type NoiseSchedule,
  type SamplingDenoiser,
} from '../../src/models/diffusion/index.js';
import { gaussianDenoiser, momentError, moments, type Gaussian } from './gaussian.js';

await selectBackend({ prefer: 'wasm' });

const target: Gaussian = {
  mu: [1.5, -0.5, 0.25],
  cov: [
    [1.0, 0.6, 0.1],
    [0.6, 0.8, -0.2],
    [0.1, -0.2, 0.3],
  ],
};
const D = target.mu.length;

/**
 * The exact output distribution of a deterministic sampler started from x_1 ~ N(alpha_1 mu, alpha_1^2 Sigma +
 * sigma_1^2 I) (the true marginal at t = 1), compared with the true marginal at t = 0.
 */
function exactError(
  schedule: NoiseSchedule,
  run: (x1: tf.Tensor) => tf.Tensor,
): number {
  const a1 = schedule.alpha(1);
  const s1 = schedule.sigma(1);
  const scale = Math.hypot(a1, s1);
  const basis = new Float32Array((D + 1) * D);
  for (let k = 0; k < D; k++) basis[(k + 1) * D + k] = scale;
  const x1 = tf.tensor5d(basis, [D + 1, 1, 1, 1, D]);
  const out = run(x1);
  const o = out.dataSync();
  tf.dispose([x1, out]);
  const b = Array.from(o.slice(0, D));
  // columns of the linear part, scaled back to unit input
  const A = Array.from({ length: D }, (_, i) => Array.from({ length: D }, (_, k) => (o[(k + 1) * D + i] - b[i]) / scale));
  const inCov = target.cov.map((r, i) => r.map((v, j) => a1 * a1 * v + (i === j ? s1 * s1 : 0)));
  const mean = b.map((bi, i) => bi + A[i].reduce((s, v, j) => s + v * a1 * target.mu[j], 0));
  const AC = A.map((r) => inCov.map((_, j) => r.reduce((s, v, k) => s + v * inCov[k][j], 0)));
  const cov = AC.map((r) => A.map((r2) => r.reduce((s, v, j) => s + v * r2[j], 0)));
  const a0 = schedule.alpha(0);
  const s0 = schedule.sigma(0);
  const truth: Gaussian = {
    mu: target.mu.map((m) => a0 * m),
    cov: target.cov.map((r, i) => r.map((v, j) => a0 * a0 * v + (i === j ? s0 * s0 : 0))),
  };
  return momentError({ mean, cov }, truth);
}

type Run = (d: SamplingDenoiser, s: NoiseSchedule, x1: tf.Tensor, n: number) => tf.Tensor;
const deterministic: [string, Run, (n: number) => number][] = [
  // name, sampler, stated tolerance as a function of the step count
  ['euler', (d, s, x, n) => eulerSampler(d, s, x, n), (n) => 2.7 / n],
  // Heun in rho is poor at few steps: its first step spans rho from 1e3 to 16.
  ['heun', (d, s, x, n) => heunSampler(d, s, x, n), (n) => 800 / n ** 2],
  ['heun in u', (d, s, x, n) => heunSampler(d, s, x, n, 'u'), (n) => 0.5 / n ** 2 + 1e-4],
  ['ab2', (d, s, x, n) => adamsBashforthSampler(d, s, x, n, 2), (n) => 16 / n ** 1.6],
  ['ab3', (d, s, x, n) => adamsBashforthSampler(d, s, x, n, 3), (n) => 12 / n ** 2],
  ['ab3 in u', (d, s, x, n) => adamsBashforthSampler(d, s, x, n, 3, 'u'), (n) => 1.6 / n ** 2 + 1e-4],
];

for (const name of ['diffusion', 'flow'] as const) {
  t.test(`${name}: deterministic samplers converge to the Gaussian target`, async (t) => {
    const f = formulation(name);
    const g = gaussianDenoiser(target, f.schedule);
    const before = tf.memory().numTensors;
    const errors: Record<string, number[]> = {};
    for (const [label, run, tol] of deterministic) {
      errors[label] = [];
      for (const n of [8, 16, 32, 64]) {
        const err = exactError(f.schedule, (x1) => run(g.denoise, f.schedule, x1, n));
        errors[label].push(err);
        t.ok(err <= tol(n), `${label} ${n} steps: error ${err.toExponential(2)} <= ${tol(n).toExponential(2)}`);
      }
      const e = errors[label];
      t.ok(e[3] < e[1] / 2, `${label}: 64 steps (${e[3].toExponential(2)}) at least halves the 16-step error (${e[1].toExponential(2)})`);
    }
    t.ok(errors['ab3'][1] < errors['euler'][1] / 3, `AB3 with 16 steps (${errors['ab3'][1].toExponential(2)}) beats Euler with 16 (${errors['euler'][1].toExponential(2)}) by 3x`);
    t.ok(errors['ab3'][1] < errors['ab2'][1], 'AB3 beats AB2 at 16 steps');
    t.equal(tf.memory().numTensors, before, 'samplers leave no tensors behind');
    g.dispose();
  });
}

t.test('stochastic DDPM sampler: Monte Carlo moments approach the target as steps grow', async (t) => {
  const f = formulation('diffusion');
  const g = gaussianDenoiser(target, f.schedule);
  const N = 20000;
  const errs: number[] = [];
  for (const n of [8, 32, 128]) {
    const out = sample(g.denoise, f.schedule, [N, 1, 1, 1, D], { sampler: 'ddpm', steps: n, seed: 7 });
    const err = momentError(moments(out.dataSync() as Float32Array, D), target);
    out.dispose();
    errs.push(err);
    // discretisation bias ~ 1/n plus a Monte Carlo allowance for 20000 samples
    t.ok(err <= 4.5 / n + 0.03, `ddpm ${n} steps: error ${err.toExponential(2)} <= ${(4.5 / n + 0.03).toFixed(3)}`);
  }
  t.ok(errs[2] < errs[0], 'error shrinks from 8 to 128 steps');
  const a = sample(g.denoise, f.schedule, [64, 1, 1, 1, D], { sampler: 'ddpm', steps: 8, seed: 3 });
  const b = sample(g.denoise, f.schedule, [64, 1, 1, 1, D], { sampler: 'ddpm', steps: 8, seed: 3 });
  const c = sample(g.denoise, f.schedule, [64, 1, 1, 1, D], { sampler: 'ddpm', steps: 8, seed: 4 });
  t.same(a.dataSync(), b.dataSync(), 'same seed, same samples');
  t.not(a.dataSync()[0], c.dataSync()[0], 'another seed, other samples');
  tf.dispose([a, b, c]);
  g.dispose();
});

t.test('Adams-Bashforth weights', async (t) => {
  // On a uniform grid they are the classical coefficients (23, -16, 5) h / 12, oldest first reversed.
  const grid = [0, 0.1, 0.2, 0.3];
  const w = adamsBashforthWeights(grid, 2, 3);
  const h = 0.1;
  t.ok(Math.abs(w[0] - (5 * h) / 12) < 1e-12 && Math.abs(w[1] + (16 * h) / 12) < 1e-12 && Math.abs(w[2] - (23 * h) / 12) < 1e-12, `uniform AB3 weights ${Array.from(w)}`);
  // Exact for polynomials of degree < order on a non-uniform grid (here the reference's rho grid).
  const rho = Array.from(timeGrid(16), (s) => formulation('diffusion').schedule.sigma(s));
  for (let i = 2; i < 16; i++) {
    const c = adamsBashforthWeights(rho, i, 3);
    const nodes = [rho[i - 2], rho[i - 1], rho[i]];
    for (const [p, P] of [
      [(x: number) => 1, (x: number) => x],
      [(x: number) => x, (x: number) => (x * x) / 2],
      [(x: number) => x * x, (x: number) => (x * x * x) / 3],
    ] as const) {
      const approx = nodes.reduce((s, x, j) => s + c[j] * p(x), 0);
      const exact = P(rho[i + 1]) - P(rho[i]);
      if (Math.abs(approx - exact) > 1e-9 * Math.max(1, Math.abs(exact))) t.fail(`step ${i}: ${approx} != ${exact}`);
    }
  }
  t.same(Array.from(adamsBashforthWeights(rho, 0, 3)), [rho[1] - rho[0]], 'first step falls back to Euler');
  t.throws(() => adamsBashforthWeights(rho, 16, 3), /outside grid/);
});

t.test('conditioned denoiser imposes the context at every step and the output keeps it', async (t) => {
  const f = formulation('diffusion');
  const calls: number[][] = [];
  // A denoiser that records what it sees at the observed frame and returns zeros.
  const seen = (xt: tf.Tensor5D, time: number | tf.Tensor1D) => {
    calls.push([typeof time === 'number' ? time : -1, ...Array.from(xt.slice([0, 0], [1, 1]).dataSync())]);
    return tf.zerosLike(xt);
  };
  const observed = tf.tensor5d([2, -1, 0, 0, 0, 0], [1, 3, 1, 1, 2]);
  const mask = tf.tensor2d([[1, 0, 0]]);
  const denoise = conditionedDenoiser(seen, f.schedule, { observed, mask, labels: null });
  const out = adamsBashforthSampler(denoise, f.schedule, tf.randomNormal([1, 3, 1, 1, 2], 0, 1000, 'float32', 1), 4);
  for (const [time, a, b] of calls) {
    const scale = Math.hypot(f.schedule.alpha(time), f.schedule.sigma(time));
    t.ok(Math.abs(a - 2 * scale) < 1e-3 * scale && Math.abs(b + scale) < 1e-3 * scale, `x_t at t=${time.toFixed(3)} holds sqrt(a^2+s^2) x_obs`);
  }
  t.equal(calls.length, 4);
  tf.dispose([observed, mask, out]);
});

t.test('rho needs alpha > 0: pure-noise rectified flow integrates in u', async (t) => {
  const f = formulation('flow', { rectifiedFlow: { tMin: 0, tMax: 1 } });
  const g = gaussianDenoiser(target, f.schedule);
  const run = (variable?: IntegrationVariable) => (x1: tf.Tensor) => adamsBashforthSampler(g.denoise, f.schedule, x1, 32, 3, variable);
  t.throws(() => exactError(f.schedule, run('rho')), /alpha > 0/);
  const err = exactError(f.schedule, run());
  t.ok(err < 5e-3, `AB3 in u from pure noise: error ${err.toExponential(2)}`);
  g.dispose();
});
