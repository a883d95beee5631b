/**
 * The types the training step's parts share (trainer, gradient computation, data-parallel workers, loss
 * builders): what a loss function receives and returns, and what a gradient source hands back.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../streams/random.js';
import type { NamedParameters, NamedTensors } from './optim.js';
import type { ParameterLayout } from './layout.js';

/** What the loss function gets besides the batch. */
export interface StepContext {
  /** The named parameters (the loss must read them, e.g. through the network that owns them). */
  params: NamedParameters;
  /** 0-based index of this batch. */
  step: number;
  /** Seeded uniform [0, 1) source (dropout masks, noise levels): part of the checkpointed state. */
  random: () => number;
  /** The generator behind `random` (normals, integers). */
  rng: Rng;
}

/** A scalar loss of one batch, built from tfjs ops (it runs inside the gradient tape). */
export type LossFunction<B> = (batch: B, context: StepContext) => tf.Scalar;

/**
 * Gradients as one flat float32 buffer in a parameter layout, with the weights they were computed at, also flat
 * (what `ParallelGradients` hands back): the trainer then updates the flat weights in place with the fused
 * optimiser step (fused.ts) and calls `commit` to write them into the parameters.
 */
export interface FlatGradients {
  layout: ParameterLayout;
  /** The batch's gradient, parameter after parameter (zeros for parameters without one). Valid until the next step. */
  values: Float32Array;
  /** Per parameter (layout order): whether it received a gradient (those without are left alone, as `AdamW.apply` does). */
  present: readonly boolean[];
  /** The squared global gradient norm of `values`, as `globalNorm` computes it (float32; see fused.ts). */
  sumSquares: number;
  /** The parameters' values the gradients were computed at, flat; the update writes the new values here. */
  weights: Float32Array;
  /** Writes `weights` into the parameters (after an update in place). */
  commit(): void;
}

/** Loss (a number) and named gradients (tensors the trainer disposes) of one batch. */
export interface TensorGradients {
  loss: number;
  grads: NamedTensors;
}

/** Loss and flat gradients of one batch. */
export interface FlatComputedGradients {
  loss: number;
  flat: FlatGradients;
}

/** What a gradient source hands the trainer: named tensors or one flat buffer. */
export type ComputedGradients = TensorGradients | FlatComputedGradients;

