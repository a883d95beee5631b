/**
 * Residuals of two-dimensional Rayleigh-Benard convection (Boussinesq, free-fall units) between two consecutive
 * frames of The Well's layout (channels buoyancy, pressure, velocity_x, velocity_y; x the first spatial axis):
 *
 *   divergence:  D = du/dx + dv/dy                                   of the later frame
 *   buoyancy:    B = (b1 - b0) / dt + u_mid . grad b_mid - kappa lap b_mid,   q_mid = (q0 + q1) / 2,
 *                kappa = (Ra Pr)^(-1/2)
 *
 * The grid: periodic in x with uniform spacing dx; in y the nodes are The Well's Chebyshev-Gauss points
 * y_j = (1 - cos(pi (j + 1/2) / Ny)) / 2, strictly inside the walls y = 0 and y = 1, where the boundary
 * conditions hold: no slip (u = v = 0) and fixed buoyancy (b = 1 at the bottom, 0 at the top, as in the
 * built-in solver). x derivatives are periodic central differences; y derivatives are the three-point
 * non-uniform differences on the node set 0, y_0, ..., y_{Ny-1}, 1 with the wall values (differences.ts), using
 * the actual node coordinates. The momentum equation is not checked here.
 */
import * as tf from '@tensorflow/tfjs';
import {
  centralPeriodic,
  secondPeriodic,
  wallDerivative,
  wallSecondDerivative,
  wallStencil,
  type WallStencil,
} from './differences.js';
import { channelIndices, checkChannelCount, meanSquareOf, overFrames, overPairs, splitChannels, type PdeResidual } from './residual.js';

/** The Well's Rayleigh-Benard channel order. */
export const RAYLEIGH_BENARD_CHANNELS: readonly string[] = ['buoyancy', 'pressure', 'velocity_x', 'velocity_y'];

export interface RayleighBenardResidualOptions {
  rayleigh: number;
  prandtl: number;
  /** Time between the two frames. */
  dt: number;
  /** Uniform x spacing (periodic). */
  dx: number;
  /** The y node coordinates, strictly inside (0, 1), ascending (The Well: Chebyshev-Gauss nodes). */
  y: ArrayLike<number>;
  /** Buoyancy at the bottom and top walls (default [1, 0]). */
  wallBuoyancy?: [number, number];
  /** Channel names of the states (default RAYLEIGH_BENARD_CHANNELS). */
  channels?: readonly string[];
}

export class RayleighBenardResidual implements PdeResidual {
  readonly name = 'rayleigh-benard';
  readonly fields: readonly string[] = ['buoyancy', 'velocity_x', 'velocity_y'];
  readonly equations: readonly string[] = ['divergence', 'buoyancy'];
  readonly frames = 2 as const;
  readonly kappa: number;
  readonly dt: number;
  readonly dx: number;
  readonly stencil: WallStencil;
  readonly wallBuoyancy: [number, number];
  /** Channel names of the states. */
  readonly channels: readonly string[];
  private readonly indices: number[];

  constructor(options: RayleighBenardResidualOptions) {
    const { rayleigh, prandtl, dt, dx } = options;
    if (!(rayleigh > 0) || !(prandtl > 0))
      throw new RangeError(`rayleigh-benard residual: rayleigh and prandtl must be positive, got ${rayleigh}, ${prandtl}`);
    for (const [k, v] of [['dt', dt], ['dx', dx]] as const)
      if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`rayleigh-benard residual: ${k} must be a positive number, got ${v}`);
    this.kappa = 1 / Math.sqrt(rayleigh * prandtl);
    this.dt = dt;
    this.dx = dx;
    this.stencil = wallStencil(options.y, 0, 1);
    this.wallBuoyancy = options.wallBuoyancy ?? [1, 0];
    this.channels = options.channels ?? RAYLEIGH_BENARD_CHANNELS;
    this.indices = channelIndices('rayleigh-benard residual', this.channels, this.fields);
  }

  /** (..., X, Y, 2): divergence (of the later frame), buoyancy transport. */
  residual(states: tf.Tensor, next?: tf.Tensor): tf.Tensor {
    checkChannelCount('rayleigh-benard residual', states, this.channels);
    return overPairs('rayleigh-benard residual', states, next, (u0, u1) => this.pair(u0, u1));
  }

  meanSquare(states: tf.Tensor, next?: tf.Tensor): tf.Scalar {
    return tf.tidy(() => meanSquareOf(this.residual(states, next)));
  }

  /** Velocity divergence of every frame: (..., X, Y, 1). */
  divergence(states: tf.Tensor): tf.Tensor {
    checkChannelCount('rayleigh-benard divergence', states, this.channels);
    return overFrames('rayleigh-benard divergence', states, (u) => {
      const [, vx, vy] = splitChannels(u, this.indices);
      return this.div(vx, vy);
    });
  }

  private div(vx: tf.Tensor4D, vy: tf.Tensor4D): tf.Tensor4D {
    return tf.add(centralPeriodic(vx, 1, this.dx), wallDerivative(vy, 2, this.stencil, [0, 0]));
  }

  private pair(u0: tf.Tensor4D, u1: tf.Tensor4D): tf.Tensor4D {
    const [b0, vx0, vy0] = splitChannels(u0, this.indices);
    const [b1, vx1, vy1] = splitChannels(u1, this.indices);
    const b = tf.add(b0, b1).mul(0.5) as tf.Tensor4D;
    const vx = tf.add(vx0, vx1).mul(0.5);
    const vy = tf.add(vy0, vy1).mul(0.5);
    const walls = this.wallBuoyancy;
    const advection = tf.add(vx.mul(centralPeriodic(b, 1, this.dx)), vy.mul(wallDerivative(b, 2, this.stencil, walls)));
    const laplacian = tf.add(secondPeriodic(b, 1, this.dx), wallSecondDerivative(b, 2, this.stencil, walls));
    const transport = tf.addN([tf.sub(b1, b0).mul(1 / this.dt), advection, laplacian.mul(-this.kappa)]);
    return tf.concat([this.div(vx1, vy1), transport as tf.Tensor4D], 3);
  }
}

/** The Rayleigh-Benard residuals of a frame pair (see the file header). */
export function rayleighBenardResidual(options: RayleighBenardResidualOptions): RayleighBenardResidual {
  return new RayleighBenardResidual(options);
}
