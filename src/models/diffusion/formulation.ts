/**
 * Formulations: how a network's output F becomes the denoiser D(x_t) = c_skip x_t + c_out F(c_in x_t, c_noise)
 * and how the denoising error is weighted in training. Two are provided behind the same interface, so switching
 * is one option (`formulation('diffusion')` or `formulation('flow')`):
 *  - 'diffusion': the reference system, variance exploding log-logit schedule, EDM preconditioning with
 *    sigma_data = 1, loss weight 1 / v with v = sigma^2 / (alpha^2 + sigma^2);
 *  - 'flow': rectified flow, x_t = (1 - t) x + t eps with the network predicting the velocity eps - x, i.e.
 *    c_skip = 1, c_out = -sigma, and the velocity MSE, which is the denoising error weighted by 1 / sigma^2.
 * In both, c_out^2 times the weight is 1, so training is a plain MSE in the network's output space.
 */
import * as tf from '@tensorflow/tfjs';
import {
  logLogitSchedule,
  rectifiedFlowSchedule,
  type LogLogitOptions,
  type NoiseSchedule,
  type RectifiedFlowOptions,
} from './schedule.js';

export type FormulationName = 'diffusion' | 'flow';

/** Preconditioning coefficients, per sample (1-d tensors of the batch size). */
export interface Preconditioning {
  cIn: tf.Tensor1D;
  cOut: tf.Tensor1D;
  cSkip: tf.Tensor1D;
  cNoise: tf.Tensor1D;
}

export interface Formulation {
  readonly name: FormulationName;
  readonly schedule: NoiseSchedule;
  /** Coefficients of D = c_skip x_t + c_out F(c_in x_t, c_noise) at the given (alpha, sigma). */
  precondition(alpha: tf.Tensor1D, sigma: tf.Tensor1D): Preconditioning;
  /** Training weight of the squared denoising error (D - x)^2 at (alpha, sigma). */
  lossWeight(alpha: tf.Tensor1D, sigma: tf.Tensor1D): tf.Tensor1D;
}

/** c_noise = 10 ln(sigma / alpha), shared by both formulations (finite on their default time ranges). */
function noiseLevel(alpha: tf.Tensor1D, sigma: tf.Tensor1D): tf.Tensor1D {
  return tf.mul(10, tf.log(tf.div(sigma, alpha)));
}

export interface EdmOptions {
  /** Standard deviation of the data, sigma_data (default 1, the reference; Karras et al. use 0.5). */
  sigmaData?: number;
}

/**
 * EDM preconditioning (Karras et al. 2022) over any schedule, written for x_t = alpha x + sigma eps by applying
 * EDM to x_t / alpha (noise level sigma / alpha), with sd = sigma_data:
 * c_in = 1 / sqrt(sigma^2 + alpha^2 sd^2), c_out = sigma sd / sqrt(sigma^2 + alpha^2 sd^2),
 * c_skip = alpha sd^2 / (sigma^2 + alpha^2 sd^2), weight = (sigma^2 + alpha^2 sd^2) / (sigma sd)^2.
 * With sd = 1 these are the reference's coefficients (weight 1 / v, v = sigma^2 / (alpha^2 + sigma^2)).
 */
export function edmFormulation(schedule: NoiseSchedule = logLogitSchedule(), options: EdmOptions = {}): Formulation {
  const sd = options.sigmaData ?? 1;
  if (!(sd > 0)) throw new Error(`edmFormulation: sigmaData must be positive, got ${sd}`);
  const norm2 = (alpha: tf.Tensor1D, sigma: tf.Tensor1D) => tf.add(tf.mul(tf.square(alpha), sd * sd), tf.square(sigma));
  return {
    name: 'diffusion',
    schedule,
    precondition: (alpha, sigma) =>
      tf.tidy(() => {
        const n2 = norm2(alpha, sigma);
        const rsqrt = tf.rsqrt(n2);
        return {
          cIn: rsqrt as tf.Tensor1D,
          cOut: tf.mul(tf.mul(sigma, rsqrt), sd) as tf.Tensor1D,
          cSkip: tf.div(tf.mul(alpha, sd * sd), n2) as tf.Tensor1D,
          cNoise: noiseLevel(alpha, sigma),
        };
      }),
    lossWeight: (alpha, sigma) => tf.tidy(() => tf.div(norm2(alpha, sigma), tf.mul(tf.square(sigma), sd * sd))),
  };
}

/** Rectified flow with velocity prediction: D = x_t - sigma v, weight 1 / sigma^2 (velocity MSE). */
export function flowFormulation(schedule: NoiseSchedule = rectifiedFlowSchedule()): Formulation {
  return {
    name: 'flow',
    schedule,
    precondition: (alpha, sigma) =>
      tf.tidy(() => ({
        cIn: tf.rsqrt(tf.add(tf.square(alpha), tf.square(sigma))) as tf.Tensor1D,
        cOut: tf.neg(sigma),
        cSkip: tf.onesLike(sigma),
        cNoise: noiseLevel(alpha, sigma),
      })),
    lossWeight: (_alpha, sigma) => tf.tidy(() => tf.reciprocal(tf.square(sigma))),
  };
}

export interface FormulationOptions {
  /** Schedule range for 'diffusion' (log-logit). */
  logLogit?: LogLogitOptions;
  /** Schedule range for 'flow'. */
  rectifiedFlow?: RectifiedFlowOptions;
  /** sigma_data for 'diffusion' (default 1). */
  edm?: EdmOptions;
}

/** The one switch between the two formulations, each with its default schedule. */
export function formulation(name: FormulationName, options: FormulationOptions = {}): Formulation {
  if (name === 'diffusion') return edmFormulation(logLogitSchedule(options.logLogit), options.edm);
  if (name === 'flow') return flowFormulation(rectifiedFlowSchedule(options.rectifiedFlow));
  throw new Error(`formulation: expected 'diffusion' or 'flow', got ${JSON.stringify(name)}`);
}
