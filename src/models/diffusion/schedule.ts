/**
 * Noise schedules: the perturbation x_t = alpha_t x + sigma_t eps for diffusion time t in [0, 1] (t = 1 is
 * almost pure noise). A schedule is only the pair (alpha_t, sigma_t); denoisers and samplers read it and
 * nothing else, so any schedule works with any denoiser and sampler.
 */
import * as tf from '@tensorflow/tfjs';

export interface NoiseSchedule {
  readonly name: string;
  /** Signal scale alpha_t at time t in [0, 1]. */
  alpha(t: number): number;
  /** Noise scale sigma_t at time t in [0, 1]. */
  sigma(t: number): number;
  /** Per-sample (alpha_t, sigma_t) for a batch of times, as 1-d tensors (used in training). */
  alphaSigma(t: tf.Tensor1D): [tf.Tensor1D, tf.Tensor1D];
}

export interface LogLogitOptions {
  /** Smallest noise level, at t = 0 (default 1e-3). */
  sigmaMin?: number;
  /** Largest noise level, at t = 1 (default 1e3). */
  sigmaMax?: number;
}

/**
 * The reference system's variance-exploding schedule: alpha_t = 1 and sigma_t = exp(logit(u)) = u / (1 - u)
 * with u = t_min + t (t_max - t_min), t_min = s_min / (1 + s_min), t_max = s_max / (1 + s_max). A uniform t
 * grid therefore visits the noise levels of rectified flow's uniform grid.
 */
export function logLogitSchedule(options: LogLogitOptions = {}): NoiseSchedule {
  const { sigmaMin = 1e-3, sigmaMax = 1e3 } = options;
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) {
    throw new Error(`logLogitSchedule: need 0 < sigmaMin < sigmaMax, got ${sigmaMin}, ${sigmaMax}`);
  }
  const tMin = sigmaMin / (1 + sigmaMin);
  const tMax = sigmaMax / (1 + sigmaMax);
  return {
    name: 'log-logit',
    alpha: () => 1,
    sigma: (t) => {
      const u = tMin + t * (tMax - tMin);
      return u / (1 - u);
    },
    alphaSigma: (t) =>
      tf.tidy(() => {
        const u = tf.add(tMin, tf.mul(t, tMax - tMin));
        return [tf.onesLike(t), tf.div(u, tf.sub(1, u))];
      }),
  };
}

/** Variance exploding with log sigma linear in t, between sigmaMin and sigmaMax (an alternative in the reference). */
export function logLinearSchedule(options: LogLogitOptions = {}): NoiseSchedule {
  const { sigmaMin = 1e-3, sigmaMax = 1e3 } = options;
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) {
    throw new Error(`logLinearSchedule: need 0 < sigmaMin < sigmaMax, got ${sigmaMin}, ${sigmaMax}`);
  }
  const a = Math.log(sigmaMin);
  const b = Math.log(sigmaMax);
  return {
    name: 'log-linear',
    alpha: () => 1,
    sigma: (t) => Math.exp(a + t * (b - a)),
    alphaSigma: (t) => tf.tidy(() => [tf.onesLike(t), tf.exp(tf.add(a, tf.mul(t, b - a))) as tf.Tensor1D]),
  };
}

export interface RectifiedFlowOptions {
  /** Interpolation time at diffusion time t = 0 (default 1e-3 / (1 + 1e-3): noise level sigma/alpha = 1e-3). */
  tMin?: number;
  /** Interpolation time at t = 1 (default 1e3 / (1 + 1e3): sigma/alpha = 1e3; 1 gives pure noise). */
  tMax?: number;
}

/**
 * Rectified flow: x_t = (1 - u) x + u eps, i.e. alpha = 1 - u, sigma = u, with u = tMin + t (tMax - tMin).
 * The defaults give exactly the noise-to-signal ratios sigma/alpha of the log-logit schedule (1e-3 to 1e3), so
 * both formulations share a time grid; tMax = 1 reaches pure noise (then use the 'u' variable in multistep
 * samplers, since sigma/alpha is infinite there).
 */
export function rectifiedFlowSchedule(options: RectifiedFlowOptions = {}): NoiseSchedule {
  const { tMin = 1e-3 / (1 + 1e-3), tMax = 1e3 / (1 + 1e3) } = options;
  if (!(tMin >= 0 && tMax > tMin && tMax <= 1)) {
    throw new Error(`rectifiedFlowSchedule: need 0 <= tMin < tMax <= 1, got ${tMin}, ${tMax}`);
  }
  const at = (t: number): number => tMin + t * (tMax - tMin);
  return {
    name: 'rectified-flow',
    alpha: (t) => 1 - at(t),
    sigma: (t) => at(t),
    alphaSigma: (t) =>
      tf.tidy(() => {
        const u = tf.add(tMin, tf.mul(t, tMax - tMin)) as tf.Tensor1D;
        return [tf.sub(1, u), u];
      }),
  };
}
