/**
 * Denoisers and the denoising loss. A backbone is any network `(x, mask, cNoise, labels) => y` over windows of
 * latent states shaped (B, L, H, W, C); the preconditioned denoiser wraps it into D(x_t, t) with the formulation's
 * coefficients; the conditioned denoiser imposes observed context frames (written into x_t, given to the network
 * as the mask, and clamped in the output), which is how emulators condition on the past.
 */
import * as tf from '@tensorflow/tfjs';
import type { Formulation } from './formulation.js';
import type { NoiseSchedule } from './schedule.js';
import type { Rng } from '../../streams/random.js';
import { tensorSeed } from './random.js';

/**
 * A network over windows of latent states: x (B, L, H, W, C), a frame mask (B, L) with 1 on observed frames,
 * the noise level c_noise (B) (null for deterministic surrogates) and labels (B, P) (null when there are none).
 * Returns a tensor shaped like x. `variables` lists its trainable weights.
 */
export type Backbone = ((
  x: tf.Tensor5D,
  mask: tf.Tensor2D | null,
  cNoise: tf.Tensor1D | null,
  labels: tf.Tensor2D | null,
) => tf.Tensor5D) & { readonly variables?: readonly tf.Variable[] };

/** D(x_t, t): the estimate of the clean window given a noisy one, at one time for all (number) or per sample. */
export type Denoiser = (
  xt: tf.Tensor5D,
  t: number | tf.Tensor1D,
  mask: tf.Tensor2D | null,
  labels: tf.Tensor2D | null,
) => tf.Tensor5D;

/** A denoiser with its conditioning bound, as samplers use it: one time for the whole batch. */
export type SamplingDenoiser = (xt: tf.Tensor5D, t: number) => tf.Tensor5D;

/** Per-sample (alpha, sigma) at time t (a number is broadcast to the batch). */
export function alphaSigmaAt(schedule: NoiseSchedule, t: number | tf.Tensor1D, batch: number): [tf.Tensor1D, tf.Tensor1D] {
  if (typeof t === 'number') return [tf.fill([batch], schedule.alpha(t)), tf.fill([batch], schedule.sigma(t))];
  if (t.shape[0] !== batch) throw new Error(`denoiser: t has ${t.shape[0]} entries for a batch of ${batch}`);
  return schedule.alphaSigma(t);
}

/** Reshapes a per-sample (B) tensor to (B, 1, 1, 1, 1) so it broadcasts over windows. */
export function perSample(v: tf.Tensor1D): tf.Tensor5D {
  return tf.reshape(v, [v.shape[0], 1, 1, 1, 1]);
}

/** Reshapes a frame mask (B, L) to (B, L, 1, 1, 1) so it broadcasts over a window's grid and channels. */
export function frameMask5D(mask: tf.Tensor2D): tf.Tensor5D {
  return tf.reshape(mask, [mask.shape[0], mask.shape[1], 1, 1, 1]);
}

function checkWindow(where: string, x: tf.Tensor, mask: tf.Tensor2D | null): void {
  if (x.rank !== 5) throw new Error(`${where}: expected a window (B, L, H, W, C), got shape [${x.shape}]`);
  if (mask && (mask.shape[0] !== x.shape[0] || mask.shape[1] !== x.shape[1])) {
    throw new Error(`${where}: mask shape [${mask.shape}] does not match window (B, L) = [${x.shape.slice(0, 2)}]`);
  }
}

/** D(x_t) = c_skip x_t + c_out F(c_in x_t, c_noise, mask, labels), with the formulation's coefficients. */
export function preconditionedDenoiser(backbone: Backbone, formulation: Formulation): Denoiser {
  return (xt, t, mask, labels) =>
    tf.tidy(() => {
      checkWindow('preconditionedDenoiser', xt, mask);
      const [alpha, sigma] = alphaSigmaAt(formulation.schedule, t, xt.shape[0]);
      const { cIn, cOut, cSkip, cNoise } = formulation.precondition(alpha, sigma);
      const f = backbone(tf.mul(xt, perSample(cIn)), mask, cNoise, labels);
      return tf.add(tf.mul(perSample(cSkip), xt), tf.mul(perSample(cOut), f));
    });
}

export interface ObservedContext {
  /** Window (B, L, H, W, C) holding the observed frames where `mask` is 1 (other values are ignored). */
  observed: tf.Tensor5D;
  /** Frame mask (B, L): 1 for observed frames. */
  mask: tf.Tensor2D;
  labels: tf.Tensor2D | null;
}

/**
 * Writes the observed frames into a noisy window at time t: x_t <- sqrt(alpha^2 + sigma^2) x_obs where the mask
 * is 1, the scale the network sees noisy frames at.
 */
export function imposeContext(
  schedule: NoiseSchedule,
  xt: tf.Tensor5D,
  t: number | tf.Tensor1D,
  context: Pick<ObservedContext, 'observed' | 'mask'>,
): tf.Tensor5D {
  return tf.tidy(() => {
    const [alpha, sigma] = alphaSigmaAt(schedule, t, xt.shape[0]);
    const scale = perSample(tf.sqrt(tf.add(tf.square(alpha), tf.square(sigma))) as tf.Tensor1D);
    const m = frameMask5D(context.mask);
    return tf.add(tf.mul(m, tf.mul(scale, context.observed)), tf.mul(tf.sub(1, m), xt));
  });
}

/** Replaces the observed frames of a window by x_obs (the output clamp). */
export function clampContext(x: tf.Tensor5D, context: Pick<ObservedContext, 'observed' | 'mask'>): tf.Tensor5D {
  return tf.tidy(() => {
    const m = frameMask5D(context.mask);
    return tf.add(tf.mul(m, context.observed), tf.mul(tf.sub(1, m), x));
  });
}

/**
 * Binds a denoiser to observed context and labels, re-imposing the context at every call: observed frames are
 * written into x_t, the mask is given to the network, and the output is clamped to x_obs at observed frames.
 * The caller keeps ownership of the context tensors.
 */
export function conditionedDenoiser(denoiser: Denoiser, schedule: NoiseSchedule, context: ObservedContext): SamplingDenoiser {
  checkWindow('conditionedDenoiser', context.observed, context.mask);
  return (xt, t) =>
    tf.tidy(() => {
      const x = imposeContext(schedule, xt, t, context);
      return clampContext(denoiser(x, t, context.mask, context.labels), context);
    });
}

/** Binds labels only (no context): unconditional generation. */
export function unconditionedDenoiser(denoiser: Denoiser, labels: tf.Tensor2D | null = null): SamplingDenoiser {
  return (xt, t) => denoiser(xt, t, null, labels);
}

export interface WindowBatch {
  /** Clean windows (B, L, H, W, C). */
  x: tf.Tensor5D;
  /** Frame mask (B, L), 1 on observed context frames; null for unconditional training. */
  mask: tf.Tensor2D | null;
  labels: tf.Tensor2D | null;
}

export interface DiffusionNoise {
  /** Diffusion times (B) in [0, 1]. */
  t: tf.Tensor1D;
  /** Standard normal noise shaped like x. */
  eps: tf.Tensor5D;
}

/** Draws t ~ U(0, 1) per sample and eps ~ N(0, I) from a seeded generator. */
export function drawNoise(rng: Rng, shape: readonly [number, number, number, number, number]): DiffusionNoise {
  const t = new Float32Array(shape[0]);
  for (let i = 0; i < t.length; i++) t[i] = rng.uniform();
  return {
    t: tf.tensor1d(t),
    eps: tf.randomNormal([...shape], 0, 1, 'float32', tensorSeed(rng)) as tf.Tensor5D,
  };
}

/**
 * The weighted denoising loss mean(w(t) (D(x_t) - x)^2) over every element of the batch, with x_t = alpha x +
 * sigma eps, the context imposed where the mask is 1 (those positions are clamped, so they add zero). Computed
 * as the equal quantity c_out^2 w (F - F_target)^2 in the network's output space, which keeps float32 exact at
 * small noise levels. `noise` may be a generator (fresh t and eps are drawn) or fixed draws (for checks).
 * Returns a scalar; call it inside `tf.variableGrads` / `optimizer.minimize`.
 */
export function denoisingLoss(
  backbone: Backbone,
  formulation: Formulation,
  batch: WindowBatch,
  noise: Rng | DiffusionNoise,
): tf.Scalar {
  checkWindow('denoisingLoss', batch.x, batch.mask);
  const drawn = 'uniform' in noise ? drawNoise(noise, batch.x.shape) : undefined;
  const { t, eps } = drawn ?? (noise as DiffusionNoise);
  try {
    return tf.tidy(() => {
      const [alpha, sigma] = formulation.schedule.alphaSigma(t);
      const { cIn, cOut, cSkip, cNoise } = formulation.precondition(alpha, sigma);
      const weight = formulation.lossWeight(alpha, sigma);
      let xt = tf.add(tf.mul(perSample(alpha), batch.x), tf.mul(perSample(sigma), eps));
      if (batch.mask) xt = imposeContext(formulation.schedule, xt as tf.Tensor5D, t, { observed: batch.x, mask: batch.mask });
      const f = backbone(tf.mul(xt, perSample(cIn)), batch.mask, cNoise, batch.labels);
      const target = tf.div(tf.sub(batch.x, tf.mul(perSample(cSkip), xt)), perSample(cOut));
      let err = tf.mul(perSample(tf.mul(tf.square(cOut), weight) as tf.Tensor1D), tf.square(tf.sub(f, target)));
      if (batch.mask) err = tf.mul(err, tf.sub(1, frameMask5D(batch.mask)));
      return tf.mean(err);
    });
  } finally {
    if (drawn) tf.dispose([drawn.t, drawn.eps]);
  }
}
