/**
 * Residual of steady Darcy flow, -div(a grad u) = f on the unit square with u = 0 on the boundary (the benchmark
 * of PIDDM, f = 1), for states (B, N, N, C) carrying the coefficient `a` and the solution `u` as channels.
 *
 * Grid: the N x N interior nodes (x_i, y_j) = ((i + 1) h, (j + 1) h), i, j = 0..N-1, h = 1 / (N + 1); x is the
 * first spatial axis, flat index i * N + j. Boundary nodes carry u = 0 and are not stored.
 * Stencil (five-point, conservative):
 *
 *   R_ij = -[ a_{i+1/2,j} (u_{i+1,j} - u_ij) - a_{i-1/2,j} (u_ij - u_{i-1,j})
 *           + a_{i,j+1/2} (u_{i,j+1} - u_ij) - a_{i,j-1/2} (u_ij - u_{i,j-1}) ] / h^2 - f_ij
 *
 *   a_{i+1/2,j} = (a_ij + a_{i+1,j}) / 2 between two interior nodes; on a face to a boundary node, a_ij itself.
 *
 * For smooth a and u the stencil is second order inside. At a face to the boundary the coefficient is taken at
 * the node (distance h from the wall) instead of the face (h/2), an O(h dA/dn) error that makes R = O(h) on the
 * nodes next to the boundary unless a is flat there (dA/dn = 0 and d2A/dn2 = 0 give O(h^2) everywhere).
 *
 * The same stencil on Float64Arrays over the whole node grid is `darcyResidualOnGrid` (src/physics/darcy.ts, the
 * solver's own check).
 */
import * as tf from '@tensorflow/tfjs';
import { channelIndices, checkChannelCount, meanSquareOf, overFrames, splitChannels, type PdeResidual } from './residual.js';

/** Default channel names: the coefficient, then the solution. */
export const DARCY_CHANNELS: readonly string[] = ['a', 'u'];

export interface DarcyResidualOptions {
  /** Interior nodes per side. */
  n: number;
  /** Right-hand side: a constant (default 1) or per-node values (length N * N, x-major). */
  source?: number | ArrayLike<number>;
  /** Channel names of the states (default DARCY_CHANNELS). */
  channels?: readonly string[];
}


export class DarcyResidual implements PdeResidual {
  readonly name = 'darcy';
  readonly fields: readonly string[] = ['a', 'u'];
  readonly equations: readonly string[] = ['darcy'];
  readonly frames = 1 as const;
  readonly n: number;
  readonly h: number;
  private readonly source: number | Float32Array;
  /** Channel names of the states. */
  readonly channels: readonly string[];
  private readonly indices: number[];

  constructor(options: DarcyResidualOptions) {
    const { n } = options;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`darcy residual: n must be a positive integer, got ${n}`);
    const f = options.source ?? 1;
    if (typeof f !== 'number' && f.length !== n * n)
      throw new RangeError(`darcy residual: the source must be a number or hold n * n = ${n * n} values, got ${f.length}`);
    this.n = n;
    this.h = 1 / (n + 1);
    this.source = typeof f === 'number' ? f : Float32Array.from(f);
    this.channels = options.channels ?? DARCY_CHANNELS;
    this.indices = channelIndices('darcy residual', this.channels, this.fields);
  }

  /** (..., N, N, 1). */
  residual(states: tf.Tensor): tf.Tensor {
    checkChannelCount('darcy residual', states, this.channels);
    return overFrames('darcy residual', states, (s) => this.frame(s));
  }

  meanSquare(states: tf.Tensor): tf.Scalar {
    return tf.tidy(() => meanSquareOf(this.residual(states)));
  }

  private frame(s: tf.Tensor4D): tf.Tensor4D {
    const { n, h } = this;
    if (s.shape[1] !== n || s.shape[2] !== n) throw new Error(`darcy residual: expected ${n} x ${n} nodes, got ${s.shape[1]} x ${s.shape[2]}`);
    const [a, u] = splitChannels(s, this.indices);
    // u with its zero boundary nodes; a with each edge node repeated, so that a boundary face averages a_ij with itself
    const up = tf.pad(u, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const edge = (t: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D => {
      const m = t.shape[axis];
      const first = axis === 1 ? t.slice([0, 0, 0, 0], [-1, 1, -1, -1]) : t.slice([0, 0, 0, 0], [-1, -1, 1, -1]);
      const last = axis === 1 ? t.slice([0, m - 1, 0, 0], [-1, 1, -1, -1]) : t.slice([0, 0, m - 1, 0], [-1, -1, 1, -1]);
      return tf.concat([first, t, last], axis);
    };
    const ae = edge(edge(a, 1), 2);
    const box = (t: tf.Tensor, i: number, j: number, ni: number, nj: number): tf.Tensor4D => tf.slice(t as tf.Tensor4D, [0, i, j, 0], [-1, ni, nj, -1]);
    // x faces i - 1/2 for i = 0..N (N + 1 of them) on the N interior columns, and likewise in y
    const gx = box(ae, 0, 1, n + 1, n).add(box(ae, 1, 1, n + 1, n)).mul(0.5).mul(box(up, 1, 1, n + 1, n).sub(box(up, 0, 1, n + 1, n)));
    const gy = box(ae, 1, 0, n, n + 1).add(box(ae, 1, 1, n, n + 1)).mul(0.5).mul(box(up, 1, 1, n, n + 1).sub(box(up, 1, 0, n, n + 1)));
    const div = tf.addN([box(gx, 1, 0, n, n), box(gx, 0, 0, n, n).neg(), box(gy, 0, 1, n, n), box(gy, 0, 0, n, n).neg()]);
    const f = typeof this.source === 'number' ? tf.scalar(this.source) : tf.tensor4d(this.source, [1, n, n, 1]);
    return div.mul(-1 / (h * h)).sub(f) as tf.Tensor4D;
  }
}

/** The Darcy residual (see the file header). */
export function darcyResidual(options: DarcyResidualOptions): DarcyResidual {
  return new DarcyResidual(options);
}
