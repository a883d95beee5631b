/**
 * Physics-informed distillation (PIDDM, Zhang & Zou 2025; docs: /work/shared/notes/formulas.md): a trained
 * diffusion (or flow) emulator, the teacher, is run with its deterministic ODE sampler to make (noise eps,
 * sample x0) pairs; a one-step student d(eps) is trained on them with |d(eps) - x0|^2 + lambda R(d(eps)), R a
 * physics penalty of the generated window; at inference the student is one network call, optionally refined by
 * a few gradient steps on eps.
 *
 * - `teacherPairs(teacher, { seed })`: stage from context batches (`emulatorBatches` / `contextBatches`) to
 *   pair batches, the noise of batch i drawn from `pairSeed(seed, i)` (src/streams/random.ts); the sample is
 *   exactly `teacher.predict(context, pairSeed(seed, i))`. Written to disk by src/formats/pairs.
 * - `studentEmulator(backbone, teacherFormulation, options)`: an `Emulator` whose prediction is the teacher's
 *   one-step Euler map from t = 1 to t = 0 on the backbone (one call), so a student built on a copy of the
 *   teacher's weights starts as the teacher's 1-step Euler sampler.
 * - `physicsPenalty(ae, residual)`: R for latent windows: decode, denormalise (tfjs, differentiable), residual.
 * - `refine(student, eps, context, { steps, lr, penalty })`: gradient steps on eps.
 */
import * as tf from '@tensorflow/tfjs';
import { named, type Stage } from '../../streams/core.js';
import { pairSeed, type Rng } from '../../streams/random.js';
import type { PdeResidual } from '../../physics/residuals/residual.js';
import { denormalizeChannels, physicalDecoder, type LoadedAutoencoder } from '../autoencoder.js';
import {
  clampContext,
  conditionedDenoiser,
  frameMask5D,
  preconditionedDenoiser,
  type Backbone,
  type ObservedContext,
  type WindowBatch,
} from './denoiser.js';
import type { DiffusionEmulator, Emulator } from './emulator.js';
import type { Formulation } from './formulation.js';
import { isDeterministicSampler, noiseScale } from './samplers.js';
import { BatchNoise, type NoiseSeed } from './random.js';
import type { ContextBatch } from './windows.js';
import type { LossFunction } from '../train/types.js';
import type { PairBatch } from '../../formats/pairs/schema.js';

/** A pair batch as tensors, the student's training batch: `x` is the teacher's sample. */
export interface PairTensors extends WindowBatch {
  /** Standard normal noise (B, L, H, W, C). */
  noise: tf.Tensor5D;
  mask: tf.Tensor2D;
}

/** What `teacherPairs` needs of a teacher (a `DiffusionEmulator` has it). */
export type Teacher = Pick<DiffusionEmulator, 'predictFrom' | 'sampling'>;

export interface TeacherPairsOptions {
  /** Run seed: the noise of the i-th batch (0-based) is drawn from `pairSeed(seed, i)`. */
  seed: number;
  /** Index of the first batch (default 0; a resumed or sharded run passes where it starts). */
  firstBatch?: number;
}

/** Standard normal noise drawn as `predict` draws it from `seed` (its first tensor seed; per row for per-row seeds). */
export function noiseFromSeed(shape: readonly number[], seed: NoiseSeed): tf.Tensor5D {
  return new BatchNoise(seed).normal(shape) as tf.Tensor5D;
}

/**
 * Stage: for each context batch, draws eps from `pairSeed(seed, i)` and runs the teacher's deterministic
 * sampler from it with the batch's observed frames as context (as `predict` conditions); yields the pair batch.
 * The sample equals `teacher.predict(context, pairSeed(seed, i))`. Holds one batch of tensors at a time.
 */
export function teacherPairs(teacher: Teacher, options: TeacherPairsOptions): Stage<ContextBatch, PairBatch> {
  if (!isDeterministicSampler(teacher.sampling.sampler)) {
    throw new Error(`teacherPairs: the teacher samples with ${JSON.stringify(teacher.sampling.sampler)}, which is stochastic; distillation needs a deterministic ODE sampler (euler, heun or ab)`);
  }
  const { seed, firstBatch = 0 } = options;
  return named('teacher-pairs', async function* (source) {
    let index = firstBatch;
    for await (const b of source) {
      const [B, L] = b.shape;
      const observed = tf.tidy(() => tf.mul(tf.tensor5d(b.x, [...b.shape]), frameMask5D(tf.tensor2d(b.mask, [B, L])))) as tf.Tensor5D;
      const mask = tf.tensor2d(b.mask, [B, L]);
      const labels = b.labels ? tf.tensor2d(b.labels, [B, b.labels.length / B]) : null;
      const eps = noiseFromSeed(b.shape, pairSeed(seed, index));
      let result: PairBatch;
      try {
        const sample = teacher.predictFrom({ observed, mask, labels }, eps);
        try {
          result = {
            noise: (await eps.data()) as Float32Array,
            sample: (await sample.data()) as Float32Array,
            observed: (await observed.data()) as Float32Array,
            shape: b.shape,
            mask: b.mask.slice(),
            labels: b.labels ? b.labels.slice() : null,
            index,
          };
        } finally {
          sample.dispose();
        }
      } finally {
        tf.dispose([observed, mask, eps]);
        if (labels) labels.dispose();
      }
      index++;
      yield result;
    }
  });
}

/** Uploads a pair batch as the student's training batch (the caller, or the trainer, disposes the tensors). */
export function pairTensors(b: PairBatch): PairTensors {
  const [B, L] = b.shape;
  return {
    x: tf.tensor5d(b.sample, [...b.shape]),
    noise: tf.tensor5d(b.noise, [...b.shape]),
    mask: tf.tensor2d(b.mask, [B, L]),
    labels: b.labels ? tf.tensor2d(b.labels, [B, b.labels.length / B]) : null,
  };
}

/** A differentiable physics penalty of a latent window (B, L, h, w, c): a scalar. */
export type LatentPenalty = (latents: tf.Tensor5D) => tf.Scalar;

export interface StudentOptions {
  /** Physics penalty R of the predicted window, added to the loss with weight `lambda` (default none). */
  penalty?: LatentPenalty;
  /** Weight of the penalty (default 1). */
  lambda?: number;
}

export interface StudentEmulator extends Emulator {
  readonly kind: 'student';
  readonly formulation: Formulation;
  /**
   * d(eps): the prediction from standard normal eps (B, L, H, W, C) with the context imposed, observed frames
   * clamped; one backbone call, differentiable in eps and in the weights.
   */
  generate(context: ObservedContext, eps: tf.Tensor5D): tf.Tensor5D;
  /** mean |d(eps) - x0|^2 + lambda R(d(eps)) on a pair batch (`batch.x` the teacher's sample). */
  loss(batch: PairTensors, rng: Rng): tf.Scalar;
}

/**
 * The one-step student on `backbone` for a teacher of formulation `teacherFormulation`: d(eps) is the Euler
 * (DDIM) step of the conditioned, preconditioned denoiser from t = 1 (x_1 = noiseScale * eps) to t = 0,
 * x_0 = alpha_0 D + sigma_0 (x_1 - alpha_1 D) / sigma_1, clamped at observed frames. On a copy of the teacher's
 * weights it is the teacher's 1-step Euler sampler; `predict(context, seed)` draws eps as the teacher's
 * `predict` does, so both start from the same noise for a seed.
 */
export function studentEmulator(backbone: Backbone, teacherFormulation: Formulation, options: StudentOptions = {}): StudentEmulator {
  const f = teacherFormulation;
  const { schedule } = f;
  const denoiser = preconditionedDenoiser(backbone, f);
  const lambda = options.lambda ?? 1;
  const [a1, s1, a0, s0] = [schedule.alpha(1), schedule.sigma(1), schedule.alpha(0), schedule.sigma(0)];
  const scale = noiseScale(schedule);
  const generate = (context: ObservedContext, eps: tf.Tensor5D): tf.Tensor5D =>
    tf.tidy(() => {
      if (eps.shape.some((d, i) => d !== context.observed.shape[i])) {
        throw new Error(`student: noise shape [${eps.shape}] differs from the window's [${context.observed.shape}]`);
      }
      const denoise = conditionedDenoiser(denoiser, schedule, context);
      const x = tf.mul(eps, scale) as tf.Tensor5D;
      // the operations of eulerSampler's step, in its order, so the untrained student equals it bit for bit
      const d = denoise(x, 1);
      const z = tf.div(tf.sub(x, tf.mul(d, a1)), s1);
      return clampContext(tf.add(tf.mul(d, a0), tf.mul(z, s0)) as tf.Tensor5D, context);
    });
  return {
    kind: 'student',
    backbone,
    formulation: f,
    generate,
    predict(context, seed) {
      const eps = noiseFromSeed(context.observed.shape, seed);
      try {
        return generate(context, eps);
      } finally {
        eps.dispose();
      }
    },
    loss(batch) {
      const { noise, mask } = batch as Partial<PairTensors>;
      if (!noise || !mask) throw new Error('student loss: the batch needs the teacher pairs\' noise and context mask (use pairTensors)');
      return tf.tidy(() => {
        const context = { observed: batch.x, mask, labels: batch.labels };
        const predicted = generate(context, noise);
        const fit = tf.mean(tf.square(tf.sub(predicted, batch.x))) as tf.Scalar;
        return options.penalty ? (tf.add(fit, tf.mul(options.penalty(predicted), lambda)) as tf.Scalar) : fit;
      });
    },
  };
}

/**
 * The student's loss in the trainer's form: `new Trainer({ params: vit.params, loss: studentLoss(student), ... })`,
 * then `pipe(readPairs(path, { teacher }), map(pairTensors), trainer.stage())`.
 */
export function studentLoss(student: StudentEmulator): LossFunction<PairTensors> {
  return (batch, context) => student.loss(batch, context.rng);
}

/**
 * R for windows of normalised physical states (B, L, H, W, C), as a pixel-space generator makes them: undoes
 * the normalisation (`coefficients`; none: the states are in physical units) and returns the residual's mean
 * square over the window (two-frame residuals: over the L - 1 consecutive pairs).
 */
export function statePenalty(residual: Pick<PdeResidual, 'meanSquare'>, coefficients?: Parameters<typeof denormalizeChannels>[0]): LatentPenalty {
  const physical = coefficients ? denormalizeChannels(coefficients) : (x: tf.Tensor) => x;
  return (states) =>
    tf.tidy(() => {
      if (states.rank !== 5) throw new Error(`statePenalty: expected windows (B, L, H, W, C), got [${states.shape}]`);
      return residual.meanSquare(physical(states));
    });
}

/**
 * R for latent windows (B, L, h, w, c): decodes every frame with the autoencoder (differentiable), undoes the
 * normalisation with tf ops (y * scale + shift per channel, then expm1 on log1p-transformed fields; the
 * statistics are the normaliser's own float32 coefficients), and returns the residual's mean square over the
 * window (a two-frame residual on the L - 1 consecutive pairs). All B * L frames go through the decoder in one
 * call (the gradient needs them all anyway).
 */
export function physicsPenalty(
  ae: Pick<LoadedAutoencoder, 'dcae' | 'normalizer' | 'data'>,
  residual: Pick<PdeResidual, 'meanSquare'>,
): LatentPenalty {
  const decode = physicalDecoder(ae);
  return (latents) =>
    tf.tidy(() => {
      if (latents.rank !== 5) throw new Error(`physicsPenalty: expected latent windows (B, L, h, w, c), got [${latents.shape}]`);
      const [B, L, h, w, c] = latents.shape;
      const physical = decode(tf.reshape(latents, [B * L, h, w, c]) as tf.Tensor4D);
      const [, H, W, C] = physical.shape;
      return residual.meanSquare(tf.reshape(physical, [B, L, H, W, C]));
    });
}

export interface RefineOptions {
  /** Gradient steps on eps (default 10). */
  steps?: number;
  /** Step size of the Adam updates of eps (default 0.05). */
  lr?: number;
  /** The physics penalty R (e.g. `physicsPenalty(ae, residual)`). */
  penalty: LatentPenalty;
  /** Weight of the penalty (default 1). */
  lambda?: number;
  /**
   * Partial observations over the window: values (B, L, H, W, C) and a mask broadcastable to them (1 where
   * observed). Adds the misfit mean(((d(eps) - values) * mask)^2), and the penalty is taken on the mix
   * values * mask + d(eps) * (1 - mask), as in PIDDM's inverse problems.
   */
  observation?: { values: tf.Tensor; mask: tf.Tensor };
}

export interface RefineResult {
  /** The refined prediction d(eps_K), clamped at the context frames. */
  prediction: tf.Tensor5D;
  /** The refined noise eps_K. */
  eps: tf.Tensor5D;
  /** The objective before each step and after the last (steps + 1 values). */
  objective: number[];
}

/**
 * Refinement: `steps` Adam steps on eps reducing lambda R(d(eps)) (plus the observation misfit when given),
 * starting from `eps` (not modified). The caller disposes the result's tensors.
 */
export async function refine(student: Pick<StudentEmulator, 'generate'>, eps: tf.Tensor5D, context: ObservedContext, options: RefineOptions): Promise<RefineResult> {
  const { steps = 10, lr = 0.05, penalty, lambda = 1, observation } = options;
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`refine: steps must be a non-negative integer, got ${steps}`);
  const variable = tf.variable(eps, true);
  const optimizer = tf.train.adam(lr);
  const objective = (): tf.Scalar =>
    tf.tidy(() => {
      const x = student.generate(context, variable as tf.Variable & tf.Tensor5D);
      if (!observation) return tf.mul(penalty(x), lambda) as tf.Scalar;
      const m = observation.mask;
      const misfit = tf.mean(tf.square(tf.mul(tf.sub(x, observation.values), m)));
      const mix = tf.add(tf.mul(observation.values, m), tf.mul(x, tf.sub(1, m))) as tf.Tensor5D;
      return tf.add(misfit, tf.mul(penalty(mix), lambda)) as tf.Scalar;
    });
  const values: number[] = [];
  try {
    for (let k = 0; k < steps; k++) {
      const loss = optimizer.minimize(objective, true, [variable])!;
      values.push((await loss.data())[0]!);
      loss.dispose();
    }
    const last = objective();
    values.push((await last.data())[0]!);
    last.dispose();
    const refined = tf.clone(variable) as tf.Tensor5D;
    return { prediction: student.generate(context, refined), eps: refined, objective: values };
  } finally {
    optimizer.dispose();
    variable.dispose();
  }
}
