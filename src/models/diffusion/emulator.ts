/**
 * Emulators: a backbone plus how it is trained and how it predicts a window of latent states from observed
 * context frames. The diffusion emulator (either formulation) samples the unobserved frames with a sampler; the
 * deterministic surrogate predicts them in one call. Both take the same masked inputs, so rollouts and
 * training loops treat them alike.
 */
import * as tf from '@tensorflow/tfjs';
import type { Vit } from '../nn/vit.js';
import {
  clampContext,
  conditionedDenoiser,
  denoisingLoss,
  frameMask5D,
  preconditionedDenoiser,
  type Backbone,
  type ObservedContext,
  type Denoiser,
  type SamplingDenoiser,
  type WindowBatch,
} from './denoiser.js';
import type { NoiseSchedule } from './schedule.js';
import { formulation as makeFormulation, type Formulation, type FormulationName } from './formulation.js';
import { noiseScale, sample, sampleFrom, type SamplerOptions } from './samplers.js';
import type { Rng } from '../../streams/random.js';
import type { NoiseSeed } from './random.js';
import type { LossFunction } from '../train/types.js';

export interface Emulator {
  readonly kind: FormulationName | 'surrogate' | 'student';
  readonly backbone: Backbone;
  /**
   * Predicts whole windows (B, L, H, W, C) from the observed frames of `context` (mask 1); the observed frames
   * of the result equal the input. `seed` drives a stochastic emulator's noise (ignored by the surrogate): one
   * integer for the batch, or one per row, so that row b depends only on its inputs and `seed[b]` (random.ts).
   */
  predict(context: ObservedContext, seed: NoiseSeed): tf.Tensor5D;
  /** The training loss of one batch (a scalar; call inside `tf.variableGrads`). */
  loss(batch: WindowBatch, rng: Rng): tf.Scalar;
}

export interface DiffusionEmulator extends Emulator {
  readonly kind: FormulationName;
  readonly formulation: Formulation;
  readonly denoiser: Denoiser;
  readonly sampling: Omit<SamplerOptions, 'seed'>;
  /**
   * Samples from given standard normal noise `eps` (shaped like the window): x_1 = noiseScale * eps, then the
   * sampler with the context imposed, as `predict` does (which draws eps from its seed). For the deterministic
   * samplers the result is a function of (context, eps) alone; 'ddpm' takes its step noise from `seed`.
   */
  predictFrom(context: ObservedContext, eps: tf.Tensor5D, seed?: NoiseSeed): tf.Tensor5D;
  /**
   * `predict` with the context-conditioned denoiser passed through `guide` before sampling (guidance.ts:
   * `(d, schedule) => mmps().guide(d, schedule, likelihood)`); with the identity it is `predict`.
   */
  predictGuided(context: ObservedContext, seed: NoiseSeed, guide: (denoise: SamplingDenoiser, schedule: NoiseSchedule) => SamplingDenoiser): tf.Tensor5D;
}

export interface DiffusionEmulatorOptions {
  /** 'diffusion' (reference, default) or 'flow', or a custom formulation. */
  formulation?: FormulationName | Formulation;
  /** Sampler settings (default: Adams-Bashforth order 3, 16 steps). */
  sampling?: Omit<SamplerOptions, 'seed'>;
}

/** A diffusion (or flow-matching) emulator: denoising loss for training, sampling with context for prediction. */
export function diffusionEmulator(backbone: Backbone, options: DiffusionEmulatorOptions = {}): DiffusionEmulator {
  const f = typeof options.formulation === 'object' ? options.formulation : makeFormulation(options.formulation ?? 'diffusion');
  const denoiser = preconditionedDenoiser(backbone, f);
  const sampling = { sampler: 'ab' as const, steps: 16, order: 3, ...options.sampling };
  const predictGuided: DiffusionEmulator['predictGuided'] = (context, seed, guide) => {
    const denoise = guide(conditionedDenoiser(denoiser, f.schedule, context), f.schedule);
    const x = sample(denoise, f.schedule, context.observed.shape, { ...sampling, seed }) as tf.Tensor5D;
    const out = clampContext(x, context);
    x.dispose();
    return out;
  };
  return {
    kind: f.name,
    backbone,
    formulation: f,
    denoiser,
    sampling,
    predict: (context, seed) => predictGuided(context, seed, (d) => d),
    predictGuided,
    predictFrom(context, eps, seed) {
      const denoise = conditionedDenoiser(denoiser, f.schedule, context);
      const x1 = tf.mul(eps, noiseScale(f.schedule));
      try {
        const x = sampleFrom(denoise, f.schedule, x1, { ...sampling, seed }) as tf.Tensor5D;
        const out = clampContext(x, context);
        x.dispose();
        return out;
      } finally {
        x1.dispose();
      }
    },
    loss: (batch, rng) => denoisingLoss(backbone, f, batch, rng),
  };
}

/**
 * The deterministic surrogate: F(x * mask, mask, labels) with outputs clamped at observed frames, trained with
 * the MSE over the window (observed frames, being clamped, add zero).
 */
export function surrogateEmulator(backbone: Backbone): Emulator {
  const run = (x: tf.Tensor5D, mask: tf.Tensor2D, labels: tf.Tensor2D | null) =>
    tf.tidy(() => {
      const observed = tf.mul(x, frameMask5D(mask)) as tf.Tensor5D;
      return clampContext(backbone(observed, mask, null, labels), { observed: x, mask });
    });
  return {
    kind: 'surrogate',
    backbone,
    predict: (context) => run(context.observed, context.mask, context.labels),
    loss: (batch) =>
      tf.tidy(() => {
        if (!batch.mask) throw new Error('surrogate loss: the batch needs a context mask');
        return tf.mean(tf.square(tf.sub(run(batch.x, batch.mask, batch.labels), batch.x)));
      }),
  };
}

/**
 * Adapts the space-time ViT of `src/models/nn` to the backbone interface: the frame mask (B, L) becomes its mask
 * channels (B, L, H, W, maskChannels), c_noise its noise input, labels its label input.
 */
export function vitBackbone(vit: Vit, applyOptions: { training?: boolean; random?: () => number } = {}): Backbone {
  const { maskChannels } = vit.config;
  const fn = (x: tf.Tensor5D, mask: tf.Tensor2D | null, cNoise: tf.Tensor1D | null, labels: tf.Tensor2D | null) =>
    tf.tidy(() => {
      const [B, L, H, W] = x.shape;
      // A masked network called without context sees an all-zero mask (nothing observed).
      const frames = mask ?? tf.zeros([B, L]);
      const channels = maskChannels > 0 ? tf.tile(frameMask5D(frames as tf.Tensor2D), [1, 1, H, W, maskChannels]) : undefined;
      return vit.apply(
        x,
        { mask: channels, noise: vit.config.noise ? (cNoise ?? undefined) : undefined, label: labels ?? undefined },
        applyOptions,
      ) as tf.Tensor5D;
    });
  return Object.assign(fn, { variables: [...vit.params.values()] });
}

/**
 * An emulator's loss in the trainer's form, drawing its noise from the trainer's checkpointed RNG:
 * `new Trainer({ params: vit.params, loss: emulatorLoss(emulator), ... })`, then `pipe(batches, trainer.stage())`.
 */
export function emulatorLoss(emulator: Emulator): LossFunction<WindowBatch> {
  return (batch, context) => emulator.loss(batch, context.rng);
}
