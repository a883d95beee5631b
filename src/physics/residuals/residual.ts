/**
 * The common face of the PDE residuals: a residual maps a batch of physical states (NHWC, x the first spatial
 * axis, channels in The Well's layout) to per-equation residual fields, and to their mean square, the
 * physics-informed loss. Everything is tfjs ops, so both differentiate with respect to the states.
 *
 * States come in one of two shapes:
 *   - one tensor (B, T, X, Y, C): a residual that relates consecutive frames (`frames: 2`) is evaluated on the
 *     T - 1 pairs (t, t + 1) and returns (B, T - 1, X, Y, E); a single-frame residual returns (B, T, X, Y, E);
 *   - a (B, X, Y, C) frame, plus the next frame of the same shape for two-frame residuals: returns (B, X, Y, E).
 * E is the number of equations (`equations` names them).
 */
import * as tf from '@tensorflow/tfjs';

export interface PdeResidual {
  /** Short name (`euler`, `rayleigh-benard`, `darcy`). */
  readonly name: string;
  /** Channel names the residual reads, e.g. `['density', 'momentum_x', ...]`. */
  readonly fields: readonly string[];
  /** Channel names of the states it takes, in order (the last axis). */
  readonly channels: readonly string[];
  /** Names of the residual channels, one per equation. */
  readonly equations: readonly string[];
  /** 2 when the residual relates consecutive frames (a time derivative), else 1. */
  readonly frames: 1 | 2;
  /** Per-equation residual fields (see the file header for the shapes). */
  residual(states: tf.Tensor, next?: tf.Tensor): tf.Tensor;
  /** Mean over every entry of the squared residual fields. */
  meanSquare(states: tf.Tensor, next?: tf.Tensor): tf.Scalar;
}

/** Indices of the named channels in `channels`; throws naming every missing one. */
export function channelIndices(who: string, channels: readonly string[], fields: readonly string[]): number[] {
  const missing = fields.filter((f) => !channels.includes(f));
  if (missing.length)
    throw new Error(`${who}: the states lack channel${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (channels: ${channels.join(', ') || 'none'})`);
  return fields.map((f) => channels.indexOf(f));
}

/** The channels of a (N, X, Y, C) frame at the given indices, each (N, X, Y, 1). */
export function splitChannels(frame: tf.Tensor4D, indices: readonly number[]): tf.Tensor4D[] {
  return indices.map((c) => tf.slice(frame, [0, 0, 0, c], [-1, -1, -1, 1]));
}

/** Throws unless the states' last axis holds exactly the described channels. */
export function checkChannelCount(who: string, states: tf.Tensor, channels: readonly string[]): void {
  const c = states.shape[states.rank - 1];
  if (c !== channels.length)
    throw new Error(`${who}: the states have ${c} channels, expected ${channels.length} (${channels.join(', ')}); got shape [${states.shape}]`);
}

/**
 * Runs a residual of consecutive frames over any of the accepted shapes: `pair(u0, u1)` maps two (N, X, Y, C)
 * frames to (N, X, Y, E).
 */
export function overPairs(
  who: string,
  states: tf.Tensor,
  next: tf.Tensor | undefined,
  pair: (u0: tf.Tensor4D, u1: tf.Tensor4D) => tf.Tensor4D,
): tf.Tensor {
  return tf.tidy(() => {
    if (next !== undefined) {
      if (states.rank !== 4 || next.rank !== 4 || states.shape.some((d, k) => d !== next.shape[k]))
        throw new Error(`${who}: a frame and its successor must both be (B, X, Y, C) of one shape, got [${states.shape}] and [${next.shape}]`);
      return pair(states as tf.Tensor4D, next as tf.Tensor4D);
    }
    if (states.rank !== 5 || states.shape[1]! < 2)
      throw new Error(`${who}: expected (B, T >= 2, X, Y, C) frames, or a (B, X, Y, C) frame and its successor; got [${states.shape}]`);
    const [b, t, x, y, c] = states.shape;
    const flat = states.reshape([b, t, x * y * c]);
    const u0 = flat.slice([0, 0, 0], [b, t - 1, -1]).reshape([b * (t - 1), x, y, c]) as tf.Tensor4D;
    const u1 = flat.slice([0, 1, 0], [b, t - 1, -1]).reshape([b * (t - 1), x, y, c]) as tf.Tensor4D;
    const r = pair(u0, u1);
    return r.reshape([b, t - 1, ...r.shape.slice(1)]);
  });
}

/** Runs a single-frame residual over (B, X, Y, C) or (B, T, X, Y, C) states. */
export function overFrames(who: string, states: tf.Tensor, frame: (u: tf.Tensor4D) => tf.Tensor4D): tf.Tensor {
  return tf.tidy(() => {
    if (states.rank === 4) return frame(states as tf.Tensor4D);
    if (states.rank !== 5) throw new Error(`${who}: expected (B, X, Y, C) or (B, T, X, Y, C) states, got [${states.shape}]`);
    const [b, t, x, y, c] = states.shape;
    const r = frame(states.reshape([b * t, x, y, c]) as tf.Tensor4D);
    return r.reshape([b, t, ...r.shape.slice(1)]);
  });
}

/** Mean square of a residual tensor. */
export function meanSquareOf(r: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(r)) as tf.Scalar);
}
