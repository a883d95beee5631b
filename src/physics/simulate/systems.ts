/**
 * The built-in systems described as The Well describes them: one simulation "task" (everything a worker
 * needs to produce one trajectory), the Well file spec of a parameter set, and the run of one task into
 * per-field float32 arrays in stored layout.
 */
import type { WellFileSpec } from '../../formats/well/spec.js';
import { eulerFileStem, eulerTrajectory, type EulerTrajectoryOptions } from '../quadrants.js';
import {
  chebyshevGaussNodes,
  rayleighBenardFileStem,
  rayleighBenardTrajectory,
  type RayleighBenardTrajectoryOptions,
} from '../rayleigh-benard.js';
import { darcyFileStem, darcySample } from '../darcy.js';

export type SystemName = 'euler' | 'rayleigh-benard' | 'darcy';

/** One Euler multi-quadrants trajectory: the solver's trajectory options that a task fixes. */
export type EulerTask = { system: 'euler' } & Pick<EulerTrajectoryOptions, 'resolution' | 'gamma' | 'boundary' | 'snapshots' | 'dt' | 'seed'>;

/** One Rayleigh-Benard trajectory (`resolution` cells across the layer, 4x along it). */
export type RayleighBenardTask = { system: 'rayleigh-benard' } & Pick<
  RayleighBenardTrajectoryOptions,
  'resolution' | 'rayleigh' | 'prandtl' | 'snapshots' | 'dt' | 'seed' | 'amplitude'
>;

/**
 * One steady Darcy sample (src/physics/darcy.ts): `resolution` x `resolution` nodes of [0,1]^2, boundary
 * included; coefficient from a Gaussian random field with covariance (-Laplacian + tau^2)^(-alpha) thresholded
 * to 12/3, f = 1, u = 0 on the boundary. A steady problem: `snapshots` copies of the one state (default 1).
 */
export interface DarcyTask {
  system: 'darcy';
  resolution: number;
  alpha: number;
  tau: number;
  snapshots: number;
  seed: number;
}

export type SimulationTask = EulerTask | RayleighBenardTask | DarcyTask;

/** A trajectory's fields, each (T, X, Y[, 2]) float32 in The Well's stored layout, keyed by field name. */
export type TrajectoryFields = Record<string, Float32Array>;

/** Time-varying fields of a system in The Well's `field_names` order, with their tensor orders. */
export const SYSTEM_FIELDS: Record<SystemName, { name: string; order: 0 | 1 }[]> = {
  euler: [
    { name: 'energy', order: 0 },
    { name: 'density', order: 0 },
    { name: 'pressure', order: 0 },
    { name: 'momentum', order: 1 },
  ],
  'rayleigh-benard': [
    { name: 'buoyancy', order: 0 },
    { name: 'pressure', order: 0 },
    { name: 'velocity', order: 1 },
  ],
  darcy: [
    { name: 'a', order: 0 },
    { name: 'u', order: 0 },
  ],
};

/** The Well's file name (without `.hdf5`) for a task's parameter set. */
export function taskFileStem(task: SimulationTask): string {
  if (task.system === 'darcy') return darcyFileStem(task.alpha, task.tau);
  return task.system === 'euler'
    ? eulerFileStem(task.gamma, task.boundary)
    : rayleighBenardFileStem(task.rayleigh, task.prandtl);
}

/** The Well's dataset name of a task's system. */
export function taskDatasetName(task: SimulationTask): string {
  if (task.system === 'darcy') return 'darcy_flow';
  return task.system === 'euler'
    ? `euler_multi_quadrants_${task.boundary === 'periodic' ? 'periodicBC' : 'openBC'}`
    : 'rayleigh_benard';
}

/** Grid size (X, Y) of a task. */
export function taskGrid(task: SimulationTask): [number, number] {
  return task.system === 'rayleigh-benard' ? [4 * task.resolution, task.resolution] : [task.resolution, task.resolution];
}

/** The Well file spec of the parameter set a task belongs to (same layout, names and attributes as the real files). */
export function taskSpec(task: SimulationTask): WellFileSpec {
  const [nx, ny] = taskGrid(task);
  const fields = SYSTEM_FIELDS[task.system].map((f) => ({ name: f.name, order: f.order }));
  if (task.system === 'darcy') {
    // a steady problem: one time step (or copies of it), nodes on [0,1]^2 with the boundary nodes included
    const nodes = Array.from({ length: nx }, (_, i) => i / (nx - 1));
    return {
      datasetName: taskDatasetName(task),
      gridType: 'cartesian',
      spatialDims: ['x', 'y'],
      coords: { x: nodes, y: nodes.slice() },
      time: Array.from({ length: task.snapshots }, (_, k) => k),
      fields,
      scalars: [
        { name: 'alpha', value: task.alpha },
        { name: 'tau', value: task.tau },
      ],
      boundaryConditions: [
        { dim: 'x', bcType: 'WALL', name: 'x_wall_dirichlet' },
        { dim: 'y', bcType: 'WALL', name: 'y_wall_dirichlet' },
      ],
    };
  }
  const time = Array.from({ length: task.snapshots }, (_, k) => k * task.dt);
  if (task.system === 'euler') {
    const centres = (n: number): number[] => Array.from({ length: n }, (_, i) => (i + 0.5) / n);
    const bcType = task.boundary === 'periodic' ? 'PERIODIC' : 'OPEN';
    return {
      datasetName: taskDatasetName(task),
      gridType: 'cartesian',
      spatialDims: ['x', 'y'],
      coords: { x: centres(nx), y: centres(ny) },
      time,
      fields,
      scalars: [{ name: 'gamma', value: task.gamma }],
      boundaryConditions: [
        { dim: 'x', bcType },
        { dim: 'y', bcType },
      ],
    };
  }
  return {
    datasetName: 'rayleigh_benard',
    gridType: 'cartesian',
    spatialDims: ['x', 'y'],
    coords: { x: Array.from({ length: nx }, (_, i) => (4 * i) / nx), y: Array.from(chebyshevGaussNodes(ny)) },
    time,
    fields,
    scalars: [
      { name: 'Rayleigh', value: task.rayleigh },
      { name: 'Prandtl', value: task.prandtl },
    ],
    boundaryConditions: [
      { dim: 'x', bcType: 'PERIODIC' },
      { dim: 'y', bcType: 'WALL', name: 'y_wall_dirichlet' },
    ],
  };
}

/**
 * Runs a task snapshot by snapshot, yielding each frame's fields in stored layout (scalars (X, Y), vectors
 * (X, Y, 2)). Holds one solver and one frame.
 */
export function* taskFrames(task: SimulationTask): Generator<TrajectoryFields> {
  if (task.system === 'euler') {
    for (const s of eulerTrajectory(task)) {
      yield { energy: s.energy, density: s.density, pressure: s.pressure, momentum: interleave(s.momentumX, s.momentumY) };
    }
    return;
  }
  if (task.system === 'darcy') {
    const sample = darcySample({ size: task.resolution, seed: task.seed, alpha: task.alpha, tau: task.tau });
    const a = Float32Array.from(sample.a);
    const u = Float32Array.from(sample.u);
    // the steady state, once per snapshot (fresh arrays: a consumer may transfer or keep what it is given)
    for (let t = 0; t < task.snapshots; t++) yield t === task.snapshots - 1 ? { a, u } : { a: a.slice(), u: u.slice() };
    return;
  }
  if (task.system !== 'rayleigh-benard') throw new Error(`unknown system "${String((task as { system: unknown }).system)}"`);
  for (const s of rayleighBenardTrajectory(task)) {
    yield { buoyancy: s.buoyancy, pressure: s.pressure, velocity: interleave(s.velocityX, s.velocityY) };
  }
}

function interleave(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(2 * a.length);
  for (let k = 0; k < a.length; k++) {
    out[2 * k] = a[k];
    out[2 * k + 1] = b[k];
  }
  return out;
}

/**
 * Runs a whole task into one (T, X, Y[, 2]) array per field. Holds the whole trajectory. `shouldStop` is
 * polled after every snapshot; when it returns true the run stops with an error (used to cancel workers).
 */
export function runTask(task: SimulationTask, shouldStop?: () => boolean): TrajectoryFields {
  const [nx, ny] = taskGrid(task);
  const frame = nx * ny;
  const out: TrajectoryFields = {};
  for (const f of SYSTEM_FIELDS[task.system]) out[f.name] = new Float32Array(task.snapshots * frame * (f.order ? 2 : 1));
  let t = 0;
  for (const fields of taskFrames(task)) {
    for (const [name, data] of Object.entries(fields)) out[name].set(data, t * data.length);
    t++;
    if (shouldStop?.()) throw new Error(`simulation of ${taskFileStem(task)} (seed ${task.seed}) cancelled at snapshot ${t}`);
  }
  return out;
}

/** A task without its seed: the parameter set that a group of trajectories shares. */
export type TaskTemplate = SimulationTask extends infer T ? (T extends SimulationTask ? Omit<T, 'seed'> : never) : never;
