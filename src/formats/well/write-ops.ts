/**
 * The write side of the HDF5 worker (runs inside a worker thread): creates a Well-schema file under a
 * temporary name, appends trajectories frame by frame into chunked datasets whose trajectory axis is resizable,
 * optionally accumulates moments for stats.yaml on the way, and on finish records `n_trajectories`, closes and
 * commits the file into place (fsync, rename, fsync of the folder). Booleans are written as int8 0/1 (h5wasm
 * cannot write h5py's bool enum; The Well's loader and this package's reader both accept int8).
 */
import { rmSync, statSync } from 'node:fs';
import { commitFileSync } from '../../streams/atomic.js';
import type { Dataset, File as H5File, Group } from 'h5wasm';
import type h5wasmDefault from 'h5wasm';
import { componentCount, frameShape, type WellFieldSpec } from './spec.js';
import { addBlock, emptyMoments, type MomentSet } from './moments.js';
import { diagSummary } from './read-ops.js';
import type { CreatePlan, FinishResult } from './raw.js';
import type { H5Handlers, H5WriteOpName } from './protocol.js';

type H5 = typeof h5wasmDefault;

export type { CreatePlan, FinishResult } from './raw.js';

interface WriterState {
  plan: CreatePlan;
  file: H5File;
  datasets: Map<string, Dataset>;
  trajectory: number;
  framesWritten: number;
  /** Non-sample-varying data is written once, from the first trajectory that provides it. */
  sharedWritten: Set<string>;
  moments: MomentSet;
  previous: Map<string, Float32Array>;
  nonFinite: number;
}

const bool = (b: boolean) => new Int8Array([b ? 1 : 0]);

function strList(group: Group | H5File, name: string, values: string[]): void {
  // h5py writes an empty list as a float64 array of length 0; mimic it so both read the same way
  if (values.length === 0) group.create_attribute(name, new Float64Array(0), [0], '<d');
  else group.create_attribute(name, values);
}

function flags(node: Dataset | Group, sampleVarying: boolean, timeVarying: boolean): void {
  node.create_attribute('sample_varying', bool(sampleVarying), [], '<b');
  node.create_attribute('time_varying', bool(timeVarying), [], '<b');
}

export function createWriteOps(h5: H5, diag: string[]): H5Handlers<H5WriteOpName> {
  const writers = new Map<number, WriterState>();
  let nextHandle = 1;

  function state(handle: number): WriterState {
    const s = writers.get(handle);
    if (!s) throw new Error(`no open Well writer #${handle}`);
    return s;
  }

  function checkFinite(s: WriterState, name: string, data: Float32Array, where: string): void {
    let bad = 0;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) bad++;
    if (bad === 0) return;
    if (s.plan.nonFinite === 'error') {
      throw new Error(`${s.plan.tmpPath}: field ${name} has ${bad} non-finite value(s) at ${where} (expected finite numbers)`);
    }
    s.nonFinite += bad;
  }

  return {
    create(plan: CreatePlan): number {
      diag.length = 0;
      const { spec } = plan;
      let f: H5File;
      try {
        f = new h5.File(plan.tmpPath, 'w');
      } catch {
        throw new Error(`${plan.tmpPath}: cannot create the file${diagSummary(diag)}`);
      }
      const T = spec.time.length;
      const nDims = spec.spatialDims.length;
      const scalars = spec.scalars ?? [];
      f.create_attribute('dataset_name', spec.datasetName);
      f.create_attribute('grid_type', spec.gridType ?? 'cartesian');
      f.create_attribute('n_spatial_dims', new BigInt64Array([BigInt(nDims)]), [], '<q');
      f.create_attribute('n_trajectories', new BigInt64Array([0n]), [], '<q');
      strList(f, 'simulation_parameters', scalars.map((s) => s.name));
      for (const s of scalars) f.create_attribute(s.name, new Float64Array([s.value]), [], '<d');

      const dims = f.create_group('dimensions');
      strList(dims, 'spatial_dims', spec.spatialDims);
      const time = dims.create_dataset({ name: 'time', data: Float32Array.from(spec.time), shape: [T], dtype: '<f' });
      flags(time, false, true);
      for (const d of spec.spatialDims) {
        const c = Float32Array.from(spec.coords[d]!);
        flags(dims.create_dataset({ name: d, data: c, shape: [c.length], dtype: '<f' }), false, false);
      }

      const bcs = f.create_group('boundary_conditions');
      for (const bc of spec.boundaryConditions ?? []) {
        const n = spec.coords[bc.dim]!.length;
        const g = bcs.create_group(bc.name ?? `${bc.dim}_${bc.bcType.toLowerCase()}`);
        strList(g, 'associated_dims', [bc.dim]);
        strList(g, 'associated_fields', bc.fields ?? []);
        g.create_attribute('bc_type', bc.bcType);
        flags(g, false, false);
        const mask = new Int8Array(n);
        if (bc.mask) bc.mask.forEach((m, i) => (mask[i] = m ? 1 : 0));
        else {
          mask[0] = 1;
          mask[n - 1] = 1;
        }
        g.create_dataset({ name: 'mask', data: mask, shape: [n], dtype: '<b' });
      }

      const sc = f.create_group('scalars');
      strList(sc, 'field_names', scalars.map((s) => s.name));
      for (const s of scalars) {
        flags(sc.create_dataset({ name: s.name, data: new Float64Array([s.value]), shape: [], dtype: '<d' }), false, false);
      }

      const datasets = new Map<string, Dataset>();
      const chunkFrames = Math.max(1, Math.min(T, plan.chunkFrames ?? 1));
      for (const order of [0, 1, 2] as const) {
        const g = f.create_group(`t${order}_fields`);
        const fields = spec.fields.filter((x) => x.order === order);
        strList(g, 'field_names', fields.map((x) => x.name));
        for (const field of fields) {
          const sv = field.sampleVarying ?? true;
          const tv = field.timeVarying ?? true;
          const frame = frameShape(spec, field);
          const shape = [...(sv ? [0] : []), ...(tv ? [T] : []), ...frame];
          const maxshape = [...(sv ? [null] : []), ...(tv ? [T] : []), ...frame];
          const chunks = [...(sv ? [1] : []), ...(tv ? [chunkFrames] : []), ...frame.map((n) => Math.max(1, n))];
          const n = shape.reduce((a, b) => a * b, 1);
          const ds = g.create_dataset({
            name: field.name,
            data: new Float32Array(n),
            shape,
            dtype: '<f',
            maxshape,
            chunks,
            ...(plan.compression ? { compression: 'gzip' as const, compression_opts: plan.compression } : {}),
          });
          const dimVarying = field.dimVarying ?? spec.spatialDims.map(() => true);
          ds.create_attribute('dim_varying', Int8Array.from(dimVarying, (b) => (b ? 1 : 0)), [nDims], '<b');
          flags(ds, sv, tv);
          if (order === 2) {
            ds.create_attribute('symmetric', bool(field.symmetric ?? false), [], '<b');
            ds.create_attribute('antisymmetric', bool(field.antisymmetric ?? false), [], '<b');
          }
          datasets.set(field.name, ds);
        }
      }
      const handle = nextHandle++;
      const moments: MomentSet = { fields: {}, deltas: {} };
      if (plan.computeStats) {
        for (const field of spec.fields) {
          const comps = componentCount(field.order, nDims);
          moments.fields[field.name] = emptyMoments(comps);
          if (field.timeVarying ?? true) moments.deltas[field.name] = emptyMoments(comps);
        }
      }
      writers.set(handle, {
        plan,
        file: f,
        datasets,
        trajectory: -1,
        framesWritten: 0,
        sharedWritten: new Set(),
        moments,
        previous: new Map(),
        nonFinite: 0,
      });
      return handle;
    },

    /** Starts trajectory `n` (grows every sample-varying dataset by one). */
    beginTrajectory(args: { handle: number }): number {
      const s = state(args.handle);
      s.trajectory++;
      s.framesWritten = 0;
      s.previous.clear();
      for (const field of s.plan.spec.fields) {
        if (!(field.sampleVarying ?? true)) continue;
        const ds = s.datasets.get(field.name)!;
        const shape = ds.shape!;
        ds.resize([s.trajectory + 1, ...shape.slice(1)]);
      }
      return s.trajectory;
    },

    /** Writes frame `t` of the current trajectory: one array per time-varying field, in stored layout. */
    writeFrame(args: { handle: number; t: number; fields: Record<string, Float32Array> }): number {
      const s = state(args.handle);
      const b = s.trajectory;
      for (const field of s.plan.spec.fields) {
        if (!(field.timeVarying ?? true)) continue;
        const sv = field.sampleVarying ?? true;
        const data = args.fields[field.name];
        if (!data) {
          if (!sv && s.sharedWritten.has(`${field.name}@${args.t}`)) continue;
          throw new Error(`${s.plan.tmpPath}: frame ${args.t} of trajectory ${b} lacks field ${field.name}`);
        }
        checkFinite(s, field.name, data, `trajectory ${b}, frame ${args.t}`);
        const ds = s.datasets.get(field.name)!;
        if (sv) ds.write_slice([[b, b + 1], [args.t, args.t + 1]], data);
        else if (!s.sharedWritten.has(`${field.name}@${args.t}`)) {
          ds.write_slice([[args.t, args.t + 1]], data);
          s.sharedWritten.add(`${field.name}@${args.t}`);
        }
        if (s.plan.computeStats) {
          const comps = componentCount(field.order, s.plan.spec.spatialDims.length);
          addBlock(s.moments.fields[field.name]!, data, comps);
          const prev = s.previous.get(field.name);
          if (prev) addBlock(s.moments.deltas[field.name]!, data, comps, prev);
          s.previous.set(field.name, data);
        }
      }
      s.framesWritten++;
      return s.framesWritten;
    },

    /** Writes the constant (time-invariant) fields of the current trajectory. */
    writeConstants(args: { handle: number; fields: Record<string, Float32Array> }): boolean {
      const s = state(args.handle);
      const b = s.trajectory;
      for (const field of s.plan.spec.fields) {
        if (field.timeVarying ?? true) continue;
        const sv = field.sampleVarying ?? true;
        const data = args.fields[field.name];
        if (!data) {
          if (!sv && s.sharedWritten.has(field.name)) continue;
          throw new Error(`${s.plan.tmpPath}: trajectory ${b} lacks constant field ${field.name}`);
        }
        checkFinite(s, field.name, data, `trajectory ${b} (constant field)`);
        const ds = s.datasets.get(field.name)!;
        if (sv) ds.write_slice([[b, b + 1]], data);
        else if (!s.sharedWritten.has(field.name)) {
          ds.write_slice([], data);
          s.sharedWritten.add(field.name);
        }
        if (s.plan.computeStats && (sv || !s.sharedWritten.has(`${field.name}#stats`))) {
          addBlock(s.moments.fields[field.name]!, data, componentCount(field.order, s.plan.spec.spatialDims.length));
          s.sharedWritten.add(`${field.name}#stats`);
        }
      }
      return true;
    },

    /** Records n_trajectories, closes the file and commits it to `finalPath` (fsync, rename, fsync of the folder). */
    finish(args: { handle: number; finalPath: string }): FinishResult {
      const s = state(args.handle);
      const n = s.trajectory + 1;
      s.file.delete_attribute('n_trajectories');
      s.file.create_attribute('n_trajectories', new BigInt64Array([BigInt(n)]), [], '<q');
      s.file.close();
      writers.delete(args.handle);
      commitFileSync(s.plan.tmpPath, args.finalPath);
      return {
        nTrajectories: n,
        bytes: statSync(args.finalPath).size,
        moments: s.plan.computeStats ? s.moments : null,
        nonFinite: s.nonFinite,
      };
    },

    /** Closes and deletes the temporary file (nothing at the final path is touched). */
    abort(args: { handle: number }): boolean {
      const s = writers.get(args.handle);
      if (!s) return false;
      writers.delete(args.handle);
      try {
        s.file.close();
      } finally {
        rmSync(s.plan.tmpPath, { force: true });
      }
      return true;
    },
  };
}

export type { WellFieldSpec };
