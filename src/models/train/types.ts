/**
 * The types the training step's parts share (trainer, gradient computation, data-parallel workers, loss
 * builders, optimisers): what a loss function receives and returns, what a gradient source hands back, and what
 * the trainer needs from an optimiser.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../streams/random.js';
import type { ParameterLayout } from './layout.js';

/** Named trainable parameters (same shape as the networks' `ParameterMap`). */
export type NamedParameters = Map<string, tf.Variable>;
/** Named gradients (or any named tensors). */
export type NamedTensors = Map<string, tf.Tensor>;

/** A named tensor's values read out (what checkpoints store). */
export interface NamedData {
  shape: number[];
  data: Float32Array;
}

/** The optimisers a configuration may name (optimizer.ts lists them). */
export type OptimizerName = 'adamw' | 'soap' | 'psgd-kron';

/** What the trainer needs from an optimiser. */
export interface Optimizer {
  /** Which optimiser this is (recorded in checkpoints; a checkpoint of another optimiser is refused). */
  readonly kind: OptimizerName;
  /** Base learning rate, used when `apply` is not given one. */
  readonly lr: number;
  /** Number of `apply` calls so far (drives bias corrections and preconditioner schedules). */
  t: number;
  /**
   * One update of every parameter that has a gradient (`scale` multiplies the gradients first, e.g. the clipping
   * factor). Parameters without a gradient are left untouched, state included.
   */
  apply(params: NamedParameters, grads: NamedTensors, lr?: number, scale?: number): void | Promise<void>;
  /** Hyper-parameters, as recorded in a checkpoint's metadata. */
  hyperParameters(): Record<string, unknown>;
  /** The state read out, by `<kind>/<parameter name>` (what checkpoints store). */
  stateData(): Promise<Map<string, NamedData>>;
  /** The tensor kinds and shapes a parameter of `shape` has in its state (for validation). */
  stateShapes(shape: readonly number[]): Map<string, number[]>;
  /** Replaces the whole state: `state` maps parameter names to their tensors by kind (ownership passes). */
  setState(state: Map<string, Map<string, tf.Tensor>>, t: number): void;
  /** Frees the state tensors. */
  dispose(): void;
}

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

