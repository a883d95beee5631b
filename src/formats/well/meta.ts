/**
 * Validated metadata of one Well file: grid, time, fields (with channel order and tensor components),
 * scalars and boundary conditions. Built on the main thread from the raw structure a worker reads
 * (`describe`), so every check names the file, the HDF5 path and what was expected.
 */
import type { RawDataset, RawGroup, RawNode, RawValue } from './raw.js';
import { wellPool, type H5Pool } from './pool.js';

export const BOUNDARY_CODES = { WALL: 0, OPEN: 1, PERIODIC: 2 } as const;
export type BoundaryType = keyof typeof BOUNDARY_CODES;

export interface WellFieldInfo {
  name: string;
  order: 0 | 1 | 2;
  /** HDF5 path without leading slash, e.g. `t1_fields/momentum`. */
  dataset: string;
  timeVarying: boolean;
  sampleVarying: boolean;
  dimVarying: boolean[];
  /**
   * Per spatial axis: whether it is stored with its full size. A non-varying axis is stored either without
   * that axis or with size 1; both are broadcast on read.
   */
  storedAxes: boolean[];
  /** Stored shape, as in the file. */
  shape: number[];
  /** Number of tensor components (1, D, D*D). */
  components: number;
  /** Channel names: `name` for order 0, `name_x, name_y` for order 1, `name_xx, name_xy, ...` for order 2. */
  channelNames: string[];
  symmetric?: boolean;
  antisymmetric?: boolean;
}

export interface WellScalarInfo {
  name: string;
  dataset: string;
  timeVarying: boolean;
  sampleVarying: boolean;
  dtype: 'float32' | 'float64';
  /** All values, flattened (`[B?][T?]`): scalars are small. */
  values: number[];
}

export interface WellBoundaryInfo {
  /** Group name, e.g. `x_periodic`. */
  name: string;
  bcType: BoundaryType;
  dims: string[];
  fields: string[];
  mask: boolean[];
  maskShape: number[];
}

/** How the channels of a channel-last array map to fields: one entry per channel. */
export interface ChannelLayout {
  names: string[];
  /** Core field name of each channel. */
  fields: string[];
  /** Component index of each channel within its field (0 for scalar fields). */
  components: number[];
}

export interface WellMeta {
  path: string;
  datasetName: string;
  gridType: string;
  nSpatialDims: number;
  spatialDims: string[];
  spatialShape: number[];
  /** Coordinates per spatial dimension (float32, as stored). */
  coords: Float32Array[];
  nTrajectories: number;
  /** Frames per trajectory. */
  nSteps: number;
  /** Times, `[T]`, or `[B * T]` when `timeSampleVarying`. */
  time: Float32Array;
  timeSampleVarying: boolean;
  /** Time-varying fields in channel order (order 0, 1, 2; `field_names` order within an order). */
  fields: WellFieldInfo[];
  /** Constant (time_varying = false) fields, same ordering rule. */
  constantFields: WellFieldInfo[];
  layout: ChannelLayout;
  constantLayout: ChannelLayout;
  coreFieldNames: string[];
  coreConstantFieldNames: string[];
  /** Time-varying scalars, in `scalars/field_names` order. */
  scalars: WellScalarInfo[];
  constantScalars: WellScalarInfo[];
  /** Root attributes named by `simulation_parameters`. */
  simulationParameters: Record<string, number | string>;
  boundaryConditions: WellBoundaryInfo[];
  /** `(nSpatialDims, 2)` codes WALL 0, OPEN 1, PERIODIC 2, as the reference loader builds them. */
  boundaryTable: Float32Array;
}

class MetaError extends Error {
  override readonly name = 'WellFormatError';
}

/** A Well file that does not follow the format: the message names the file, the HDF5 path and the expectation. */
export { MetaError as WellFormatError };

function isGroup(n: RawNode | undefined): n is RawGroup {
  return n?.kind === 'group';
}

function isDataset(n: RawNode | undefined): n is RawDataset {
  return n?.kind === 'dataset';
}

/**
 * Parses a raw file description. Throws a WellFormatError naming `path`, the HDF5 object and what was
 * expected on the first problem.
 */
export function parseWellMeta(path: string, root: RawGroup): WellMeta {
  const fail = (where: string, what: string): never => {
    throw new MetaError(`${path}: ${where}: ${what}`);
  };
  const group = (name: string): RawGroup => {
    const g = root.children[name];
    if (!isGroup(g)) fail(`/${name}`, g ? 'expected a group' : 'missing group');
    return g as RawGroup;
  };
  const attr = (attrs: Record<string, RawValue>, where: string, name: string): RawValue => {
    const v = attrs[name];
    if (v === undefined) fail(where, `missing attribute "${name}"`);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) fail(where, `attribute "${name}" unreadable: ${v.unreadable}`);
    return v as RawValue;
  };
  const str = (attrs: Record<string, RawValue>, where: string, name: string): string => {
    const v = attr(attrs, where, name);
    if (typeof v === 'string') return v;
    if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
    return fail(where, `attribute "${name}" should be a string, got ${JSON.stringify(v)}`);
  };
  const int = (attrs: Record<string, RawValue>, where: string, name: string): number => {
    const v = attr(attrs, where, name);
    const n = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      fail(where, `attribute "${name}" should be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    return n as number;
  };
  const flag = (attrs: Record<string, RawValue>, where: string, name: string, fallback?: boolean): boolean => {
    if (attrs[name] === undefined && fallback !== undefined) return fallback;
    const v = attr(attrs, where, name);
    const n = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (n === 0 || n === 1) return n === 1;
    return fail(where, `attribute "${name}" should be a boolean, got ${JSON.stringify(v)}`);
  };
  const strList = (attrs: Record<string, RawValue>, where: string, name: string): string[] => {
    const v = attr(attrs, where, name);
    if (typeof v === 'string') return [v]; // some files store a single name as a bare string
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    if (Array.isArray(v) && v.length === 0) return []; // h5py's empty list: float64 array of length 0
    return fail(where, `attribute "${name}" should be a list of strings, got ${JSON.stringify(v)}`);
  };

  const datasetName = str(root.attrs, '/', 'dataset_name');
  const gridType = root.attrs.grid_type === undefined ? 'cartesian' : str(root.attrs, '/', 'grid_type');
  const nSpatialDims = int(root.attrs, '/', 'n_spatial_dims');
  const nTrajectories = int(root.attrs, '/', 'n_trajectories');

  // dimensions
  const dims = group('dimensions');
  const spatialDims = strList(dims.attrs, '/dimensions', 'spatial_dims');
  if (spatialDims.length !== nSpatialDims) {
    fail('/dimensions', `spatial_dims lists ${spatialDims.length} names but n_spatial_dims is ${nSpatialDims}`);
  }
  if (nSpatialDims < 1 || nSpatialDims > 3) fail('/', `n_spatial_dims should be 1, 2 or 3, got ${nSpatialDims}`);
  const coords = spatialDims.map((d) => {
    const ds = dims.children[d];
    if (!isDataset(ds)) return fail(`/dimensions/${d}`, 'missing coordinate dataset');
    if (flag(ds.attrs, `/dimensions/${d}`, 'sample_varying', false) || flag(ds.attrs, `/dimensions/${d}`, 'time_varying', false)) {
      fail(`/dimensions/${d}`, 'sample- or time-varying coordinates are not supported (expected a fixed 1-D grid)');
    }
    if (ds.shape.length !== 1 || ds.shape[0]! < 1) fail(`/dimensions/${d}`, `expected a non-empty 1-D array, shape [${ds.shape}]`);
    return Float32Array.from(ds.value ?? []);
  });
  const spatialShape = coords.map((c) => c.length);
  const timeDs = dims.children.time;
  if (!isDataset(timeDs)) fail('/dimensions/time', 'missing dataset');
  const timeNode = timeDs as RawDataset;
  const timeSampleVarying = flag(timeNode.attrs, '/dimensions/time', 'sample_varying', false);
  const expectTimeRank = timeSampleVarying ? 2 : 1;
  if (timeNode.shape.length !== expectTimeRank || (timeSampleVarying && timeNode.shape[0] !== nTrajectories)) {
    fail('/dimensions/time', `expected shape ${timeSampleVarying ? `[${nTrajectories}, T]` : '[T]'}, found [${timeNode.shape}]`);
  }
  const nSteps = timeNode.shape.at(-1)!;
  const time = Float32Array.from(timeNode.value ?? []);

  // fields
  const parseFields = (order: 0 | 1 | 2): WellFieldInfo[] => {
    const gname = `t${order}_fields`;
    const g = group(gname);
    const names = strList(g.attrs, `/${gname}`, 'field_names');
    return names.map((name) => {
      const where = `/${gname}/${name}`;
      const ds = g.children[name];
      if (!isDataset(ds)) return fail(where, 'listed in field_names but missing');
      const timeVarying = flag(ds.attrs, where, 'time_varying');
      const sampleVarying = flag(ds.attrs, where, 'sample_varying');
      const dv = attr(ds.attrs, where, 'dim_varying');
      const dimVarying = (Array.isArray(dv) ? dv : [dv]).map((x) => x === 1);
      if (dimVarying.length !== nSpatialDims) {
        fail(where, `dim_varying has ${dimVarying.length} entries, expected ${nSpatialDims}`);
      }
      const lead = [...(sampleVarying ? [nTrajectories] : []), ...(timeVarying ? [nSteps] : [])];
      const tensor = new Array<number>(order).fill(nSpatialDims);
      const full = [...lead, ...spatialShape.map((n, i) => (dimVarying[i] ? n : 1)), ...tensor];
      const squeezed = [...lead, ...spatialShape.filter((_, i) => dimVarying[i]), ...tensor];
      const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
      if (!same(ds.shape, full) && !same(ds.shape, squeezed)) {
        const labels = [
          ...(sampleVarying ? [`n_trajectories=${nTrajectories}`] : []),
          ...(timeVarying ? [`T=${nSteps}`] : []),
        ];
        fail(
          where,
          `shape [${ds.shape}] does not match [${squeezed}] (${labels.join(', ') || 'no sample/time axes'}, ` +
            `grid [${spatialShape}], dim_varying [${dimVarying}], order ${order})`,
        );
      }
      if (ds.dtype !== '<f' && ds.dtype !== '<d' && ds.dtype !== '>f' && ds.dtype !== '>d') {
        fail(where, `expected floating-point data, dtype ${ds.dtype}`);
      }
      const suffixes =
        order === 0 ? [''] : order === 1 ? spatialDims.map((d) => `_${d}`) : spatialDims.flatMap((a) => spatialDims.map((b) => `_${a}${b}`));
      const info: WellFieldInfo = {
        name,
        order,
        dataset: `${gname}/${name}`,
        timeVarying,
        sampleVarying,
        dimVarying,
        storedAxes: dimVarying,
        shape: ds.shape,
        components: nSpatialDims ** order,
        channelNames: suffixes.map((s) => `${name}${s}`),
      };
      if (order === 2) {
        info.symmetric = flag(ds.attrs, where, 'symmetric', false);
        info.antisymmetric = flag(ds.attrs, where, 'antisymmetric', false);
      }
      return info;
    });
  };
  const all = ([0, 1, 2] as const).flatMap((o) => parseFields(o));
  const fields = all.filter((f) => f.timeVarying);
  const constantFields = all.filter((f) => !f.timeVarying);
  const layoutOf = (fs: WellFieldInfo[]): ChannelLayout => ({
    names: fs.flatMap((f) => f.channelNames),
    fields: fs.flatMap((f) => f.channelNames.map(() => f.name)),
    components: fs.flatMap((f) => f.channelNames.map((_, c) => c)),
  });

  // scalars
  const scalarsGroup = root.children.scalars;
  const scalarList: WellScalarInfo[] = [];
  if (isGroup(scalarsGroup)) {
    const names = scalarsGroup.attrs.field_names === undefined ? [] : strList(scalarsGroup.attrs, '/scalars', 'field_names');
    for (const name of names) {
      const where = `/scalars/${name}`;
      const ds = scalarsGroup.children[name];
      if (!isDataset(ds)) fail(where, 'listed in field_names but missing');
      const d = ds as RawDataset;
      const timeVarying = flag(d.attrs, where, 'time_varying', false);
      const sampleVarying = flag(d.attrs, where, 'sample_varying', false);
      const expected = [...(sampleVarying ? [nTrajectories] : []), ...(timeVarying ? [nSteps] : [])];
      const n = expected.reduce((a, b) => a * b, 1);
      if ((d.value ?? []).length !== n) fail(where, `expected shape [${expected}], found [${d.shape}]`);
      scalarList.push({
        name,
        dataset: `scalars/${name}`,
        timeVarying,
        sampleVarying,
        dtype: d.dtype.endsWith('d') ? 'float64' : 'float32',
        values: d.value ?? [],
      });
    }
  }

  const simulationParameters: Record<string, number | string> = {};
  if (root.attrs.simulation_parameters !== undefined) {
    for (const p of strList(root.attrs, '/', 'simulation_parameters')) {
      const v = root.attrs[p];
      if (typeof v === 'number' || typeof v === 'string') simulationParameters[p] = v;
      else if (Array.isArray(v) && v.length === 1) simulationParameters[p] = v[0]!;
    }
  }

  // boundary conditions, visited in link-name order; later groups overwrite earlier ones
  const boundaryConditions: WellBoundaryInfo[] = [];
  const boundaryTable = new Float32Array(nSpatialDims * 2).fill(BOUNDARY_CODES.OPEN);
  const bcGroup = root.children.boundary_conditions;
  if (isGroup(bcGroup)) {
    for (const [name, node] of Object.entries(bcGroup.children)) {
      const where = `/boundary_conditions/${name}`;
      if (!isGroup(node)) fail(where, 'expected a group');
      const g = node as RawGroup;
      const bcType = str(g.attrs, where, 'bc_type').toUpperCase();
      if (!(bcType in BOUNDARY_CODES)) fail(where, `bc_type "${bcType}" is not WALL, OPEN or PERIODIC`);
      const bdims = strList(g.attrs, where, 'associated_dims');
      for (const d of bdims) if (!spatialDims.includes(d)) fail(where, `associated dim "${d}" is not in spatial_dims`);
      const maskDs = g.children.mask;
      if (!isDataset(maskDs)) fail(`${where}/mask`, 'missing dataset');
      const m = maskDs as RawDataset;
      const expectedShape = bdims.map((d) => spatialShape[spatialDims.indexOf(d)]!);
      if (m.shape.length !== expectedShape.length || m.shape.some((n, i) => n !== expectedShape[i])) {
        fail(`${where}/mask`, `expected shape [${expectedShape}] (associated dims ${bdims.join(', ')}), found [${m.shape}]`);
      }
      const mask = (m.value ?? []).map((x) => x !== 0);
      const info: WellBoundaryInfo = {
        name,
        bcType: bcType as BoundaryType,
        dims: bdims,
        fields: g.attrs.associated_fields === undefined ? [] : strList(g.attrs, where, 'associated_fields'),
        mask,
        maskShape: m.shape,
      };
      boundaryConditions.push(info);
      const code = BOUNDARY_CODES[info.bcType];
      bdims.forEach((d, axis) => {
        const row = spatialDims.indexOf(d);
        for (const [col, end] of [
          [0, 0],
          [1, m.shape[axis]! - 1],
        ] as const) {
          const values = maskSlice(mask, m.shape, axis, end);
          const set = info.bcType === 'WALL' ? values.every(Boolean) : values.some(Boolean);
          if (set) boundaryTable[row * 2 + col] = code;
        }
      });
    }
  }

  return {
    path,
    datasetName,
    gridType,
    nSpatialDims,
    spatialDims,
    spatialShape,
    coords,
    nTrajectories,
    nSteps,
    time,
    timeSampleVarying,
    fields,
    constantFields,
    layout: layoutOf(fields),
    constantLayout: layoutOf(constantFields),
    coreFieldNames: fields.map((f) => f.name),
    coreConstantFieldNames: constantFields.map((f) => f.name),
    scalars: scalarList.filter((s) => s.timeVarying),
    constantScalars: scalarList.filter((s) => !s.timeVarying),
    simulationParameters,
    boundaryConditions,
    boundaryTable,
  };
}

/** The entries of an N-d mask at index `at` along `axis`. */
function maskSlice(mask: boolean[], shape: number[], axis: number, at: number): boolean[] {
  const out: boolean[] = [];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = shape[axis]!;
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) out.push(mask[(o * n + at) * inner + i]!);
  return out;
}

/**
 * Opens a Well file and returns its validated metadata. The structure is read in a worker thread (only
 * attributes and small metadata datasets; field data is not touched).
 */
export async function openWell(path: string, pool: H5Pool = wellPool()): Promise<WellMeta> {
  const raw = await pool.call('describe', { path }, `reading the structure of ${path}`);
  return parseWellMeta(path, raw);
}
