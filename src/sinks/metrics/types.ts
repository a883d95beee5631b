/**
 * The unit the metric sinks consume, shared by the reducer, the chunk scorer and its worker, and every producer
 * of rollouts (src/models/emulate.ts); and the summary every reducer keeps.
 */
import type { RolloutOrigin } from '../../formats/rollouts/schema.js';

/** Mean, population standard deviation and number of finite per-frame values of one metric. */
export interface MetricSummary {
  mean: number;
  std: number;
  count: number;
}

/** One chunk of one trajectory's rollout, scored against the truth. */
export interface RolloutChunk {
  /** Name of the emulator that produced the ensemble (default "model"). */
  model?: string;
  /** Identifier of the trajectory (used only in error messages and to pick snapshot frames). */
  trajectory?: string | number;
  /** Channel names, length C. A vector field contributes one channel per component (e.g. velocity_x). */
  fields: readonly string[];
  /** Spatial grid shape, e.g. [H, W] (2D) or [H, W, D] (3D). */
  spatialShape: readonly number[];
  /** Lead time of the first frame of this chunk (1-based: 1 = first predicted state). */
  lead: number;
  /** Truth, shape (T, ...spatialShape, C), row-major. */
  truth: Float32Array | Float64Array;
  /** M >= 1 ensemble members, each shaped like `truth` (a deterministic model has one member). */
  ensemble: readonly (Float32Array | Float64Array)[];
  /**
   * Optional: the true state at lead `lead - 1` (for lead 1, the last context state), one frame
   * (...spatialShape, C). Metrics of consecutive states (the PDE residual) use it where the stream holds no
   * earlier prediction.
   */
  previous?: Float32Array | Float64Array;
  /** Where the chunk's first frame comes from in the Well data (set by `withTruth`; needed to save rollouts). */
  origin?: RolloutOrigin;
}
