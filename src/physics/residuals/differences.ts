/**
 * Finite differences of NHWC fields (N, X, Y, C) along a spatial axis (1: x, 2: y), written with tfjs ops so that
 * they differentiate. Three kinds:
 *
 *   periodic (uniform h):  f'_i = (f_{i+1} - f_{i-1}) / 2h                     (indices mod n)
 *   open (uniform h):      the same inside; at the edges the second-order one-sided differences
 *                          f'_0 = (-3 f_0 + 4 f_1 - f_2) / 2h,   f'_{n-1} = (3 f_{n-1} - 4 f_{n-2} + f_{n-3}) / 2h
 *   walls (nodes z_0 < ... < z_{n-1} strictly inside (lo, hi), with given values at the walls z = lo and z = hi):
 *                          the three-point Lagrange derivatives on the extended node set lo, z_0, ..., z_{n-1}, hi.
 *                          With h- = z_i - z_{i-1}, h+ = z_{i+1} - z_i:
 *     f'_i  = -h+/(h-(h- + h+)) f_{i-1} + (h+ - h-)/(h- h+) f_i + h-/(h+(h- + h+)) f_{i+1}
 *     f''_i = 2 [ f_{i-1}/(h-(h- + h+)) - f_i/(h- h+) + f_{i+1}/(h+(h- + h+)) ]
 *   (evaluated in the equivalent slope form, see WallStencil). The first derivative is second order on any
 *   grid; the second derivative is second order where the spacing varies smoothly (h+ - h- = O(h^2), as on
 *   mapped grids such as the Chebyshev-Gauss nodes) and first order otherwise.
 */
import * as tf from '@tensorflow/tfjs';

export type SpatialAxis = 1 | 2;

/** `count` entries of `f` along `axis` starting at `start`. */
function take(f: tf.Tensor4D, axis: SpatialAxis, start: number, count: number): tf.Tensor4D {
  const begin: [number, number, number, number] = [0, 0, 0, 0];
  const size: [number, number, number, number] = [-1, -1, -1, -1];
  begin[axis] = start;
  size[axis] = count;
  return tf.slice(f, begin, size);
}

/** Periodic shift: out_i = f_{(i + k) mod n}, k = +1 or -1. */
export function roll(f: tf.Tensor4D, axis: SpatialAxis, k: 1 | -1): tf.Tensor4D {
  const n = f.shape[axis];
  return k === 1
    ? tf.concat([take(f, axis, 1, n - 1), take(f, axis, 0, 1)], axis)
    : tf.concat([take(f, axis, n - 1, 1), take(f, axis, 0, n - 1)], axis);
}

/** Second-order central first derivative with periodic wrap-around. */
export function centralPeriodic(f: tf.Tensor4D, axis: SpatialAxis, h: number): tf.Tensor4D {
  return tf.tidy(() => tf.sub(roll(f, axis, 1), roll(f, axis, -1)).mul(1 / (2 * h)));
}

/** Second-order central first derivative inside, second-order one-sided at the two edges (needs n >= 3). */
export function centralOpen(f: tf.Tensor4D, axis: SpatialAxis, h: number): tf.Tensor4D {
  const n = f.shape[axis];
  if (n < 3) throw new RangeError(`centralOpen: needs at least 3 points along axis ${axis}, got ${n}`);
  return tf.tidy(() => {
    const s = 1 / (2 * h);
    const inner = tf.sub(take(f, axis, 2, n - 2), take(f, axis, 0, n - 2));
    const first = tf.addN([take(f, axis, 0, 1).mul(-3), take(f, axis, 1, 1).mul(4), take(f, axis, 2, 1).neg()]);
    const last = tf.addN([take(f, axis, n - 1, 1).mul(3), take(f, axis, n - 2, 1).mul(-4), take(f, axis, n - 3, 1)]);
    return tf.concat([first, inner, last], axis).mul(s);
  });
}

/**
 * The wall-bounded non-uniform grid in the slope form used for evaluation (fewer float32 cancellations than the
 * weights above): with D_k = (f_{k+1} - f_k) / Δ_k the slopes of the n + 1 intervals of lo, z_0..z_{n-1}, hi,
 *   f'_i = (h+ D_{i-1/2} + h- D_{i+1/2}) / (h- + h+),   f''_i = 2 (D_{i+1/2} - D_{i-1/2}) / (h- + h+).
 */
export interface WallStencil {
  /** Node coordinates inside the walls, strictly increasing. */
  nodes: Float64Array;
  lo: number;
  hi: number;
  /** 1 / Δ_k for the n + 1 intervals. */
  inverseSpacing: Float64Array;
  /** Per node: h+ / (h- + h+), h- / (h- + h+) and 2 / (h- + h+). */
  below: Float64Array;
  above: Float64Array;
  curvature: Float64Array;
}

/** Precomputes the non-uniform stencil of `nodes` between walls at `lo` and `hi`; throws when they are not ordered. */
export function wallStencil(nodes: ArrayLike<number>, lo = 0, hi = 1): WallStencil {
  const n = nodes.length;
  const z = Float64Array.from(nodes);
  if (n < 1) throw new RangeError('wallStencil: needs at least one node');
  const ext = [lo, ...z, hi];
  for (let i = 1; i < ext.length; i++) {
    if (!(ext[i] > ext[i - 1]))
      throw new RangeError(`wallStencil: nodes must increase strictly inside (${lo}, ${hi}); node ${i - 1} is ${ext[i]} after ${ext[i - 1]}`);
  }
  const inverseSpacing = new Float64Array(n + 1);
  for (let k = 0; k <= n; k++) inverseSpacing[k] = 1 / (ext[k + 1] - ext[k]);
  const below = new Float64Array(n);
  const above = new Float64Array(n);
  const curvature = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const hm = ext[i + 1] - ext[i];
    const hp = ext[i + 2] - ext[i + 1];
    below[i] = hp / (hm + hp);
    above[i] = hm / (hm + hp);
    curvature[i] = 2 / (hm + hp);
  }
  return { nodes: z, lo, hi, inverseSpacing, below, above, curvature };
}

/** A per-node weight as a broadcastable (1, ., ., 1) tensor along `axis`. */
function weight(values: Float64Array, axis: SpatialAxis): tf.Tensor4D {
  const shape: [number, number, number, number] = [1, 1, 1, 1];
  shape[axis] = values.length;
  return tf.tensor4d(Float32Array.from(values), shape);
}

/** Slopes D_k of the field extended by its wall values, (n + 1) entries along `axis`. */
function slopes(f: tf.Tensor4D, axis: SpatialAxis, stencil: WallStencil, values: [number, number]): tf.Tensor4D {
  const n = f.shape[axis];
  if (n !== stencil.nodes.length) throw new RangeError(`wall stencil has ${stencil.nodes.length} nodes, the field ${n} along axis ${axis}`);
  const shape = [...f.shape] as [number, number, number, number];
  shape[axis] = 1;
  const ext = tf.concat([tf.fill(shape, values[0]) as tf.Tensor4D, f, tf.fill(shape, values[1]) as tf.Tensor4D], axis);
  return tf.sub(take(ext, axis, 1, n + 1), take(ext, axis, 0, n + 1)).mul(weight(stencil.inverseSpacing, axis));
}

/** First derivative on the wall-bounded non-uniform grid; `values` are the field's values at the two walls. */
export function wallDerivative(f: tf.Tensor4D, axis: SpatialAxis, stencil: WallStencil, values: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const d = slopes(f, axis, stencil, values);
    const n = f.shape[axis];
    return tf.add(take(d, axis, 0, n).mul(weight(stencil.below, axis)), take(d, axis, 1, n).mul(weight(stencil.above, axis)));
  });
}

/** Second derivative on the wall-bounded non-uniform grid; `values` are the field's values at the two walls. */
export function wallSecondDerivative(f: tf.Tensor4D, axis: SpatialAxis, stencil: WallStencil, values: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const d = slopes(f, axis, stencil, values);
    const n = f.shape[axis];
    return tf.sub(take(d, axis, 1, n), take(d, axis, 0, n)).mul(weight(stencil.curvature, axis));
  });
}

/** Periodic second derivative (f_{i+1} - 2 f_i + f_{i-1}) / h^2. */
export function secondPeriodic(f: tf.Tensor4D, axis: SpatialAxis, h: number): tf.Tensor4D {
  return tf.tidy(() => tf.addN([roll(f, axis, 1), roll(f, axis, -1), f.mul(-2)]).mul(1 / (h * h)) as tf.Tensor4D);
}
