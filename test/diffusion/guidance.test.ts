/**
 * Guidance (DPS, MMPS) checked against a linear-Gaussian problem whose posterior is known in closed form: latent
 * x ~ N(mu, Sigma) in 4 dimensions, a linear "decoder" W to a 2x3 physical state, and 3 noisy sensors of it
 * (the real sensorMask operator), so y = G x + n with G = M W. The exact prior denoiser drives the samplers;
 * MMPS, exact in this setting, must reproduce the analytic posterior mean and covariance within sampling error
 * in both formulations, and its guided denoiser must equal the analytic E[x | x_t, y] at every noise level; DPS
 * is measured against the same posterior and its bias reported. Plus: the DPS correction against finite
 * differences of the log-likelihood through a nonlinear decoder, the JVP against the VJP, conjugate gradients
 * and GMRES (against direct solves and the Krylov least-squares solution, on definite and indefinite systems),
 * and MMPS driven by a denoiser with a network-like error whose Tweedie covariance is indefinite at high noise
 * (what broke guided rollouts on the Euler demo with one CG step).
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import {
  conjugateGradient,
  dps,
  finiteDifferenceJvp,
  formulation,
  gmres,
  guidance,
  mmps,
  sample,
  windowLikelihood,
  type NoiseSchedule,
} from '../../src/models/diffusion/index.js';
import { sensorMask } from '../../src/physics/observe.js';
import { gaussianDenoiser, moments, type Gaussian } from './gaussian.js';

await selectBackend({ prefer: 'wasm' });

const prior: Gaussian = {
  mu: [0.5, -1, 0.25, 1.5],
  cov: [
    [1.0, 0.3, 0.1, 0.0],
    [0.3, 0.8, -0.2, 0.1],
    [0.1, -0.2, 0.6, 0.2],
    [0.0, 0.1, 0.2, 1.2],
  ],
};
const D = 4;
/** Linear decoder: latent (4) -> physical state 2 x 3 x 1, row-major (W is 4 x 6). */
const W = [
  [1.0, 0.5, 0.0, -0.3, 0.2, 0.1],
  [0.0, 1.0, 0.4, 0.2, -0.5, 0.3],
  [0.6, -0.2, 1.0, 0.0, 0.3, -0.4],
  [0.1, 0.3, -0.6, 1.0, 0.0, 0.8],
];
const layout = { shape: [2, 3] as [number, number], channels: ['u'] };
const sensors = [1, 0, 0, 1, 0, 1]; // pixels 0, 3, 5
const noise = 0.5;
const operator = sensorMask(layout, { mask: sensors, noise });
const y = Float32Array.from([1.2, -0.4, 0.9]);

const linearDecoder = (wTensor: tf.Tensor2D) => (z: tf.Tensor4D) =>
  tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(z, [-1, D]), wTensor), [-1, 2, 3, 1]) as tf.Tensor4D);

// ---- the analytic posterior (float64) ----
type M = number[][];
const mul = (a: M, b: M): M => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const tr = (a: M): M => a[0]!.map((_, j) => a.map((r) => r[j]!));
function inverse(a: M): M {
  const n = a.length;
  const m = a.map((r, i) => [...r, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    const d = m[c]![c]!;
    for (let j = 0; j < 2 * n; j++) m[c]![j]! /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r]![c]!;
      for (let j = 0; j < 2 * n; j++) m[r]![j]! -= f * m[c]![j]!;
    }
  }
  return m.map((r) => r.slice(n));
}
const rowsOf = (mask: number[]) => mask.flatMap((v, i) => (v ? [i] : []));
/** G = M W^T-as-used: observation k is pixel p_k of x W, i.e. G[k][i] = W[i][p_k]. */
const G: M = rowsOf(sensors).map((p) => W.map((r) => r[p]!));

/** The Gaussian posterior of x given y = G x + n, n ~ N(0, s^2 I), from a Gaussian (mean m, cov S). */
function posterior(m: number[], S: M, s2: number): { mean: number[]; cov: M } {
  const SGt = mul(S, tr(G));
  const K = mul(SGt, inverse(mul(G, SGt).map((r, i) => r.map((v, j) => v + (i === j ? s2 : 0)))));
  const resid = Array.from(y).map((v, k) => v - G[k]!.reduce((s, g, i) => s + g * m[i]!, 0));
  const mean = m.map((v, i) => v + K[i]!.reduce((s, kv, k) => s + kv * resid[k]!, 0));
  const KGS = mul(mul(K, G), S);
  return { mean, cov: S.map((r, i) => r.map((v, j) => v - KGS[i]![j]!)) };
}
const exact = posterior(prior.mu, prior.cov, noise * noise);

/** Samples N windows (N, 1, 1, 1, D) from the guided denoiser with a deterministic sampler. */
function guidedSamples(schedule: NoiseSchedule, method: 'dps' | 'mmps', n: number, seed: number): Float32Array {
  const { denoise, dispose } = gaussianDenoiser(prior, schedule);
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const likelihood = windowLikelihood(linearDecoder(wTensor), operator, { frames: [0], values: y });
  try {
    const g = method === 'mmps' ? mmps({ iterations: 3 }) : dps();
    const guided = g.guide(denoise, schedule, likelihood);
    const x = sample(guided, schedule, [n, 1, 1, 1, D], { sampler: 'ab', steps: 64, seed });
    const data = x.dataSync() as Float32Array;
    x.dispose();
    return data;
  } finally {
    likelihood.dispose();
    wTensor.dispose();
    dispose();
  }
}

/** Largest standardised deviation of the sample mean and covariance from the posterior (units of sampling error). */
function zScores(data: Float32Array, n: number): { mean: number; cov: number } {
  const m = moments(data, D);
  let zm = 0;
  let zc = 0;
  for (let i = 0; i < D; i++) {
    zm = Math.max(zm, Math.abs(m.mean[i]! - exact.mean[i]!) / Math.sqrt(exact.cov[i]![i]! / n));
    for (let j = 0; j < D; j++) {
      const se = Math.sqrt((exact.cov[i]![i]! * exact.cov[j]![j]! + exact.cov[i]![j]! ** 2) / n);
      zc = Math.max(zc, Math.abs(m.cov[i]![j]! - exact.cov[i]![j]!) / se);
    }
  }
  return { mean: zm, cov: zc };
}

const N = 4000;

for (const name of ['diffusion', 'flow'] as const) {
  t.test(`MMPS reproduces the linear-Gaussian posterior (${name})`, async (t) => {
    const schedule = formulation(name).schedule;
    const before = tf.memory().numTensors;
    const data = guidedSamples(schedule, 'mmps', N, 7);
    t.equal(tf.memory().numTensors, before, 'no tensor leaks');
    const z = zScores(data, N);
    t.comment(`MMPS ${name}: max |mean error| ${z.mean.toFixed(2)} and max |cov error| ${z.cov.toFixed(2)} standard errors (N = ${N})`);
    t.ok(z.mean < 4, `posterior mean within 4 standard errors (${z.mean.toFixed(2)})`);
    t.ok(z.cov < 4.5, `posterior covariance within 4.5 standard errors (${z.cov.toFixed(2)})`);
    // The prior is far from the posterior in these units: the check could fail.
    const priorZ = Math.max(...prior.mu.map((m, i) => Math.abs(m - exact.mean[i]!) / Math.sqrt(exact.cov[i]![i]! / N)));
    t.ok(priorZ > 20, `the prior mean is ${priorZ.toFixed(0)} standard errors from the posterior's`);
  });

  t.test(`DPS against the same posterior: bias measured (${name})`, async (t) => {
    const schedule = formulation(name).schedule;
    const data = guidedSamples(schedule, 'dps', N, 7);
    const m = moments(data, D);
    const bias = m.mean.map((v, i) => (v - exact.mean[i]!) / Math.sqrt(exact.cov[i]![i]!));
    const varRatio = m.cov.map((r, i) => r[i]! / exact.cov[i]![i]!);
    t.comment(`DPS ${name}: mean bias / posterior std [${bias.map((b) => b.toFixed(3))}], variance ratio [${varRatio.map((v) => v.toFixed(3))}]`);
    const z = zScores(data, N);
    t.comment(`DPS ${name}: max |mean error| ${z.mean.toFixed(1)}, max |cov error| ${z.cov.toFixed(1)} standard errors`);
    t.ok(data.every(Number.isFinite), 'finite samples');
    const priorBias = Math.max(...prior.mu.map((v, i) => Math.abs(v - exact.mean[i]!) / Math.sqrt(exact.cov[i]![i]!)));
    t.ok(Math.max(...bias.map(Math.abs)) < priorBias, 'DPS moves the mean from the prior toward the posterior');
    t.ok(z.mean > 4 || z.cov > 4.5, 'DPS is biased here, detectably (it neglects Cov[x | x_t])');
  });
}

t.test('the MMPS denoiser is the analytic posterior denoiser E[x | x_t, y] at every noise level', async (t) => {
  const schedule = formulation('diffusion').schedule;
  const { denoise, dispose } = gaussianDenoiser(prior, schedule);
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const likelihood = windowLikelihood(linearDecoder(wTensor), operator, { frames: [0], values: y });
  const guided = mmps({ iterations: 3 }).guide(denoise, schedule, likelihood);
  const xt = [0.3, -0.2, 1.1, 0.4];
  for (const time of [0.1, 0.3, 0.5, 0.7, 0.9]) {
    const a = schedule.alpha(time);
    const s = schedule.sigma(time);
    // p(x | x_t) is Gaussian (the denoiser's mean, covariance (Sigma^-1 + a^2/s^2 I)^-1); then condition on y.
    const Si = inverse(prior.cov);
    const postCov = inverse(Si.map((r, i) => r.map((v, j) => v + (i === j ? (a * a) / (s * s) : 0))));
    const rhs = prior.mu.map((_, i) => Si[i]!.reduce((acc, v, j) => acc + v * prior.mu[j]!, 0) + (a * xt[i]!) / (s * s));
    const mean = postCov.map((r) => r.reduce((acc, v, j) => acc + v * rhs[j]!, 0));
    const want = posterior(mean, postCov, noise * noise).mean;
    const got = tf.tidy(() => guided(tf.tensor5d(xt, [1, 1, 1, 1, D]), time).dataSync());
    const err = Math.max(...want.map((v, i) => Math.abs(v - got[i]!)));
    t.ok(err < 2e-3 * (1 + Math.max(...want.map(Math.abs))), `t = ${time} (sigma ${s.toPrecision(3)}): max error ${err.toExponential(2)}`);
  }
  tf.dispose([wTensor]);
  likelihood.dispose();
  dispose();
});

t.test('MMPS with the isotropic covariance is the exact posterior denoiser for a white prior, and bounded otherwise', async (t) => {
  // For x ~ N(mu, p I), Cov[x | x_t] = p sigma^2 / (sigma^2 + alpha^2 p) I exactly: the isotropic covariance is
  // the Tweedie covariance, and the guided denoiser must equal the analytic E[x | x_t, y] at every noise level.
  const p = 0.8;
  const white: Gaussian = { mu: prior.mu, cov: prior.mu.map((_, i) => prior.mu.map((__, j) => (i === j ? p : 0))) };
  const xt = [0.3, -0.2, 1.1, 0.4];
  for (const name of ['diffusion', 'flow'] as const) {
    const schedule = formulation(name).schedule;
    const { denoise, dispose } = gaussianDenoiser(white, schedule);
    const wTensor = tf.tensor2d(W.flat(), [D, 6]);
    const likelihood = windowLikelihood(linearDecoder(wTensor), operator, { frames: [0], values: y });
    const guided = mmps({ covariance: 'isotropic', priorVariance: p, solver: 'cg', iterations: 3 }).guide(denoise, schedule, likelihood);
    for (const time of [0.05, 0.3, 0.5, 0.7, 0.95]) {
      const a = schedule.alpha(time);
      const s = schedule.sigma(time);
      const r2 = (p * s * s) / (s * s + a * a * p);
      const mean = white.mu.map((m, i) => m + (r2 * a * (xt[i]! - a * m)) / (s * s));
      const want = posterior(mean, white.cov.map((r) => r.map((v) => (v ? r2 : 0))), noise * noise).mean;
      const got = tf.tidy(() => guided(tf.tensor5d(xt, [1, 1, 1, 1, D]), time).dataSync());
      const err = Math.max(...want.map((v, i) => Math.abs(v - got[i]!)));
      t.ok(err < 2e-3 * (1 + Math.max(...want.map(Math.abs))), `${name}, t = ${time} (sigma ${s.toPrecision(3)}): max error ${err.toExponential(2)}`);
    }
    tf.dispose([wTensor]);
    likelihood.dispose();
    dispose();
  }
  // A correlated prior: the isotropic covariance is an approximation; its correction stays within sqrt(p) |A'^T u|-
  // sized steps: at the largest noise the guided mean moves from D by at most a few prior standard deviations,
  // and `tweedieUpTo` switches to it above the given noise level and keeps the Tweedie one below.
  const schedule = formulation('diffusion').schedule;
  const { denoise, dispose } = gaussianDenoiser(prior, schedule);
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const likelihood = windowLikelihood(linearDecoder(wTensor), operator, { frames: [0], values: y });
  const tweedie = mmps({ iterations: 3 }).guide(denoise, schedule, likelihood);
  const isotropic = mmps({ covariance: 'isotropic', iterations: 3, solver: 'cg' }).guide(denoise, schedule, likelihood);
  const hybrid = mmps({ iterations: 3, tweedieUpTo: 1 }).guide(denoise, schedule, likelihood);
  const at = (g: typeof tweedie, time: number) => tf.tidy(() => Array.from(g(tf.tensor5d(xt, [1, 1, 1, 1, D]), time).dataSync()));
  const gap = (u: number[], v: number[]) => Math.max(...u.map((x, i) => Math.abs(x - v[i]!)));
  for (const time of [0.2, 0.45, 0.55, 0.9]) {
    const level = schedule.sigma(time) / schedule.alpha(time);
    const [h, tw, iso] = [at(hybrid, time), at(tweedie, time), at(isotropic, time)];
    const same = level <= 1 ? tw : iso;
    t.ok(gap(h, same) < 1e-5, `tweedieUpTo 1 at sigma/alpha ${level.toPrecision(3)}: equals the ${level <= 1 ? 'Tweedie' : 'isotropic'} covariance's (gap ${gap(h, same).toExponential(1)})`);
  }
  const top = 1 - 1e-4;
  const move = gap(at(isotropic, top), tf.tidy(() => Array.from(denoise(tf.tensor5d(xt, [1, 1, 1, 1, D]), top).dataSync())));
  t.ok(move > 0.05 && move < 3, `isotropic at sigma ${schedule.sigma(top).toPrecision(3)}: the correction moves D by ${move.toFixed(3)} (bounded by the prior scale, not by sigma)`);
  t.throws(() => mmps({ covariance: 'full' as 'tweedie' }), /covariance must be 'tweedie' or 'isotropic', got "full"/);
  t.throws(() => mmps({ tweedieUpTo: 0 }), /tweedieUpTo must be a positive noise level/);
  t.throws(() => mmps({ priorVariance: -1 }), /priorVariance must be a positive number/);
  tf.dispose([wTensor]);
  likelihood.dispose();
  dispose();
});

t.test('DPS correction = gamma x the log-likelihood gradient (finite differences, nonlinear decoder)', async (t) => {
  const schedule = formulation('flow').schedule;
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  // A nonlinear decoder and a nonlinear denoiser, so the gradient has to go through both.
  const decoder = (z: tf.Tensor4D) => tf.tidy(() => tf.tanh(linearDecoder(wTensor)(z)) as tf.Tensor4D);
  const denoise = (x: tf.Tensor5D, time: number) => tf.tidy(() => tf.mul(tf.sin(x), 0.8 + 0.1 * time) as tf.Tensor5D);
  const likelihood = windowLikelihood(decoder, operator, { frames: [0], values: y });
  const scale = 0.7;
  const guided = dps({ scale }).guide(denoise, schedule, likelihood);
  const time = 0.4;
  const gamma = schedule.sigma(time) ** 2 / schedule.alpha(time);
  const x0 = [0.3, -0.7, 0.9, 0.2];
  const correction = tf.tidy(() => {
    const x = tf.tensor5d(x0, [1, 1, 1, 1, D]);
    return tf.div(tf.sub(guided(x, time), denoise(x, time)), scale * gamma).dataSync();
  });
  const logLik = (x: number[]): number =>
    tf.tidy(() => {
      const r = tf.sub(likelihood.y, likelihood.observe(denoise(tf.tensor5d(x, [1, 1, 1, 1, D]), time)));
      return tf.sum(tf.div(tf.square(r), -2 * noise * noise)).dataSync()[0]!;
    });
  const eps = 1e-2;
  for (let i = 0; i < D; i++) {
    const plus = x0.slice();
    const minus = x0.slice();
    plus[i]! += eps;
    minus[i]! -= eps;
    const fd = (logLik(plus) - logLik(minus)) / (2 * eps);
    t.ok(Math.abs(fd - correction[i]!) < 2e-3 * (1 + Math.abs(fd)), `d/dx_${i}: guidance ${correction[i]!.toFixed(5)}, finite difference ${fd.toFixed(5)}`);
  }
  likelihood.dispose();
  wTensor.dispose();
});

t.test('the finite-difference JVP is the transpose of the VJP', async (t) => {
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const decoder = (z: tf.Tensor4D) => tf.tidy(() => tf.tanh(linearDecoder(wTensor)(z)) as tf.Tensor4D);
  const likelihood = windowLikelihood(decoder, operator, { frames: [0], values: y });
  const [lhs, rhs] = tf.tidy(() => {
    const x = tf.tensor5d([0.2, -0.4, 0.6, 0.1, 1, 0.5, -0.3, 0.2], [2, 1, 1, 1, D]);
    const w = tf.tensor5d([0.5, 0.1, -0.7, 0.3, -0.2, 0.9, 0.4, -0.1], [2, 1, 1, 1, D]);
    const v = tf.tensor2d([0.3, -1.1, 0.6, 0.8, 0.2, -0.5], [2, 3]);
    const jw = finiteDifferenceJvp(likelihood.observe, x, w);
    const jtv = tf.grad((z: tf.Tensor) => likelihood.observe(z as tf.Tensor5D))(x, v);
    return [tf.sum(tf.mul(jw, v), 1).arraySync() as number[], tf.sum(tf.reshape(tf.mul(jtv, w), [2, -1]), 1).arraySync() as number[]];
  });
  for (let b = 0; b < 2; b++) t.ok(Math.abs(lhs[b]! - rhs[b]!) < 1e-3 * (1 + Math.abs(rhs[b]!)), `window ${b}: <J w, v> ${lhs[b]!.toFixed(6)} = <w, J^T v> ${rhs[b]!.toFixed(6)}`);
  likelihood.dispose();
  wTensor.dispose();
});

t.test('conjugate gradients: exact in K iterations on K x K systems, per row, and improving before', async (t) => {
  const A = [
    [4, 1, 0.5],
    [1, 3, 0.2],
    [0.5, 0.2, 2],
  ];
  const b = [
    [1, 2, 3],
    [-1, 0.5, 0],
  ];
  const apply = (v: tf.Tensor2D) => tf.matMul(v, tf.tensor2d(A.flat(), [3, 3])) as tf.Tensor2D;
  const exactSol = b.map((r) => inverse(A).map((row) => row.reduce((s, v, j) => s + v * r[j]!, 0)));
  const errors = [1, 2, 3].map((k) =>
    tf.tidy(() => {
      const u = conjugateGradient(apply, tf.tensor2d(b.flat(), [2, 3]), k).arraySync() as number[][];
      return Math.max(...u.flatMap((r, i) => r.map((v, j) => Math.abs(v - exactSol[i]![j]!))));
    }),
  );
  t.ok(errors[2]! < 1e-5, `3 iterations: error ${errors[2]!.toExponential(2)}`);
  t.ok(errors[0]! > errors[2]! && errors[0]! > 1e-3, `1 iteration is approximate (${errors[0]!.toExponential(2)})`);
  t.throws(() => conjugateGradient(apply, tf.zeros([1, 3]), 0), /iterations must be a positive integer/);
});

/** Rows of b (n x K) times M^T, i.e. M v for each row v: the product `apply` computes. */
const applyRows = (M: number[][]) => (v: tf.Tensor2D) => tf.matMul(v, tf.tensor2d(M.flat(), [M.length, M.length]), false, true) as tf.Tensor2D;
const matVec = (M: number[][], v: number[]) => M.map((r) => r.reduce((s, x, j) => s + x * v[j]!, 0));
const norm = (v: number[]) => Math.hypot(...v);
const residualNorm = (M: number[][], b: number[], u: number[]) => norm(b.map((x, i) => x - matVec(M, u)[i]!));

t.test('GMRES: exact in K iterations, the Krylov least-squares solution before, on definite and indefinite systems', async (t) => {
  // Nonsymmetric and indefinite (eigenvalues of both signs), nonsingular.
  const M = [
    [1.0, 2.0, 0.0],
    [-0.5, -1.5, 1.0],
    [0.3, 0.0, 2.0],
  ];
  const spd = [
    [4, 1, 0.5],
    [1, 3, 0.2],
    [0.5, 0.2, 2],
  ];
  const b = [
    [1, 2, 3],
    [-1, 0.5, 0],
  ];
  const solve = (A: number[][], k: number) => tf.tidy(() => gmres(applyRows(A), tf.tensor2d(b.flat(), [2, 3]), k).arraySync() as number[][]);
  for (const [name, A] of [['indefinite nonsymmetric', M], ['symmetric positive definite', spd]] as const) {
    const exactSol = b.map((r) => matVec(inverse(A), r));
    const u3 = solve(A, 3);
    const err3 = Math.max(...u3.flatMap((r, i) => r.map((v, j) => Math.abs(v - exactSol[i]![j]!))));
    t.ok(err3 < 1e-4, `${name}: 3 iterations solve the 3 x 3 system (max error ${err3.toExponential(2)})`);
    // One step: the multiple of b minimising |b - a M b|, a = (b.Mb) / (Mb.Mb).
    const u1 = solve(A, 1);
    // Two steps: the u in span(b, Mb) minimising |b - M u| (2 x 2 normal equations, float64).
    const u2 = solve(A, 2);
    b.forEach((r, i) => {
      const Mb = matVec(A, r);
      const a = r.reduce((s, x, j) => s + x * Mb[j]!, 0) / Mb.reduce((s, x) => s + x * x, 0);
      t.ok(Math.max(...r.map((x, j) => Math.abs(a * x - u1[i]![j]!))) < 1e-5, `${name}, row ${i}: one step is (b.Mb / Mb.Mb) b`);
      const c1 = Mb;
      const c2 = matVec(A, Mb);
      const d = (p: number[], q: number[]) => p.reduce((s, x, j) => s + x * q[j]!, 0);
      const det = d(c1, c1) * d(c2, c2) - d(c1, c2) ** 2;
      const a1 = (d(c2, c2) * d(c1, r) - d(c1, c2) * d(c2, r)) / det;
      const a2 = (d(c1, c1) * d(c2, r) - d(c1, c2) * d(c1, r)) / det;
      const want2 = r.map((x, j) => a1 * x + a2 * Mb[j]!);
      t.ok(Math.max(...want2.map((v, j) => Math.abs(v - u2[i]![j]!))) < 1e-4, `${name}, row ${i}: two steps are the least-squares solution in span(b, Mb)`);
      const res = [0, ...[u1, u2, u3].map((u) => residualNorm(A, r, u[i]!))];
      res[0] = norm(r);
      t.ok(res[1]! <= res[0]! + 1e-6 && res[2]! <= res[1]! + 1e-6 && res[3]! <= res[2]! + 1e-6, `${name}, row ${i}: residual norms never grow: ${res.map((v) => v.toFixed(4)).join(' > ')}`);
    });
  }
  // Early exhaustion: M = 2 I is solved in one step; further steps and a zero right-hand side stay finite.
  const twice = [
    [2, 0, 0],
    [0, 2, 0],
    [0, 0, 2],
  ];
  const u = tf.tidy(() => gmres(applyRows(twice), tf.tensor2d([1, -2, 4, 0, 0, 0], [2, 3]), 3).arraySync() as number[][]);
  t.same(u.flat().map((v) => Math.round(v * 1e5) / 1e5), [0.5, -1, 2, 0, 0, 0], 'M = 2 I: u = b / 2 after a breakdown; b = 0: u = 0 (no NaN)');
  t.throws(() => gmres(applyRows(spd), tf.zeros([1, 3]), 0), /gmres: iterations must be a positive integer/);
});

t.test('one step on an indefinite system with b.Mb near 0: CG blows up, GMRES never increases the residual', async (t) => {
  // b.Mb = 1 - 0.99 = 0.01 for b = (1, 1): CG's step b.b / b.Mb = 200; GMRES's (b.Mb) / |Mb|^2 = 0.005.
  const M = [
    [1, 0],
    [0, -0.99],
  ];
  const b = [1, 1];
  const [cg, gm] = tf.tidy(() => [conjugateGradient, gmres].map((solver) => Array.from(solver(applyRows(M), tf.tensor2d([b]), 1).dataSync())));
  const [rCg, rGm] = [residualNorm(M, b, cg!), residualNorm(M, b, gm!)];
  t.ok(rGm <= norm(b), `GMRES: |b - M u| = ${rGm.toFixed(4)} <= |b| = ${norm(b).toFixed(4)}, |u| = ${norm(gm!).toFixed(4)}`);
  t.ok(rCg > 100 * norm(b), `CG: |b - M u| = ${rCg.toFixed(1)}, |u| = ${norm(cg!).toFixed(1)} (why MMPS defaults to GMRES)`);
});

t.test('MMPS with a network-like denoiser error at high noise: one GMRES step stays on the posterior, one CG step does not', async (t) => {
  // A trained network's D(x_t) has errors whose Jacobian, times gamma = sigma^2 (up to 1e6), makes the Tweedie
  // covariance indefinite and different for every member at high noise. Stand-in: the exact Gaussian denoiser
  // plus c_out e tanh(c_in x_t K) (an output error of at most e = 5% in the network's output units, K symmetric
  // indefinite), which barely changes the unguided samples. Observations as above but with noise 0.1.
  const schedule = formulation('diffusion').schedule;
  const { denoise, dispose } = gaussianDenoiser(prior, schedule);
  const K = tf.tensor2d([1, 0.3, 0, 0, 0.3, -1, 0.2, 0, 0, 0.2, 1, -0.4, 0, 0, -0.4, -1], [D, D]);
  const e = 0.05;
  const network = (xt: tf.Tensor5D, time: number): tf.Tensor5D =>
    tf.tidy(() => {
      const n = Math.hypot(schedule.alpha(time), schedule.sigma(time));
      const error = tf.reshape(tf.tanh(tf.matMul(tf.reshape(tf.div(xt, n), [-1, D]), K)), xt.shape);
      return tf.add(denoise(xt, time), tf.mul(error, (e * schedule.sigma(time)) / n)) as tf.Tensor5D;
    });
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const likelihood = windowLikelihood(linearDecoder(wTensor), sensorMask(layout, { mask: sensors, noise: 0.1 }), { frames: [0], values: y });
  const n = 2000;
  const run = (d: typeof denoise, solver: 'gmres' | 'cg' | null) => {
    const guided = solver ? mmps({ solver }).guide(d, schedule, likelihood) : d;
    const x = sample(guided, schedule, [n, 1, 1, 1, D], { sampler: 'ab', steps: 32, seed: 3 });
    const data = x.dataSync() as Float32Array;
    x.dispose();
    return { ...moments(data, D), max: Math.max(...Array.from(data, Math.abs)) };
  };
  try {
    const prior0 = run(denoise, null);
    const prior1 = run(network, null);
    const meanShift = Math.max(...prior0.mean.map((m, i) => Math.abs(m - prior1.mean[i]!)));
    t.ok(meanShift < 0.1, `unguided: the error moves the sample mean by ${meanShift.toFixed(3)} (prior scale ~1)`);
    const reference = run(denoise, 'gmres');
    for (const solver of ['gmres', 'cg'] as const) {
      const got = run(network, solver);
      const varRatio = got.cov.map((r, i) => r[i]! / reference.cov[i]![i]!);
      const shift = Math.max(...got.mean.map((m, i) => Math.abs(m - reference.mean[i]!) / Math.sqrt(reference.cov[i]![i]!)));
      t.comment(`${solver}: largest |x| ${got.max.toFixed(2)} (exact denoiser ${reference.max.toFixed(2)}), mean shift ${shift.toFixed(2)} posterior std, variance ratios [${varRatio.map((v) => v.toFixed(2))}]`);
      if (solver === 'gmres') {
        t.ok(got.max < 1.5 * reference.max, `GMRES: no outlier (largest |x| ${got.max.toFixed(2)} against ${reference.max.toFixed(2)})`);
        t.ok(shift < 0.2, `GMRES: mean within 0.2 posterior std of the exact denoiser's guided mean (${shift.toFixed(2)})`);
        t.ok(varRatio.every((v) => v > 0.6 && v < 1.6), `GMRES: variances within a factor 1.6 (${varRatio.map((v) => v.toFixed(2))})`);
      } else {
        t.ok(got.max > 5 * reference.max, `CG: outliers (largest |x| ${got.max.toFixed(1)}): the check above fails with it`);
      }
    }
  } finally {
    tf.dispose([K, wTensor]);
    likelihood.dispose();
    dispose();
  }
});

t.test('guidance by name, and bad options', async (t) => {
  t.equal(guidance('mmps').name, 'mmps');
  t.equal(guidance('dps', { scale: 2 }).name, 'dps');
  t.throws(() => guidance('tweedie'), /expected 'dps' or 'mmps', got "tweedie"/);
  t.throws(() => mmps({ iterations: 0 }), /iterations must be a positive integer/);
  t.throws(() => mmps({ solver: 'lsqr' as 'cg' }), /mmps: solver must be 'gmres' or 'cg', got "lsqr"/);
  t.equal(guidance('mmps', { solver: 'cg', iterations: 2 }).name, 'mmps');
  const exactOp = sensorMask(layout, { mask: sensors });
  const wTensor = tf.tensor2d(W.flat(), [D, 6]);
  const likelihood = windowLikelihood(linearDecoder(wTensor), exactOp, { frames: [0], values: y });
  t.throws(() => dps().guide((x) => x, formulation('diffusion').schedule, likelihood), /noise variance must be positive/);
  t.throws(() => windowLikelihood(linearDecoder(wTensor), exactOp, { frames: [0, 1], values: y }), /3 values for 2 frames, expected 2 x 3/);
  likelihood.dispose();
  wTensor.dispose();
});
