/**
 * Training data for emulators: stages that cut cached latent trajectories into windows of L consecutive states
 * and gather windows into batches with a random number of leading context frames per window (the reference's
 * 1 + Poisson(1) mod (L - 1)). Batches are plain typed arrays, ready for `windowBatchTensors`.
 */
import * as tf from '@tensorflow/tfjs';
import { named, type Stage } from '../../streams/core.js';
import { batch } from '../../streams/basic.js';
import { shuffle } from '../../streams/shuffle.js';
import { compose } from '../../streams/core.js';
import type { WindowBatch } from './denoiser.js';
import { Rng, contextSeed, mixSeed } from '../../streams/random.js';
import { poissonDraw } from './random.js';

/** Where a trajectory came from: a free string, or the latent cache's origin record. */
export type TrajectoryOrigin = string | { file: string; trajectory: number; augmentation?: number };

/** One latent trajectory, as the latent cache yields it (its `CachedTrajectory` rows fit this type). */
export interface LatentTrajectory {
  /** States (T, H, W, C), row-major. */
  latents: Float32Array;
  shape: readonly [number, number, number, number];
  /** Simulation parameters (P), or null. */
  labels: Float32Array | null;
  /** Where it came from, used in error messages. */
  origin?: TrajectoryOrigin;
}

/** L consecutive states of one trajectory. */
export interface LatentWindow {
  /** States (L, H, W, C): a view into the trajectory's buffer, not a copy. */
  x: Float32Array;
  shape: readonly [number, number, number, number];
  labels: Float32Array | null;
  /** Index of the first state in its trajectory. */
  start: number;
  origin?: TrajectoryOrigin;
}

/** A batch of windows with context masks, as typed arrays. */
export interface ContextBatch {
  /** Windows (B, L, H, W, C). */
  x: Float32Array;
  shape: readonly [number, number, number, number, number];
  /** Frame mask (B, L): 1 on the observed leading frames. */
  mask: Float32Array;
  /** Number of observed leading frames per window (B). */
  context: Int32Array;
  /** Labels (B, P), or null when the trajectories have none. */
  labels: Float32Array | null;
}

export interface LatentWindowsOptions {
  /** States per window (default 5, the reference). */
  window?: number;
  /** Offset between consecutive windows (default 1). */
  stride?: number;
}

function describe(origin: TrajectoryOrigin | undefined): string {
  if (origin === undefined) return '';
  if (typeof origin === 'string') return ` (${origin})`;
  const aug = origin.augmentation ? `, augmentation ${origin.augmentation}` : '';
  return ` (${origin.file}, trajectory ${origin.trajectory}${aug})`;
}

/**
 * Cuts each trajectory into windows of `window` consecutive states every `stride` states. Pulls one trajectory
 * at a time and yields views into its buffer, so it holds one trajectory. A trajectory shorter than the window
 * yields nothing; a trajectory whose buffer does not match its shape is an error naming its origin.
 */
export function latentWindows(options: LatentWindowsOptions = {}): Stage<LatentTrajectory, LatentWindow> {
  const { window = 5, stride = 1 } = options;
  if (!Number.isInteger(window) || window < 1) throw new Error(`latentWindows: window must be a positive integer, got ${window}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`latentWindows: stride must be a positive integer, got ${stride}`);
  return named('latent-windows', async function* (source) {
    for await (const trajectory of source) {
      const { latents, shape, labels, origin } = trajectory;
      if (shape.length !== 4 || shape.some((n) => !Number.isInteger(n) || n < 0)) {
        throw new Error(`latent trajectory${describe(origin)}: shape must be (T, H, W, C), got [${shape}]`);
      }
      const [T, H, W, C] = shape;
      const frame = H * W * C;
      if (latents.length !== T * frame) {
        throw new Error(
          `latent trajectory${describe(origin)}: latents has ${latents.length} values, expected T*H*W*C = ${T * frame} for shape [${shape}]`,
        );
      }
      for (let start = 0; start + window <= T; start += stride) {
        yield {
          x: latents.subarray(start * frame, (start + window) * frame),
          shape: [window, H, W, C] as const,
          labels,
          start,
          origin,
        };
      }
    }
  });
}

export interface ContextBatchesOptions {
  /** Windows per batch. */
  batchSize: number;
  /** Seed of the context draws. */
  seed: number;
  /** Mean of the Poisson draw (default 1). */
  rate?: number;
  /** Fewest observed frames (default 1): the count is minContext + Poisson(rate) mod (L - minContext). */
  minContext?: number;
  /** Drop a last incomplete batch (default true: training batches keep one shape). */
  dropLast?: boolean;
}

/** Context frame counts: minContext + Poisson(rate) mod (L - minContext), per window. */
export function drawContextCounts(rng: Rng, batchSize: number, frames: number, rate = 1, minContext = 1): Int32Array {
  if (!(minContext >= 0 && minContext < frames)) {
    throw new Error(`drawContextCounts: minContext must be in [0, ${frames - 1}] for windows of ${frames}, got ${minContext}`);
  }
  const counts = new Int32Array(batchSize);
  for (let i = 0; i < batchSize; i++) counts[i] = minContext + (poissonDraw(rng, rate) % (frames - minContext));
  return counts;
}

/** The frame mask (B, L) for given context counts. */
export function frameMaskFromCounts(counts: ArrayLike<number>, frames: number): Float32Array {
  const mask = new Float32Array(counts.length * frames);
  for (let b = 0; b < counts.length; b++) mask.fill(1, b * frames, b * frames + counts[b]);
  return mask;
}

/**
 * Gathers windows into batches of `batchSize` and draws each window's number of observed leading frames. Holds
 * one batch of windows plus the batch it copies them into. Windows of different shapes or label sizes in one
 * batch are an error naming the offending window.
 */
export function contextBatches(options: ContextBatchesOptions): Stage<LatentWindow, ContextBatch> {
  const { batchSize, seed, rate = 1, minContext = 1, dropLast = true } = options;
  const rng = new Rng(seed);
  const gather = batch<LatentWindow>(batchSize, { dropLast });
  return named('context-batches', async function* (source) {
    for await (const windows of gather(source)) {
      const first = windows[0];
      const [L, H, W, C] = first.shape;
      const size = L * H * W * C;
      const P = first.labels?.length ?? 0;
      const x = new Float32Array(windows.length * size);
      const labels = first.labels ? new Float32Array(windows.length * P) : null;
      windows.forEach((w, b) => {
        if (w.shape.some((n, i) => n !== first.shape[i]) || w.x.length !== size) {
          throw new Error(`window ${w.start}${describe(w.origin)}: shape [${w.shape}] differs from the batch's [${first.shape}]`);
        }
        if ((w.labels?.length ?? -1) !== (first.labels?.length ?? -1)) {
          throw new Error(`window ${w.start}${describe(w.origin)}: ${w.labels?.length ?? 'no'} labels, the batch has ${first.labels?.length ?? 'none'}`);
        }
        x.set(w.x, b * size);
        if (labels && w.labels) labels.set(w.labels, b * P);
      });
      const context = drawContextCounts(rng, windows.length, L, rate, minContext);
      yield {
        x,
        shape: [windows.length, L, H, W, C] as const,
        mask: frameMaskFromCounts(context, L),
        context,
        labels,
      };
    }
  });
}

/** Uploads a context batch as tensors (the caller disposes them). */
export function windowBatchTensors(b: ContextBatch): WindowBatch {
  const [B, L] = b.shape;
  return {
    x: tf.tensor5d(b.x, [...b.shape]),
    mask: tf.tensor2d(b.mask, [B, L]),
    labels: b.labels ? tf.tensor2d(b.labels, [B, b.labels.length / B]) : null,
  };
}

export interface EmulatorBatchesOptions extends LatentWindowsOptions, Omit<ContextBatchesOptions, 'seed'> {
  /** Run seed: the shuffle of epoch e is seeded by mixSeed(seed, e), its context draws by contextSeed(seed, e). */
  seed: number;
  /** Epoch index (default 0). */
  epoch?: number;
  /** Windows held by the shuffle buffer (default 1024; 1 keeps the stream order). */
  shuffleBuffer?: number;
}

/**
 * One epoch of the path from cached latent trajectories to training batches: windows (`latentWindows`), a seeded
 * shuffle buffer, batches with context masks (`contextBatches`), as typed arrays (`windowBatchTensors` uploads
 * one). Holds the shuffle buffer (views into at most that many trajectories) and one batch.
 */
export function emulatorBatches(options: EmulatorBatchesOptions): Stage<LatentTrajectory, ContextBatch> {
  const { shuffleBuffer = 1024, seed, epoch = 0 } = options;
  return compose(
    latentWindows(options),
    shuffle<LatentWindow>(Math.max(1, shuffleBuffer), mixSeed(seed, epoch)),
    contextBatches({ ...options, seed: contextSeed(seed, epoch) }),
  );
}
