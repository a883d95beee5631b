/**
 * Writers of The Well's format. `writeWell` is a sink: it pulls trajectories (each a stream of frames) and
 * writes them into one HDF5 file with chunked, resizable datasets; `writeWellDataset` lays out a dataset root
 * (`<root>/data/{train,valid,test}/<name>.hdf5` and `<root>/stats.yaml`). The HDF5 work runs in a worker
 * thread; the main thread only checks shapes and hands frames over, one frame in flight at a time, so memory
 * holds about two frames whatever the trajectory length. Files are written under a temporary name and renamed
 * when complete: an error or abort leaves any earlier file at the destination untouched.
 */
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { from, type Source } from '../../streams/core.js';
import { writeFileAtomic } from '../../streams/atomic.js';
import { wellWriterWorker, type H5Worker } from './pool.js';
import { mergeMomentSets, type MomentSet } from './moments.js';
import { formatStatsYaml, statsFromMoments, type WellStats } from './stats.js';
import { componentCount, frameShape, type WellFieldSpec, type WellFileSpec } from './spec.js';
import type { CreatePlan } from './raw.js';

/**
 * One frame of a trajectory. Give either `fields` (one Float32Array per time-varying field, in stored layout:
 * the field's varying spatial axes then its tensor axes, row-major, e.g. `(X, Y, 2)` for a 2-D vector field) or
 * `channels` (one channel-last array `(X, Y, C)` in the reader's channel order). Arrays are copied: the
 * producer may reuse its buffers after the frame is pulled.
 */
export interface WellFrame {
  fields?: Record<string, Float32Array>;
  channels?: Float32Array;
}

/**
 * One trajectory as the writer consumes it: its frames, in time order, as a (possibly lazy) iterable, so a
 * simulator can produce them one at a time; exactly `spec.time.length` frames are expected. `constantFields`
 * holds the time-invariant fields (stored layout), if the spec has any.
 */
export interface WellTrajectory {
  frames: AsyncIterable<WellFrame> | Iterable<WellFrame>;
  constantFields?: Record<string, Float32Array>;
}

export interface WriteWellOptions {
  /** gzip level 1-9 (default: no compression). */
  compression?: number;
  /** Frames per chunk along time (default 1: a chunk is one frame of one trajectory, best for window reads). */
  chunkFrames?: number;
  /** Accumulate pooled moments while writing (needed for stats.yaml). Default false. */
  computeStats?: boolean;
  /** Non-finite values: 'error' (default) fails naming field, trajectory and frame; 'count' reports them. */
  nonFinite?: 'error' | 'count';
  /** Called after each trajectory is fully written, with its index in the file. */
  onTrajectory?: (index: number) => void;
  signal?: AbortSignal;
  /** The worker thread doing the HDF5 writes (default: one shared by all writers of the process). */
  worker?: H5Worker;
}

export interface WriteWellResult {
  path: string;
  nTrajectories: number;
  nSteps: number;
  bytes: number;
  /** Pooled moments of what was written (when `computeStats`). */
  moments: MomentSet | null;
  /** Non-finite values written (always 0 with `nonFinite: 'error'`). */
  nonFinite: number;
}

/** Checks a spec for consistency; throws an error naming the first problem. */
export function validateWellSpec(spec: WellFileSpec): void {
  const where = `Well spec "${spec.datasetName}"`;
  if (!spec.datasetName) throw new Error('Well spec: datasetName is required');
  const nDims = spec.spatialDims.length;
  if (nDims < 1 || nDims > 3) throw new Error(`${where}: spatialDims must list 1 to 3 names, got ${nDims}`);
  if (new Set(spec.spatialDims).size !== nDims) throw new Error(`${where}: spatialDims has duplicates`);
  for (const d of spec.spatialDims) {
    const c = spec.coords[d];
    if (!c || c.length < 1) throw new Error(`${where}: coords.${d} is missing or empty`);
    for (let i = 0; i < c.length; i++) {
      if (!Number.isFinite(c[i]!)) throw new Error(`${where}: coords.${d}[${i}] is not finite`);
    }
  }
  if (spec.time.length < 1) throw new Error(`${where}: time must have at least one entry`);
  const names = new Set<string>();
  for (const f of spec.fields) {
    if (!f.name || f.name.includes('/')) throw new Error(`${where}: bad field name "${f.name}"`);
    if (names.has(f.name)) throw new Error(`${where}: field "${f.name}" is listed twice`);
    names.add(f.name);
    if (![0, 1, 2].includes(f.order)) throw new Error(`${where}: field ${f.name} has order ${f.order}, expected 0, 1 or 2`);
    if (f.dimVarying && f.dimVarying.length !== nDims) {
      throw new Error(`${where}: field ${f.name} dimVarying has ${f.dimVarying.length} entries, expected ${nDims}`);
    }
  }
  const scalarNames = new Set<string>();
  for (const s of spec.scalars ?? []) {
    if (scalarNames.has(s.name)) throw new Error(`${where}: scalar "${s.name}" is listed twice`);
    scalarNames.add(s.name);
    if (!Number.isFinite(s.value)) throw new Error(`${where}: scalar ${s.name} is not finite`);
  }
  const bcNames = new Set<string>();
  for (const bc of spec.boundaryConditions ?? []) {
    if (!spec.spatialDims.includes(bc.dim)) throw new Error(`${where}: boundary condition on unknown dim "${bc.dim}"`);
    if (!['PERIODIC', 'OPEN', 'WALL'].includes(bc.bcType)) {
      throw new Error(`${where}: boundary condition bcType "${bc.bcType}" is not PERIODIC, OPEN or WALL`);
    }
    const name = bc.name ?? `${bc.dim}_${bc.bcType.toLowerCase()}`;
    if (bcNames.has(name)) throw new Error(`${where}: boundary condition group "${name}" is listed twice`);
    bcNames.add(name);
    if (bc.mask && bc.mask.length !== spec.coords[bc.dim]!.length) {
      throw new Error(`${where}: boundary mask for ${name} has ${bc.mask.length} entries, expected ${spec.coords[bc.dim]!.length}`);
    }
  }
}

/** Time-varying fields in the reader's channel order (order 0, then 1, then 2; spec order within). */
export function timeVaryingFields(spec: WellFileSpec): WellFieldSpec[] {
  return [0, 1, 2].flatMap((o) => spec.fields.filter((f) => f.order === o && (f.timeVarying ?? true)));
}

/** Splits a channel-last frame `(*spatial, C)` into per-field arrays (every axis must be varying). */
export function channelsToFields(spec: WellFileSpec, channels: Float32Array): Record<string, Float32Array> {
  const fields = timeVaryingFields(spec);
  const nDims = spec.spatialDims.length;
  const S = spec.spatialDims.reduce((a, d) => a * spec.coords[d]!.length, 1);
  const comps = fields.map((f) => componentCount(f.order, nDims));
  const C = comps.reduce((a, b) => a + b, 0);
  if (channels.length !== S * C) {
    throw new Error(`channel-last frame has ${channels.length} values, expected ${S} points x ${C} channels`);
  }
  const out: Record<string, Float32Array> = {};
  let offset = 0;
  fields.forEach((f, i) => {
    if (f.dimVarying?.some((v) => !v)) {
      throw new Error(`field ${f.name} has a non-varying axis: give it through "fields", not "channels"`);
    }
    const k = comps[i]!;
    const a = new Float32Array(S * k);
    for (let s = 0; s < S; s++) for (let c = 0; c < k; c++) a[s * k + c] = channels[s * C + offset + c]!;
    out[f.name] = a;
    offset += k;
  });
  return out;
}

/**
 * One open output file, written through a worker it does not own (several files may share a worker). Use
 * `writeWell` unless you are fanning one stream out to several files.
 */
export class WellFileWriter {
  private nTrajectories = 0;
  private readonly expectedSizes: Map<string, number>;

  private constructor(
    private readonly worker: H5Worker,
    private readonly handle: number,
    readonly path: string,
    private readonly tmpPath: string,
    readonly spec: WellFileSpec,
    private readonly options: WriteWellOptions,
  ) {
    this.expectedSizes = new Map(spec.fields.map((f) => [f.name, frameShape(spec, f).reduce((a, b) => a * b, 1)]));
  }

  static async create(
    worker: H5Worker,
    path: string,
    spec: WellFileSpec,
    options: WriteWellOptions = {},
  ): Promise<WellFileWriter> {
    validateWellSpec(spec);
    await mkdir(dirname(path), { recursive: true });
    const tmpPath = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    const plain: WellFileSpec = {
      ...spec,
      time: Array.from(spec.time),
      coords: Object.fromEntries(Object.entries(spec.coords).map(([k, v]) => [k, Array.from(v)])),
    };
    const plan: CreatePlan = {
      tmpPath,
      spec: plain,
      ...(options.compression ? { compression: options.compression } : {}),
      ...(options.chunkFrames ? { chunkFrames: options.chunkFrames } : {}),
      computeStats: options.computeStats ?? false,
      nonFinite: options.nonFinite ?? 'error',
    };
    const handle = await worker.call('create', plan, `creating ${path}`);
    return new WellFileWriter(worker, handle, path, tmpPath, plain, options);
  }

  private check(name: string, data: Float32Array | undefined, where: string): Float32Array {
    if (!(data instanceof Float32Array)) throw new Error(`${this.path}: ${where}: field ${name} must be a Float32Array`);
    const expected = this.expectedSizes.get(name)!;
    if (data.length !== expected) {
      const shape = frameShape(this.spec, this.spec.fields.find((f) => f.name === name)!);
      throw new Error(`${this.path}: ${where}: field ${name} has ${data.length} values, expected ${expected} (shape [${shape}])`);
    }
    return data.slice(); // a private copy, transferred to the worker
  }

  /** Writes one trajectory, pulling its frames one by one (one frame in flight to the worker). */
  async writeTrajectory(trajectory: WellTrajectory): Promise<void> {
    const b = this.nTrajectories;
    const label = `writing trajectory ${b} of ${this.path}`;
    await this.worker.call('beginTrajectory', { handle: this.handle }, label);
    const T = this.spec.time.length;
    const tv = this.spec.fields.filter((f) => f.timeVarying ?? true);
    const constants = this.spec.fields.filter((f) => !(f.timeVarying ?? true));
    if (constants.length > 0) {
      const fields: Record<string, Float32Array> = {};
      for (const f of constants) {
        const data = trajectory.constantFields?.[f.name];
        if (data === undefined && (f.sampleVarying ?? true) === false && b > 0) continue;
        fields[f.name] = this.check(f.name, data, `trajectory ${b} constant fields`);
      }
      await this.worker.call('writeConstants', { handle: this.handle, fields }, label, buffers(fields));
    }
    let t = 0;
    let inFlight: Promise<unknown> | null = null;
    for await (const frame of from(trajectory.frames)) {
      this.options.signal?.throwIfAborted();
      if (t >= T) throw new Error(`${this.path}: trajectory ${b} has more than the ${T} frames of spec.time`);
      const where = `trajectory ${b}, frame ${t}`;
      const given = frame.channels ? channelsToFields(this.spec, frame.channels) : frame.fields;
      if (!given) throw new Error(`${this.path}: ${where}: a frame needs "fields" or "channels"`);
      const fields: Record<string, Float32Array> = {};
      for (const f of tv) {
        if (given[f.name] === undefined && (f.sampleVarying ?? true) === false && b > 0) continue;
        fields[f.name] = frame.channels ? given[f.name]! : this.check(f.name, given[f.name], where);
      }
      if (inFlight) await inFlight;
      inFlight = this.worker.call('writeFrame', { handle: this.handle, t, fields }, label, buffers(fields));
      t++;
    }
    if (inFlight) await inFlight;
    if (t !== T) throw new Error(`${this.path}: trajectory ${b} has ${t} frames, expected ${T} (length of spec.time)`);
    this.nTrajectories++;
    this.options.onTrajectory?.(b);
  }

  /** Closes the file and commits it into place (fsync, rename, fsync of the folder). */
  async finish(): Promise<WriteWellResult> {
    const r = await this.worker.call(
      'finish',
      { handle: this.handle, finalPath: this.path },
      `finishing ${this.path}`,
    );
    return { path: this.path, nSteps: this.spec.time.length, ...r };
  }

  /** Deletes the temporary file; the destination is left as it was. */
  async abort(): Promise<void> {
    await this.worker.call('abort', { handle: this.handle }, `aborting ${this.path}`).catch(() => undefined);
  }

  get temporaryPath(): string {
    return this.tmpPath;
  }
}

function buffers(fields: Record<string, Float32Array>): ArrayBuffer[] {
  return Object.values(fields).map((a) => a.buffer as ArrayBuffer);
}

/**
 * Sink: writes every trajectory of `source` into the Well file `path` (created or replaced atomically when the
 * stream ends). Holds about two frames in memory. Resolves to what was written; rejects (leaving no partial
 * file) if the source fails, a frame has the wrong size, or a value is not finite.
 *
 * ```ts
 * await writeWell(simulate(config), 'out/euler.hdf5', spec, { compression: 4 });
 * ```
 */
export async function writeWell(
  source: Source<WellTrajectory>,
  path: string,
  spec: WellFileSpec,
  options: WriteWellOptions = {},
): Promise<WriteWellResult> {
  const writer = await WellFileWriter.create(options.worker ?? wellWriterWorker(), path, spec, options);
  try {
    for await (const trajectory of from(source)) {
      options.signal?.throwIfAborted();
      await writer.writeTrajectory(trajectory);
    }
    return await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

export type WellSplit = 'train' | 'valid' | 'test';
export const WELL_SPLITS: readonly WellSplit[] = ['train', 'valid', 'test'];

export interface WriteWellDatasetOptions extends WriteWellOptions {
  /** File name inside each split directory, e.g. `euler_multi_quadrants_periodicBC_gamma_1.4_Air_2.hdf5`. */
  fileName: string;
  /**
   * When the source is one stream: fractions of trajectories per split (default 0.8/0.1/0.1). Trajectories
   * are dealt in order to the split furthest below its share, so any prefix of the stream is split close to
   * these fractions (with 10 trajectories: 8 train, 1 valid, 1 test).
   */
  fractions?: Partial<Record<WellSplit, number>>;
  /**
   * Write `<root>/stats.yaml` from this file's train split (default true). A caller that adds several files to
   * one root turns it off and writes stats.yaml once, from the moments of every file, last.
   */
  writeStats?: boolean;
}

export interface WriteWellDatasetResult {
  root: string;
  files: Partial<Record<WellSplit, WriteWellResult>>;
  /** The statistics written to `<root>/stats.yaml` (from the train split). */
  stats: WellStats;
}

/** Deals trajectory `index` to a split, keeping every prefix close to the target fractions. */
export function splitFor(index: number, counts: Record<WellSplit, number>, fractions: Record<WellSplit, number>): WellSplit {
  let best: WellSplit = 'train';
  let bestDeficit = -Infinity;
  for (const s of WELL_SPLITS) {
    const deficit = fractions[s] * (index + 1) - counts[s];
    if (fractions[s] > 0 && deficit > bestDeficit + 1e-12) {
      best = s;
      bestDeficit = deficit;
    }
  }
  return best;
}

function isSplitRecord(x: unknown): x is Partial<Record<WellSplit, Source<WellTrajectory>>> {
  return (
    typeof x === 'object' &&
    x !== null &&
    !(Symbol.asyncIterator in x) &&
    !(Symbol.iterator in x) &&
    Object.keys(x).every((k) => (WELL_SPLITS as readonly string[]).includes(k))
  );
}

/**
 * Writes a dataset root in The Well's layout: `<root>/data/{train,valid,test}/<fileName>` and
 * `<root>/stats.yaml` (moments of the train split, accumulated while writing: no second pass). `source` is
 * either one stream of trajectories, dealt to splits by `fractions`, or one stream per split. All three files
 * are written through the same worker thread; each is renamed into place only when complete, and stats.yaml last.
 */
export async function writeWellDataset(
  source: Source<WellTrajectory> | Partial<Record<WellSplit, Source<WellTrajectory>>>,
  root: string,
  spec: WellFileSpec,
  options: WriteWellDatasetOptions,
): Promise<WriteWellDatasetResult> {
  const fileName = options.fileName.endsWith('.hdf5') ? options.fileName : `${options.fileName}.hdf5`;
  const worker = options.worker ?? wellWriterWorker();
  const writers: Partial<Record<WellSplit, WellFileWriter>> = {};
  try {
    for (const split of WELL_SPLITS) {
      writers[split] = await WellFileWriter.create(worker, join(root, 'data', split, fileName), spec, {
        ...options,
        computeStats: split === 'train',
      });
    }
    if (isSplitRecord(source)) {
      for (const split of WELL_SPLITS) {
        const s = source[split];
        if (!s) continue;
        for await (const trajectory of from(s)) {
          options.signal?.throwIfAborted();
          await writers[split]!.writeTrajectory(trajectory);
        }
      }
    } else {
      const fractions: Record<WellSplit, number> = { train: 0.8, valid: 0.1, test: 0.1, ...options.fractions };
      const counts: Record<WellSplit, number> = { train: 0, valid: 0, test: 0 };
      let index = 0;
      for await (const trajectory of from(source)) {
        options.signal?.throwIfAborted();
        const split = splitFor(index++, counts, fractions);
        counts[split]++;
        await writers[split]!.writeTrajectory(trajectory);
      }
    }
    const files: Partial<Record<WellSplit, WriteWellResult>> = {};
    for (const split of WELL_SPLITS) {
      files[split] = await writers[split]!.finish();
      delete writers[split];
    }
    const moments = mergeMomentSets({ fields: {}, deltas: {} }, files.train!.moments ?? { fields: {}, deltas: {} });
    const orders = Object.fromEntries(spec.fields.map((f) => [f.name, f.order]));
    const stats = statsFromMoments(moments, orders, spec.spatialDims.length);
    if (options.writeStats !== false) await writeFileAtomic(join(root, 'stats.yaml'), formatStatsYaml(stats));
    return { root, files, stats };
  } catch (err) {
    for (const w of Object.values(writers)) await w?.abort();
    throw err;
  }
}
