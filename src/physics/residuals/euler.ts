/**
 * Residual of the two-dimensional compressible Euler equations of an ideal gas in conservation form, between
 * two consecutive frames U0, U1 of The Well's Euler layout (channels energy, density, pressure, momentum_x,
 * momentum_y; x the first spatial axis), with conserved variables U = (rho, m_x, m_y, E):
 *
 *   R(U0, U1) = (U1 - U0) / dt + d/dx F(U_mid) + d/dy G(U_mid),     U_mid = (U0 + U1) / 2   (trapezoid in time)
 *   F = (m_x, m_x u + p, m_y u, (E + p) u),   G = (m_y, m_x v, m_y v + p, (E + p) v),   (u, v) = m / rho,
 *   p = (gamma - 1) (E - |m|^2 / (2 rho))       (the pressure inside the fluxes comes from the conserved variables)
 *
 * d/dx, d/dy: second-order central differences (differences.ts) with periodic wrap-around or, for open
 * boundaries, second-order one-sided differences at the edges. The fifth residual channel is the equation of
 * state of the later frame, p1 - (gamma - 1) (E1 - |m1|^2 / (2 rho1)), which ties the stored pressure channel
 * to the conserved ones. On a smooth flow a second-order solver's frames leave R = O(dx^2 + dy^2 + dt^2).
 *
 * Global conservation defects: the domain totals of U1 - U0 (sums times the cell area). With periodic
 * boundaries a conservative scheme leaves them at round-off.
 *
 * The Well's grid: [0, 1]^2 with cell-centred nodes (dx = 1 / X), frames dt = 0.015 apart.
 */
import * as tf from '@tensorflow/tfjs';
import { centralOpen, centralPeriodic } from './differences.js';
import { channelIndices, checkChannelCount, meanSquareOf, overFrames, overPairs, splitChannels, type PdeResidual } from './residual.js';

/** The Well's Euler channel order (order-0 fields, then the momentum components). */
export const EULER_CHANNELS: readonly string[] = ['energy', 'density', 'pressure', 'momentum_x', 'momentum_y'];

export interface EulerResidualOptions {
  /** Ratio of specific heats. */
  gamma: number;
  /** Time between the two frames. */
  dt: number;
  /** Grid spacings along x (first spatial axis) and y. */
  dx: number;
  dy: number;
  boundary: 'periodic' | 'open';
  /** Channel names of the states (default EULER_CHANNELS). */
  channels?: readonly string[];
}

const CONSERVED = ['density', 'momentum_x', 'momentum_y', 'energy'];

export class EulerResidual implements PdeResidual {
  readonly name = 'euler';
  readonly fields: readonly string[] = [...CONSERVED, 'pressure'];
  readonly equations: readonly string[] = ['mass', 'momentum_x', 'momentum_y', 'energy', 'equation_of_state'];
  readonly frames = 2 as const;
  readonly gamma: number;
  readonly dt: number;
  readonly dx: number;
  readonly dy: number;
  readonly boundary: 'periodic' | 'open';
  /** Channel names of the states. */
  readonly channels: readonly string[];
  private readonly indices: number[];

  constructor(options: EulerResidualOptions) {
    const { gamma, dt, dx, dy, boundary } = options;
    if (!(gamma > 1)) throw new RangeError(`euler residual: gamma must be > 1, got ${gamma}`);
    for (const [k, v] of [['dt', dt], ['dx', dx], ['dy', dy]] as const)
      if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`euler residual: ${k} must be a positive number, got ${v}`);
    if (boundary !== 'periodic' && boundary !== 'open')
      throw new RangeError(`euler residual: boundary must be "periodic" or "open", got ${String(boundary)}`);
    this.gamma = gamma;
    this.dt = dt;
    this.dx = dx;
    this.dy = dy;
    this.boundary = boundary;
    this.channels = options.channels ?? EULER_CHANNELS;
    this.indices = channelIndices('euler residual', this.channels, this.fields);
  }

  /** (..., X, Y, 5): mass, momentum_x, momentum_y, energy, equation of state. */
  residual(states: tf.Tensor, next?: tf.Tensor): tf.Tensor {
    checkChannelCount('euler residual', states, this.channels);
    return overPairs('euler residual', states, next, (u0, u1) => this.pair(u0, u1));
  }

  meanSquare(states: tf.Tensor, next?: tf.Tensor): tf.Scalar {
    return tf.tidy(() => meanSquareOf(this.residual(states, next)));
  }

  /** Domain totals of U1 - U0 per conserved quantity (mass, momentum_x, momentum_y, energy): (B[, T - 1], 4). */
  conservationDefects(states: tf.Tensor, next?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      checkChannelCount('euler conservation', states, this.channels);
      const r = overPairs('euler conservation', states, next, (u0, u1) => {
        const [a, b] = [this.conserved(u0), this.conserved(u1)];
        return tf.sub(b, a).sum([1, 2], true).mul(this.dx * this.dy) as tf.Tensor4D;
      });
      return r.reshape(r.shape.filter((_, k) => k < r.rank - 3 || k === r.rank - 1));
    });
  }

  /** Equation-of-state residual p - (gamma - 1)(E - |m|^2 / (2 rho)) of every frame: (..., X, Y, 1). */
  equationOfState(states: tf.Tensor): tf.Tensor {
    checkChannelCount('euler equation of state', states, this.channels);
    return overFrames('euler equation of state', states, (u) => {
      const [rho, mx, my, e, p] = splitChannels(u, this.indices);
      return tf.sub(p, this.pressure(rho, mx, my, e));
    });
  }

  /** (N, X, Y, 4) conserved variables rho, m_x, m_y, E of a frame. */
  private conserved(u: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(splitChannels(u, this.indices.slice(0, 4)), 3);
  }

  private pressure(rho: tf.Tensor4D, mx: tf.Tensor4D, my: tf.Tensor4D, e: tf.Tensor4D): tf.Tensor4D {
    const kinetic = tf.add(tf.square(mx), tf.square(my)).div(rho.mul(2));
    return tf.sub(e, kinetic).mul(this.gamma - 1);
  }

  private derivative(f: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D {
    const h = axis === 1 ? this.dx : this.dy;
    return this.boundary === 'periodic' ? centralPeriodic(f, axis, h) : centralOpen(f, axis, h);
  }

  private pair(u0: tf.Tensor4D, u1: tf.Tensor4D): tf.Tensor4D {
    const c0 = this.conserved(u0);
    const c1 = this.conserved(u1);
    const mid = tf.add(c0, c1).mul(0.5) as tf.Tensor4D;
    const [rho, mx, my, e] = splitChannels(mid, [0, 1, 2, 3]);
    const p = this.pressure(rho, mx, my, e);
    const u = mx.div(rho);
    const v = my.div(rho);
    const h = e.add(p);
    const fx = tf.concat([mx, mx.mul(u).add(p), my.mul(u), h.mul(u)], 3) as tf.Tensor4D;
    const fy = tf.concat([my, mx.mul(v), my.mul(v).add(p), h.mul(v)], 3) as tf.Tensor4D;
    const conservation = tf.addN([tf.sub(c1, c0).mul(1 / this.dt), this.derivative(fx, 1), this.derivative(fy, 2)]);
    const [rho1, mx1, my1, e1, p1] = splitChannels(u1, this.indices);
    const eos = tf.sub(p1, this.pressure(rho1, mx1, my1, e1)) as tf.Tensor4D;
    return tf.concat([conservation as tf.Tensor4D, eos], 3);
  }
}

/** The Euler residual of a frame pair (see the file header). */
export function eulerResidual(options: EulerResidualOptions): EulerResidual {
  return new EulerResidual(options);
}
