/**
 * Euler multi-quadrants problems as in The Well: random piecewise-constant states in four quadrants (2D Riemann
 * problems after Lax & Liu 1998), for one of ten gases, evolved to t = 1.5 with snapshots every 0.015.
 */
import { EulerSolver, type EulerBoundary, type EulerOptions, type PrimitiveState } from './euler.js';
import { createRng } from '../streams/random.js';
import type { Rng } from '../streams/random.js';

/** The ten gases of The Well's Euler datasets: gamma and the gas label used in its file names. */
export const EULER_GAMMA_PRESETS: readonly { gamma: number; gas: string }[] = [
  { gamma: 1.13, gas: 'C3H8_16' },
  { gamma: 1.22, gas: 'C2H6_15' },
  { gamma: 1.3, gas: 'CO2_20' },
  { gamma: 1.33, gas: 'H2O_20' },
  { gamma: 1.365, gas: 'Dry_air_1000' },
  { gamma: 1.4, gas: 'Dry_air_20' },
  { gamma: 1.404, gas: 'H2_100_Dry_air_-15' },
  { gamma: 1.453, gas: 'H2_-76' },
  { gamma: 1.597, gas: 'H2_-181' },
  { gamma: 1.76, gas: 'Ar_-180' },
];

/** The gas label of a preset gamma (`custom` for any other value). */
export function gasLabel(gamma: number): string {
  return EULER_GAMMA_PRESETS.find((p) => p.gamma === gamma)?.gas ?? 'custom';
}

/** The Well's Euler file stem: `euler_multi_quadrants_periodicBC_gamma_1.4_Dry_air_20`. */
export function eulerFileStem(gamma: number, boundary: EulerBoundary): string {
  return `euler_multi_quadrants_${boundary === 'periodic' ? 'periodicBC' : 'openBC'}_gamma_${gamma}_${gasLabel(gamma)}`;
}

/** A quadrant problem: split point and the four states (order: lower-left, lower-right, upper-left, upper-right). */
export interface QuadrantProblem {
  splitX: number;
  splitY: number;
  /** [x < splitX && y < splitY, x >= splitX && y < splitY, x < splitX && y >= splitY, x >= splitX && y >= splitY] */
  states: [PrimitiveState, PrimitiveState, PrimitiveState, PrimitiveState];
}

/** Ranges of the random quadrant states. */
export interface QuadrantRanges {
  density: [number, number];
  pressure: [number, number];
  velocity: [number, number];
  split: [number, number];
}

/**
 * Default ranges: density and pressure uniform in [0.1, 2], each velocity component uniform in [-1, 1], split
 * point uniform in [0.25, 0.75]^2. With these the dataset moments come close to the published statistics of
 * The Well's Euler data (density and pressure means about 0.9-1, momentum std about 0.5).
 */
export const DEFAULT_QUADRANT_RANGES: QuadrantRanges = {
  density: [0.1, 2],
  pressure: [0.1, 2],
  velocity: [-1, 1],
  split: [0.25, 0.75],
};

/** Draws a random quadrant problem. */
export function randomQuadrants(rng: Rng, ranges: QuadrantRanges = DEFAULT_QUADRANT_RANGES): QuadrantProblem {
  const state = (): PrimitiveState => ({
    density: rng.range(...ranges.density),
    velocityX: rng.range(...ranges.velocity),
    velocityY: rng.range(...ranges.velocity),
    pressure: rng.range(...ranges.pressure),
  });
  return {
    splitX: rng.range(...ranges.split),
    splitY: rng.range(...ranges.split),
    states: [state(), state(), state(), state()],
  };
}

/** The initial-state function of a quadrant problem, for `EulerSolver.setPrimitive`. */
export function quadrantState(problem: QuadrantProblem): (x: number, y: number) => PrimitiveState {
  return (x, y) => problem.states[(x < problem.splitX ? 0 : 1) + (y < problem.splitY ? 0 : 2)];
}

export interface EulerTrajectoryOptions {
  resolution: number;
  gamma: number;
  boundary: EulerBoundary;
  /** Number of snapshots including the initial one (The Well: 101). */
  snapshots: number;
  /** Time between snapshots (The Well: 0.015). */
  dt: number;
  seed: number;
  cfl?: number;
  limiter?: EulerOptions['limiter'];
  ranges?: QuadrantRanges;
}

/** One snapshot of an Euler trajectory, float32 fields (nx, ny) x-major. */
export interface EulerSnapshot {
  index: number;
  time: number;
  energy: Float32Array;
  density: Float32Array;
  pressure: Float32Array;
  momentumX: Float32Array;
  momentumY: Float32Array;
}

/**
 * Runs one random quadrant trajectory, yielding each snapshot as soon as it is reached (double precision inside,
 * float32 out). Holds one solver and one snapshot at a time.
 */
export function* eulerTrajectory(options: EulerTrajectoryOptions): Generator<EulerSnapshot> {
  const n = options.resolution;
  const solver = new EulerSolver({
    nx: n,
    ny: n,
    gamma: options.gamma,
    boundary: options.boundary,
    cfl: options.cfl,
    limiter: options.limiter,
  });
  const problem = randomQuadrants(createRng(options.seed), options.ranges);
  solver.setPrimitive(quadrantState(problem));
  for (let s = 0; s < options.snapshots; s++) {
    const time = s * options.dt;
    solver.advanceTo(time);
    const snap: EulerSnapshot = {
      index: s,
      time,
      energy: new Float32Array(n * n),
      density: new Float32Array(n * n),
      pressure: new Float32Array(n * n),
      momentumX: new Float32Array(n * n),
      momentumY: new Float32Array(n * n),
    };
    solver.writeFields(snap);
    yield snap;
  }
}
