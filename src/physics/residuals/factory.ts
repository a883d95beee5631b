/**
 * `residualFor(system, description)`: the residual of a system for states described the way a Well file
 * describes them (channel names, node coordinates, time between frames, boundary types, parameters).
 * `describeWellMeta` builds that description from a parsed Well file. Anything the residual cannot use (a
 * channel it does not know or misses, a grid it does not handle, a missing parameter) is an error that names it.
 */
import type { WellMeta } from '../../formats/well/meta.js';
import { DarcyResidual, DARCY_CHANNELS } from './darcy.js';
import { EulerResidual, EULER_CHANNELS } from './euler.js';
import { RayleighBenardResidual, RAYLEIGH_BENARD_CHANNELS } from './rayleigh-benard.js';
import type { PdeResidual } from './residual.js';

export type ResidualSystem = 'euler' | 'rayleigh-benard' | 'darcy';

export const RESIDUAL_SYSTEMS: readonly ResidualSystem[] = ['euler', 'rayleigh-benard', 'darcy'];

export interface ResidualDescription {
  /** Channel names of the states, in order (a Well layout's `names`). */
  channels: readonly string[];
  /** Node coordinates per spatial axis, [x, y]. */
  coords?: readonly ArrayLike<number>[];
  /** Nodes per spatial axis, where there are no coordinates (Darcy only: its grid is fixed by the size). */
  shape?: readonly number[];
  /** Time between consecutive frames. */
  dt?: number;
  /** Boundary type per spatial axis: PERIODIC, OPEN or WALL (any case). */
  boundaries?: readonly string[];
  /** Physical parameters by name, any case: gamma (Euler); Rayleigh, Prandtl (Rayleigh-Benard); f (Darcy). */
  parameters?: Record<string, number | string>;
}

const KNOWN_CHANNELS: Record<ResidualSystem, readonly string[]> = {
  euler: EULER_CHANNELS,
  'rayleigh-benard': RAYLEIGH_BENARD_CHANNELS,
  darcy: DARCY_CHANNELS,
};

/** The description of a parsed Well file's states (time-varying channels, grid, dt, boundaries, parameters). */
export function describeWellMeta(
  meta: Pick<WellMeta, 'layout' | 'coords' | 'time' | 'boundaryTable' | 'simulationParameters' | 'constantScalars' | 'nSpatialDims'>,
): ResidualDescription {
  const codes = ['WALL', 'OPEN', 'PERIODIC'];
  const boundaries = Array.from({ length: meta.nSpatialDims }, (_, d) => codes[meta.boundaryTable[2 * d]] ?? 'unknown');
  const parameters: Record<string, number | string> = { ...meta.simulationParameters };
  for (const s of meta.constantScalars) if (s.values.length === 1 && parameters[s.name] === undefined) parameters[s.name] = s.values[0];
  return {
    channels: meta.layout.names,
    coords: meta.coords,
    dt: meta.time.length >= 2 ? meta.time[1] - meta.time[0] : undefined,
    boundaries,
    parameters,
  };
}

/** The residual of `system` for states described by `description`; throws naming whatever it cannot use. */
export function residualFor(system: ResidualSystem, description: ResidualDescription): PdeResidual {
  const who = `residualFor(${JSON.stringify(system)})`;
  if (!RESIDUAL_SYSTEMS.includes(system))
    throw new Error(`residualFor: unknown system ${JSON.stringify(system)} (known: ${RESIDUAL_SYSTEMS.join(', ')})`);
  const known = KNOWN_CHANNELS[system];
  const unknown = description.channels.filter((c) => !known.includes(c));
  if (unknown.length) throw new Error(`${who}: unknown channel${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${known.join(', ')})`);

  const parameter = (name: string): number => {
    const entry = Object.entries(description.parameters ?? {}).find(([k]) => k.toLowerCase() === name.toLowerCase());
    const value = Number(entry?.[1]);
    if (entry === undefined || !Number.isFinite(value)) throw new Error(`${who}: needs the parameter ${name}${entry ? `, got ${JSON.stringify(entry[1])}` : ''}`);
    return value;
  };
  const dt = (): number => {
    if (!(description.dt !== undefined && description.dt > 0)) throw new Error(`${who}: needs dt, the time between frames (got ${description.dt})`);
    return description.dt;
  };
  const axis = (d: number, name: string): Float64Array => {
    const c = description.coords?.[d];
    if (!c) throw new Error(`${who}: needs the ${name} node coordinates (coords[${d}])`);
    if (c.length < 3) throw new Error(`${who}: needs at least 3 nodes along ${name}, got ${c.length}`);
    return Float64Array.from(c);
  };
  const spacing = (c: Float64Array, name: string): number => {
    const h = (c[c.length - 1] - c[0]) / (c.length - 1);
    for (let i = 1; i < c.length; i++)
      if (!(Math.abs(c[i] - c[i - 1] - h) <= 1e-4 * h))
        throw new Error(`${who}: the ${name} grid is not uniform (spacing ${c[i] - c[i - 1]} at node ${i}, mean ${h})`);
    return h;
  };
  const boundary = (d: number): string | undefined => description.boundaries?.[d]?.toUpperCase();

  if (system === 'euler') {
    const [bx, by] = [boundary(0), boundary(1)];
    if (bx !== by || (bx !== 'PERIODIC' && bx !== 'OPEN'))
      throw new Error(`${who}: needs PERIODIC or OPEN boundaries, the same on both axes (got ${bx ?? 'none'}, ${by ?? 'none'})`);
    return new EulerResidual({
      gamma: parameter('gamma'),
      dt: dt(),
      dx: spacing(axis(0, 'x'), 'x'),
      dy: spacing(axis(1, 'y'), 'y'),
      boundary: bx === 'PERIODIC' ? 'periodic' : 'open',
      channels: description.channels,
    });
  }
  if (system === 'rayleigh-benard') {
    const [bx, by] = [boundary(0), boundary(1)];
    if ((bx !== undefined && bx !== 'PERIODIC') || (by !== undefined && by !== 'WALL'))
      throw new Error(`${who}: needs a PERIODIC x axis and WALL y axis (got ${bx}, ${by})`);
    const y = axis(1, 'y');
    if (!(y[0] > 0 && y[y.length - 1] < 1)) throw new Error(`${who}: the y nodes must lie strictly inside the walls y = 0 and y = 1 (got ${y[0]}..${y[y.length - 1]})`);
    return new RayleighBenardResidual({
      rayleigh: parameter('Rayleigh'),
      prandtl: parameter('Prandtl'),
      dt: dt(),
      dx: spacing(axis(0, 'x'), 'x'),
      y,
      channels: description.channels,
    });
  }
  // darcy: the N x N interior nodes (i + 1) / (N + 1) of the unit square
  let n: number;
  if (description.coords) {
    const [x, y] = [axis(0, 'x'), axis(1, 'y')];
    n = x.length;
    for (const [name, c] of [['x', x], ['y', y]] as const) {
      if (c.length !== n) throw new Error(`${who}: needs a square grid, got ${x.length} x ${y.length}`);
      for (let i = 0; i < n; i++)
        if (Math.abs(c[i] - (i + 1) / (n + 1)) > 1e-4 / (n + 1))
          throw new Error(`${who}: the ${name} nodes must be the interior nodes (i + 1) / (N + 1) of [0, 1]; node ${i} is ${c[i]}`);
    }
  } else if (description.shape && description.shape.length === 2 && description.shape[0] === description.shape[1]) {
    n = description.shape[0];
  } else {
    throw new Error(`${who}: needs the grid: coords or a square shape [N, N] (got ${description.shape ? `[${description.shape}]` : 'neither'})`);
  }
  const f = description.parameters && Object.keys(description.parameters).some((k) => k.toLowerCase() === 'f') ? parameter('f') : 1;
  return new DarcyResidual({ n, source: f, channels: description.channels });
}

/** The residual system of a Well dataset name (`euler_multi_quadrants_*`, `rayleigh_benard`, `darcy_flow`). */
export function residualSystemOf(datasetName: string): ResidualSystem {
  if (datasetName.startsWith('euler_multi_quadrants')) return 'euler';
  if (datasetName.startsWith('rayleigh_benard')) return 'rayleigh-benard';
  if (datasetName.startsWith('darcy')) return 'darcy';
  throw new Error(`no PDE residual is known for the dataset "${datasetName}" (known: euler_multi_quadrants_*, rayleigh_benard, darcy_flow)`);
}

/**
 * The residual of the states of a parsed Well file: of the system its dataset name names (or `system`, to
 * override), on its grid, dt, boundaries and parameters.
 */
export function residualForWell(
  meta: Parameters<typeof describeWellMeta>[0] & Pick<WellMeta, 'datasetName'>,
  system: ResidualSystem = residualSystemOf(meta.datasetName),
): PdeResidual {
  return residualFor(system, describeWellMeta(meta));
}
