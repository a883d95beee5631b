/**
 * The types the training step's parts share (trainer, gradient computation, data-parallel workers, loss
 * builders): what a loss function receives and returns, and what a gradient source hands back.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../streams/random.js';
import type { NamedParameters, NamedTensors } from './optim.js';

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

/** Loss (a number) and named gradients (tensors the trainer disposes) of one batch. */
export interface ComputedGradients {
  loss: number;
  grads: NamedTensors;
}

