/**
 * Samplers: integrate the reverse process from t = 1 to t = 0 on a uniform time grid, calling a denoiser once
 * (twice for Heun) per step. They only see a `SamplingDenoiser` (conditioning already bound, see
 * `conditionedDenoiser`) and a noise schedule, so any sampler works with any formulation.
 *
 * The deterministic samplers integrate the probability-flow ODE written as d(x / s(t)) / dc = f(x, D) in one
 * of two variables:
 *  - 'rho': c = sigma / alpha, s = alpha, f = z = (x - alpha D) / sigma (the reference; needs alpha > 0);
 *  - 'u':   c = sigma / (alpha + sigma), s = alpha + sigma, f = v = z - D (finite where alpha = 0).
 * Euler in either variable is the DDIM step x_s = alpha_s D + sigma_s z, which for rectified flow is exactly
 * the Euler step x + v dt. Adams-Bashforth of order k combines f at the last k grid points with weights from
 * integrating their Lagrange basis polynomials over [c_t, c_s] on the (non-uniform) grid of c.
 */
import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule } from './schedule.js';
import type { SamplingDenoiser } from './denoiser.js';
import { BatchNoise, type NoiseSeed } from './random.js';

export type SamplerName = 'euler' | 'heun' | 'ab' | 'ddpm';
/** Every sampler `sample` knows. */
export const SAMPLER_NAMES: readonly SamplerName[] = ['euler', 'heun', 'ab', 'ddpm'];
export type IntegrationVariable = 'rho' | 'u';

export interface SamplerOptions {
  /** Which sampler (default 'ab', the reference). */
  sampler?: SamplerName;
  /** Number of steps (default 16). */
  steps?: number;
  /** Order of the Adams-Bashforth sampler (default 3). */
  order?: number;
  /** Integration variable of the deterministic samplers (default 'rho' when alpha > 0 on the grid, else 'u'). */
  variable?: IntegrationVariable;
  /** Stochasticity of 'ddpm' (default 1: DDPM; 0 would be DDIM). */
  eta?: number;
  /**
   * Seed of the initial noise and of the stochastic sampler's noise: one integer for the batch, or one per row
   * (first axis), which makes each row's sample independent of the rows batched with it.
   */
  seed: NoiseSeed;
}

/** The time grid t_0 = 1 > t_1 > ... > t_N = 0 (uniform), in float64. */
export function timeGrid(steps: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`sampler: steps must be a positive integer, got ${steps}`);
  const grid = new Float64Array(steps + 1);
  for (let i = 0; i <= steps; i++) grid[i] = 1 - i / steps;
  return grid;
}

/** x_1 = sqrt(alpha_1^2 + sigma_1^2) eps: the initial noisy tensor for unit-variance data. */
export function initialNoise(schedule: NoiseSchedule, shape: number[], seed: number): tf.Tensor {
  const scale = Math.hypot(schedule.alpha(1), schedule.sigma(1));
  return tf.tidy(() => tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale));
}

interface Variable {
  /** Integration coordinate c(t). */
  coord(t: number): number;
  /** Scale s(t) with x / s integrated. */
  scale(t: number): number;
  /** Derivative d(x / s) / dc from x_t and D(x_t). */
  derivative(x: tf.Tensor, denoised: tf.Tensor, t: number): tf.Tensor;
}

function variableOf(schedule: NoiseSchedule, name: IntegrationVariable): Variable {
  const a = (t: number) => schedule.alpha(t);
  const s = (t: number) => schedule.sigma(t);
  const z = (x: tf.Tensor, d: tf.Tensor, t: number) => tf.div(tf.sub(x, tf.mul(d, a(t))), s(t));
  if (name === 'rho') {
    return { coord: (t) => s(t) / a(t), scale: a, derivative: z };
  }
  return {
    coord: (t) => s(t) / (a(t) + s(t)),
    scale: (t) => a(t) + s(t),
    derivative: (x, d, t) => tf.sub(z(x, d, t), d),
  };
}

function pickVariable(schedule: NoiseSchedule, grid: Float64Array, requested?: IntegrationVariable): Variable {
  const alphaPositive = Array.from(grid).every((t) => schedule.alpha(t) > 0);
  if (requested === 'rho' && !alphaPositive) {
    throw new Error(`sampler: variable 'rho' = sigma/alpha needs alpha > 0 on the grid; schedule ${schedule.name} reaches 0 (use 'u')`);
  }
  return variableOf(schedule, requested ?? (alphaPositive ? 'rho' : 'u'));
}

/** Coefficients of the product of (s - roots[k]) (ascending powers). */
function polyFromRoots(roots: number[]): number[] {
  let poly = [1];
  for (const r of roots) {
    const next = new Array<number>(poly.length + 1).fill(0);
    for (let p = 0; p < poly.length; p++) {
      next[p + 1] += poly[p];
      next[p] -= r * poly[p];
    }
    poly = next;
  }
  return poly;
}

/**
 * Adams-Bashforth weights for the step from grid[i] to grid[i + 1] using the values at grid[i - n + 1 .. i]
 * (n = min(order, i + 1)), oldest first: the integrals over [grid[i], grid[i + 1]] of their Lagrange basis
 * polynomials. Computed in the scaled coordinate a = (c - grid[i]) / h, h = grid[i + 1] - grid[i], in float64.
 */
export function adamsBashforthWeights(grid: ArrayLike<number>, i: number, order: number): Float64Array {
  if (!(i >= 0 && i + 1 < grid.length)) throw new Error(`adamsBashforthWeights: step ${i} outside grid of ${grid.length}`);
  const n = Math.min(order, i + 1);
  const h = grid[i + 1] - grid[i];
  const nodes: number[] = [];
  for (let k = i - n + 1; k <= i; k++) nodes.push((grid[k] - grid[i]) / h);
  const weights = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const others = nodes.filter((_, k) => k !== j);
    const denom = others.reduce((acc, ak) => acc * (nodes[j] - ak), 1);
    const poly = polyFromRoots(others);
    let integral = 0;
    for (let p = 0; p < poly.length; p++) integral += poly[p] / (p + 1);
    weights[j] = (h * integral) / denom;
  }
  return weights;
}

/** Runs `step` over the grid, replacing (and disposing) x at each step. `x1` stays owned by the caller. */
function integrate(
  x1: tf.Tensor,
  grid: Float64Array,
  step: (x: tf.Tensor, i: number) => tf.Tensor,
): tf.Tensor {
  let x = x1;
  for (let i = 0; i + 1 < grid.length; i++) {
    const next = step(x, i);
    if (x !== x1) x.dispose();
    x = next;
  }
  return x === x1 ? x1.clone() : x;
}

/** Euler / DDIM: x_s = alpha_s D(x_t) + sigma_s z_t. */
export function eulerSampler(denoise: SamplingDenoiser, schedule: NoiseSchedule, x1: tf.Tensor, steps: number): tf.Tensor {
  const grid = timeGrid(steps);
  return integrate(x1, grid, (x, i) =>
    tf.tidy(() => {
      const t = grid[i];
      const s = grid[i + 1];
      const d = denoise(x as tf.Tensor5D, t);
      const z = tf.div(tf.sub(x, tf.mul(d, schedule.alpha(t))), schedule.sigma(t));
      return tf.add(tf.mul(d, schedule.alpha(s)), tf.mul(z, schedule.sigma(s)));
    }),
  );
}

/** Heun (2nd order, trapezoidal corrector; the correction is skipped when sigma_s = 0). */
export function heunSampler(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  x1: tf.Tensor,
  steps: number,
  variable?: IntegrationVariable,
): tf.Tensor {
  const grid = timeGrid(steps);
  const v = pickVariable(schedule, grid, variable);
  return integrate(x1, grid, (x, i) =>
    tf.tidy(() => {
      const t = grid[i];
      const s = grid[i + 1];
      const h = v.coord(s) - v.coord(t);
      const ratio = v.scale(s) / v.scale(t);
      const ft = v.derivative(x, denoise(x as tf.Tensor5D, t), t);
      const predicted = tf.add(tf.mul(x, ratio), tf.mul(ft, v.scale(s) * h));
      if (schedule.sigma(s) === 0) return predicted;
      const fs = v.derivative(predicted, denoise(predicted as tf.Tensor5D, s), s);
      return tf.add(tf.mul(x, ratio), tf.mul(tf.add(ft, fs), (v.scale(s) * h) / 2));
    }),
  );
}

/** Adams-Bashforth of order `order` (reference: 3) on the non-uniform grid of the integration variable. */
export function adamsBashforthSampler(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  x1: tf.Tensor,
  steps: number,
  order = 3,
  variable?: IntegrationVariable,
): tf.Tensor {
  if (!Number.isInteger(order) || order < 1) throw new Error(`adamsBashforthSampler: order must be a positive integer, got ${order}`);
  const grid = timeGrid(steps);
  const v = pickVariable(schedule, grid, variable);
  const coords = Array.from(grid, (t) => v.coord(t));
  const history: tf.Tensor[] = [];
  try {
    return integrate(x1, grid, (x, i) => {
      const t = grid[i];
      const s = grid[i + 1];
      history.push(tf.tidy(() => v.derivative(x, denoise(x as tf.Tensor5D, t), t)));
      if (history.length > order) history.shift()!.dispose();
      const weights = adamsBashforthWeights(coords, i, order);
      return tf.tidy(() => {
        let sum = tf.mul(history[0], weights[0]);
        for (let j = 1; j < history.length; j++) sum = tf.add(sum, tf.mul(history[j], weights[j]));
        return tf.add(tf.mul(x, v.scale(s) / v.scale(t)), tf.mul(sum, v.scale(s)));
      });
    });
  } finally {
    tf.dispose(history);
  }
}

/**
 * Stochastic (DDPM-like) sampler: x_s = alpha_s D + sigma_s sqrt(1 - tau) z_t + sigma_s sqrt(tau) eps with
 * tau = eta (1 - (alpha_t sigma_s / (alpha_s sigma_t))^2), clipped to [0, 1]; eta = 1 is DDPM's posterior
 * variance, eta = 0 is DDIM.
 */
export function ddpmSampler(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  x1: tf.Tensor,
  steps: number,
  seed: NoiseSeed,
  eta = 1,
): tf.Tensor {
  const grid = timeGrid(steps);
  const noise = new BatchNoise(seed);
  return integrate(x1, grid, (x, i) =>
    tf.tidy(() => {
      const t = grid[i];
      const s = grid[i + 1];
      const [at, st, as, ss] = [schedule.alpha(t), schedule.sigma(t), schedule.alpha(s), schedule.sigma(s)];
      const tau = Math.min(1, Math.max(0, eta * (1 - ((at * ss) / (as * st)) ** 2)));
      const d = denoise(x as tf.Tensor5D, t);
      const z = tf.div(tf.sub(x, tf.mul(d, at)), st);
      const eps = noise.normal(x.shape);
      return tf.addN([tf.mul(d, as), tf.mul(z, ss * Math.sqrt(1 - tau)), tf.mul(eps, ss * Math.sqrt(tau))]);
    }),
  );
}

/** Draws x_1 from `seed` and runs the chosen sampler from it (default: 16 steps of Adams-Bashforth order 3). */
export function sample(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  shape: number[],
  options: SamplerOptions,
): tf.Tensor {
  const noise = new BatchNoise(options.seed);
  const x1 = tf.tidy(() => tf.mul(noise.normal(shape), noiseScale(schedule)));
  try {
    return runSampler(denoise, schedule, x1, options, () => noise.next());
  } finally {
    x1.dispose();
  }
}

/**
 * Runs the chosen sampler from a given x_1 (e.g. `initialNoise`, or `noiseScale(schedule) * eps` for stored
 * standard normal eps). The deterministic samplers need no seed; 'ddpm' draws its noise from `options.seed`.
 * `x1` stays owned by the caller. With x_1 = initialNoise(schedule, shape, s) this is `sample` with a seed
 * whose first tensor seed is s, for the deterministic samplers.
 */
export function sampleFrom(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  x1: tf.Tensor,
  options: Omit<SamplerOptions, 'seed'> & { seed?: NoiseSeed },
): tf.Tensor {
  return runSampler(denoise, schedule, x1, options, () => {
    if (options.seed === undefined) throw new Error("sampleFrom: the stochastic sampler 'ddpm' needs options.seed");
    return new BatchNoise(options.seed).next();
  });
}

/** The scale sqrt(alpha_1^2 + sigma_1^2) of the initial noise: x_1 = noiseScale * eps with eps ~ N(0, I). */
export function noiseScale(schedule: NoiseSchedule): number {
  return Math.hypot(schedule.alpha(1), schedule.sigma(1));
}

/** Whether a sampler maps x_1 to its sample deterministically (an ODE sampler). */
export function isDeterministicSampler(sampler: SamplerName = 'ab'): boolean {
  return sampler !== 'ddpm';
}

function runSampler(
  denoise: SamplingDenoiser,
  schedule: NoiseSchedule,
  x1: tf.Tensor,
  options: Omit<SamplerOptions, 'seed'>,
  ddpmSeed: () => NoiseSeed,
): tf.Tensor {
  const { sampler = 'ab', steps = 16, order = 3, eta = 1, variable } = options;
  switch (sampler) {
    case 'euler':
      return eulerSampler(denoise, schedule, x1, steps);
    case 'heun':
      return heunSampler(denoise, schedule, x1, steps, variable);
    case 'ab':
      return adamsBashforthSampler(denoise, schedule, x1, steps, order, variable);
    case 'ddpm':
      return ddpmSampler(denoise, schedule, x1, steps, ddpmSeed(), eta);
    default:
      throw new Error(`sample: unknown sampler ${JSON.stringify(sampler)} (expected euler, heun, ab or ddpm)`);
  }
}
