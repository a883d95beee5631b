/**
 * Samples of Well files, as The Well's reference loader gives them: windows of `nIn` input and `nOut` output
 * frames (stride `dt`) over one file, a list of files or a split directory, indexed trajectory-major through
 * cumulative counts, or one sample per trajectory in full-trajectory mode; and whole trajectories streamed
 * frame by frame. All reads are hyperslabs done in HDF5 worker threads; the main thread only computes indices.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { openWell, type ChannelLayout, type WellFieldInfo, type WellMeta } from './meta.js';
import { wellPool, type H5Pool } from './pool.js';
import type { FieldReadPlan, WindowReadPlan, WindowReadResult } from './raw.js';
import type { WellNormalizer } from './normalize.js';
import type { AppliedNormalization, WellArray, WellSample } from './sample.js';
import { epochSeed, Rng, seededPermutation, strideSeed } from '../../streams/random.js';

export type { WellArray, WellOrigin, AppliedNormalization, WellSample } from './sample.js';

export interface WellDatasetOptions {
  /** Input frames per window (default 1). */
  nIn?: number;
  /** Output frames per window (default 1; derived in full-trajectory mode). */
  nOut?: number;
  /** Time stride between frames (default 1); with `maxDt`, the smallest stride drawn. */
  dt?: number;
  /**
   * Largest time stride (default `dt`: a fixed stride). When larger than `dt`, each window sample draws its stride
   * as The Well's loader does with `min_dt_stride = dt`, `max_dt_stride = maxDt`: windows are indexed with the
   * stride `dt`, and the sample starting at frame t0 of a T-frame trajectory takes a stride uniform over the
   * integers dt..min(maxDt, floor((T - 1 - t0) / (nIn + nOut - 1))) (always `dt` when that bound is not above it).
   * The draw is seeded (`strideSeed(seed, epoch, index)`, the seed and epoch of `windows`), so a sample's stride
   * is reproducible. Not with `fullTrajectory`.
   */
  maxDt?: number;
  /** One sample per trajectory from frame 0, with nOut = floor((T - nIn*dt) / dt), capped by maxRolloutSteps. */
  fullTrajectory?: boolean;
  /** Cap on nOut in full-trajectory mode (default 100, as the reference loader). */
  maxRolloutSteps?: number;
  /**
   * Fields to read (core names like `momentum` or channel names like `momentum_x`; a channel name reads its
   * whole field and keeps that channel). Default: all. Unread fields cost no I/O.
   */
  fields?: string[];
  /** 'error' (default): NaN/Inf in a read fails naming file, dataset and frames; 'count': counted per sample. */
  nonFinite?: 'error' | 'count';
  /** Worker pool (default: the shared one). */
  pool?: H5Pool;
  /**
   * Normalise at read time, inside the workers (keeps the main thread free): the same arithmetic as the
   * `normalizeWindows` stage, and samples record it in `normalization` so `denormalizeWindows` inverts it.
   * Trajectory streams get the plain (non-delta) normalisation.
   */
  normalize?: WellNormalizer;
}

interface FileEntry {
  meta: WellMeta;
  /** Fields read, and their read plans into the channel-last output. */
  read: FieldReadPlan[];
  readChannels: number;
  /** Layout of the channels as read (before `keep`). */
  readLayout: ChannelLayout;
  /** Output channel indices kept from the read channels (null: all). */
  keep: number[] | null;
  layout: ChannelLayout;
  constRead: FieldReadPlan[];
  constChannels: number;
  windows: number;
  samples: number;
  spaceGrid: WellArray;
  boundaryConditions: WellArray;
}

/** Resolves a file, a directory of `.hdf5`/`.h5` files (sorted by name) or a list of them into file paths. */
export async function resolveWellFiles(source: string | string[]): Promise<string[]> {
  const items = Array.isArray(source) ? source : [source];
  const out: string[] = [];
  for (const item of items) {
    let st;
    try {
      st = await stat(item);
    } catch {
      throw new Error(`${item}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const names = (await readdir(item)).filter((n) => /\.(hdf5|h5)$/.test(n)).sort();
      if (names.length === 0) throw new Error(`${item}: directory has no .hdf5 files`);
      out.push(...names.map((n) => resolve(join(item, n))));
    } else out.push(resolve(item));
  }
  return out;
}

/** `<root>/data/<split>`: the directory of a split in The Well's layout. */
export function wellSplitDir(root: string, split: 'train' | 'valid' | 'test'): string {
  return join(root, 'data', split);
}

function spaceGridOf(meta: WellMeta): WellArray {
  const shape = meta.spatialShape;
  const D = meta.nSpatialDims;
  const S = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(S * D);
  const idx = new Array<number>(D).fill(0);
  for (let s = 0; s < S; s++) {
    for (let d = 0; d < D; d++) data[s * D + d] = meta.coords[d]![idx[d]!]!;
    for (let a = D - 1; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return { data, shape: [...shape, D] };
}

/** Read plans for `fields` laid out channel-last in order. */
function plansFor(fields: WellFieldInfo[]): { plans: FieldReadPlan[]; channels: number } {
  let offset = 0;
  const plans = fields.map((f) => {
    const p: FieldReadPlan = {
      dataset: f.dataset,
      sampleVarying: f.sampleVarying,
      timeVarying: f.timeVarying,
      storedAxes: f.storedAxes,
      components: f.components,
      channelOffset: offset,
    };
    offset += f.components;
    return p;
  });
  return { plans, channels: offset };
}

/**
 * An opened set of Well files with the window index computed. Create with `openWellDataset`. Methods read
 * through the worker pool; the object itself holds only metadata.
 */
export class WellDataset {
  readonly nIn: number;
  /** Output frames per sample (after the full-trajectory override). */
  readonly nOut: number;
  /** Time stride (the smallest one when `maxDt > dt`). */
  readonly dt: number;
  /** Largest time stride drawn (equal to `dt` for a fixed stride). */
  readonly maxDt: number;
  readonly fullTrajectory: boolean;
  /** Number of samples. */
  readonly length: number;
  private readonly cumulative: number[];

  private constructor(
    private readonly entries: FileEntry[],
    private readonly options: Required<Pick<WellDatasetOptions, 'nonFinite'>> & { pool: H5Pool; normalize?: WellNormalizer },
    config: { nIn: number; nOut: number; dt: number; maxDt: number; fullTrajectory: boolean },
  ) {
    this.nIn = config.nIn;
    this.nOut = config.nOut;
    this.dt = config.dt;
    this.maxDt = config.maxDt;
    this.fullTrajectory = config.fullTrajectory;
    this.cumulative = [];
    let total = 0;
    for (const e of entries) {
      total += e.samples;
      this.cumulative.push(total);
    }
    this.length = total;
  }

  static async open(source: string | string[], options: WellDatasetOptions = {}): Promise<WellDataset> {
    const pool = options.pool ?? wellPool();
    const files = await resolveWellFiles(source);
    const metas = await Promise.all(files.map((f) => openWell(f, pool)));
    const nIn = options.nIn ?? 1;
    const dt = options.dt ?? 1;
    const maxDt = options.maxDt ?? dt;
    const fullTrajectory = options.fullTrajectory ?? false;
    const maxRollout = options.maxRolloutSteps ?? 100;
    for (const [k, v] of [
      ['nIn', nIn],
      ['dt', dt],
      ['nOut', options.nOut ?? 1],
      ['maxDt', maxDt],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`openWellDataset: ${k} must be a positive integer, got ${v}`);
    }
    if (maxDt < dt) throw new Error(`openWellDataset: maxDt (${maxDt}) must be at least dt (${dt})`);
    if (maxDt > dt && fullTrajectory) throw new Error(`openWellDataset: a random time stride (dt ${dt} < maxDt ${maxDt}) is not available in full-trajectory mode`);
    let nOut = options.nOut ?? 1;
    if (fullTrajectory) {
      const T = Math.min(...metas.map((m) => m.nSteps));
      nOut = Math.min(Math.floor((T - nIn * dt) / dt), maxRollout);
      if (nOut < 1) throw new Error(`openWellDataset: trajectories of ${T} frames are too short for nIn=${nIn}, dt=${dt}`);
    }
    const first = metas[0]!;
    const entries = metas.map((meta): FileEntry => {
      if (meta.layout.names.join() !== first.layout.names.join()) {
        throw new Error(`${meta.path}: channels [${meta.layout.names}] differ from ${first.path}: [${first.layout.names}]`);
      }
      const selection = selectFields(meta, options.fields);
      const { plans, channels } = plansFor(selection.fields);
      const c = plansFor(meta.constantFields);
      const windows = fullTrajectory ? 1 : Math.max(0, meta.nSteps - dt * (nIn + nOut - 1));
      return {
        meta,
        read: plans,
        readChannels: channels,
        readLayout: {
          names: selection.fields.flatMap((f) => f.channelNames),
          fields: selection.fields.flatMap((f) => f.channelNames.map(() => f.name)),
          components: selection.fields.flatMap((f) => f.channelNames.map((_, c) => c)),
        },
        keep: selection.keep,
        layout: selection.layout,
        constRead: c.plans,
        constChannels: c.channels,
        windows,
        samples: windows * meta.nTrajectories,
        spaceGrid: spaceGridOf(meta),
        boundaryConditions: { data: meta.boundaryTable, shape: [meta.nSpatialDims, 2] },
      };
    });
    const settings = { nonFinite: options.nonFinite ?? 'error', pool, ...(options.normalize ? { normalize: options.normalize } : {}) } as const;
    return new WellDataset(entries, settings, { nIn, nOut, dt, maxDt, fullTrajectory });
  }

  /** Metadata of each file, in reader order. */
  get files(): WellMeta[] {
    return this.entries.map((e) => e.meta);
  }

  /** Windows per trajectory, per file. */
  get windowsPerTrajectory(): number[] {
    return this.entries.map((e) => e.windows);
  }

  /** Channel layout of `inputFields` / `outputFields`. */
  get layout(): ChannelLayout {
    return this.entries[0]!.layout;
  }

  /** Sample index -> file, trajectory, first frame (trajectory-major, as the reference loader). */
  locate(index: number): { fileIndex: number; trajectory: number; t0: number } {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new RangeError(`sample index ${index} out of range [0, ${this.length})`);
    }
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! > index) hi = mid;
      else lo = mid + 1;
    }
    const local = index - (lo === 0 ? 0 : this.cumulative[lo - 1]!);
    const w = this.entries[lo]!.windows;
    return { fileIndex: lo, trajectory: Math.floor(local / w), t0: local % w };
  }

  private async readFrames(
    e: FileEntry,
    trajectory: number,
    start: number,
    count: number,
    stride: number,
    label: string,
    firstOutput: number | null,
  ): Promise<WindowReadResult> {
    const norm = this.options.normalize;
    const plan: WindowReadPlan = {
      path: e.meta.path,
      trajectory,
      start,
      count,
      stride,
      spatial: e.meta.spatialShape,
      channels: e.readChannels,
      fields: e.read,
      nonFinite: this.options.nonFinite,
      ...(norm ? { normalize: norm.windowPlan(e.readLayout, firstOutput ?? count, firstOutput !== null && norm.delta) } : {}),
    };
    const r = await this.options.pool.call('readWindow', plan, label);
    if (e.keep) r.data = keepChannels(r.data, e.readChannels, e.keep);
    return r;
  }

  private async readConstants(e: FileEntry, trajectory: number): Promise<WindowReadResult | null> {
    if (e.constRead.length === 0) return null;
    const plan: WindowReadPlan = {
      path: e.meta.path,
      trajectory,
      start: 0,
      count: 1,
      stride: 1,
      spatial: e.meta.spatialShape,
      channels: e.constChannels,
      fields: e.constRead,
      nonFinite: this.options.nonFinite,
      ...(this.options.normalize ? { normalize: this.options.normalize.windowPlan(e.meta.constantLayout, 1, false) } : {}),
    };
    return this.options.pool.call('readWindow', plan, `reading constant fields of ${e.meta.path}`);
  }

  /**
   * The strides sample `index` may take: `dt`..`max` (equal bounds for a fixed stride, or when the window's start
   * leaves no room for a longer one; see `maxDt`).
   */
  strideRange(index: number): { min: number; max: number } {
    const { fileIndex, t0 } = this.locate(index);
    if (this.maxDt === this.dt) return { min: this.dt, max: this.dt };
    const T = this.entries[fileIndex]!.meta.nSteps;
    const room = Math.max(0, Math.floor((T - 1 - t0) / (this.nIn + this.nOut - 1)));
    return { min: this.dt, max: Math.max(this.dt, Math.min(this.maxDt, room)) };
  }

  /** The time stride of sample `index` in `epoch` under `seed` (see `maxDt`). */
  strideOf(index: number, draw: { seed?: number; epoch?: number } = {}): number {
    const { min, max } = this.strideRange(index);
    if (max === min) return min;
    return min + new Rng(strideSeed(draw.seed ?? 0, draw.epoch ?? 0, index)).int(max - min + 1);
  }

  /**
   * Reads sample `index`. With a random stride (`maxDt > dt`) its stride is `strideOf(index, draw)`, or
   * `draw.dt` when given (any stride in `strideRange(index)`).
   */
  async sample(index: number, draw: { seed?: number; epoch?: number; dt?: number } = {}): Promise<WellSample> {
    const { fileIndex, trajectory, t0 } = this.locate(index);
    const e = this.entries[fileIndex]!;
    const meta = e.meta;
    const { nIn, nOut } = this;
    let dt = this.dt;
    if (draw.dt !== undefined) {
      const { min, max } = this.strideRange(index);
      if (!Number.isInteger(draw.dt) || draw.dt < min || draw.dt > max) throw new RangeError(`sample ${index}: stride ${draw.dt} outside ${min}..${max}`);
      dt = draw.dt;
    } else if (this.maxDt > this.dt) dt = this.strideOf(index, draw);
    const n = nIn + nOut;
    const label = `reading trajectory ${trajectory}, frames ${t0}..${t0 + (n - 1) * dt} of ${meta.path}`;
    const [frames, constants] = await Promise.all([
      this.readFrames(e, trajectory, t0, n, dt, label, nIn),
      this.readConstants(e, trajectory),
    ]);
    const C = e.layout.names.length;
    const S = meta.spatialShape.reduce((a, b) => a * b, 1);
    const split = nIn * S * C;
    const sample: WellSample = {
      inputFields: { data: frames.data.subarray(0, split), shape: [nIn, ...meta.spatialShape, C] },
      outputFields: { data: frames.data.subarray(split), shape: [nOut, ...meta.spatialShape, C] },
      boundaryConditions: e.boundaryConditions,
      spaceGrid: e.spaceGrid,
      inputTimeGrid: { data: new Float32Array(0), shape: [nIn] },
      outputTimeGrid: { data: new Float32Array(0), shape: [nOut] },
      layout: e.layout,
      constantLayout: meta.constantLayout,
      origin: { file: meta.path, fileIndex, trajectory, t0, dt, index },
      nonFinite: frames.nonFinite + (constants?.nonFinite ?? 0),
    };
    if (this.options.normalize) sample.normalization = this.options.normalize.applied;
    if (constants) sample.constantFields = { data: constants.data, shape: [...meta.spatialShape, e.constChannels] };
    if (meta.scalars.length > 0) {
      const pick = (k0: number, k1: number) => {
        const out = new Float32Array((k1 - k0) * meta.scalars.length);
        for (let k = k0; k < k1; k++) {
          const t = t0 + k * dt;
          meta.scalars.forEach((s, j) => {
            out[(k - k0) * meta.scalars.length + j] = s.values[(s.sampleVarying ? trajectory * meta.nSteps : 0) + t]!;
          });
        }
        return out;
      };
      sample.inputScalars = { data: pick(0, nIn), shape: [nIn, meta.scalars.length] };
      sample.outputScalars = { data: pick(nIn, n), shape: [nOut, meta.scalars.length] };
    }
    if (meta.constantScalars.length > 0) {
      const f64 = meta.constantScalars.some((s) => s.dtype === 'float64');
      const values = meta.constantScalars.map((s) => s.values[s.sampleVarying ? trajectory : 0]!);
      sample.constantScalars = {
        data: f64 ? Float64Array.from(values) : Float32Array.from(values),
        shape: [values.length],
      };
    }
    // time grids: float32 times of the window minus the window's first (smallest) time
    const timeBase = meta.timeSampleVarying ? trajectory * meta.nSteps : 0;
    const times = Float32Array.from({ length: n }, (_, k) => meta.time[timeBase + t0 + k * dt]!);
    const tmin = times.reduce((a, b) => Math.min(a, b), Infinity);
    const grid = times.map((x) => Math.fround(x - tmin));
    sample.inputTimeGrid.data = grid.subarray(0, nIn);
    sample.outputTimeGrid.data = grid.subarray(nIn);
    return sample;
  }

  /**
   * Source of samples: all indices in order, a seeded shuffle of them, or the given `indices`; with a random
   * stride, each sample's stride is drawn from `seed` and `epoch` (see `maxDt`). Keeps up to
   * `prefetch` reads in flight (default 2 per pool worker) and yields in order; holds at most that many
   * samples plus, when shuffling, one index permutation (4 bytes per sample).
   */
  windows(options: { shuffle?: boolean; seed?: number; epoch?: number; indices?: Iterable<number>; prefetch?: number } = {}): AsyncIterable<WellSample> {
    const prefetch = Math.max(1, options.prefetch ?? 2 * this.options.pool.size);
    const order = (): Iterable<number> => {
      if (options.indices) return options.indices;
      if (options.shuffle) return seededPermutation(this.length, epochSeed(options.seed ?? 0, options.epoch ?? 0));
      return rangeIter(this.length);
    };
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const queue: Promise<WellSample>[] = [];
        const it = order()[Symbol.iterator]();
        const fill = () => {
          while (queue.length < prefetch) {
            const next = it.next();
            if (next.done) return;
            const p = self.sample(next.value, { seed: options.seed ?? 0, epoch: options.epoch ?? 0 });
            p.catch(() => undefined); // surfaced when awaited in order
            queue.push(p);
          }
        };
        fill();
        while (queue.length > 0) {
          const s = await queue.shift()!;
          fill();
          yield s;
        }
      },
    };
  }

  /**
   * Source of whole trajectories, each streamed frame by frame from frame `start` (default 0). A trajectory's
   * `frames` reads `framesPerRead` frames at a time (default 4), one read ahead; consume (or abandon) it
   * before pulling the next trajectory. `trajectories` picks (fileIndex, trajectory) pairs; default all.
   */
  trajectories(
    options: { start?: number; framesPerRead?: number; trajectories?: Iterable<{ fileIndex: number; trajectory: number }> } = {},
  ): AsyncIterable<WellTrajectoryStream> {
    const start = options.start ?? 0;
    const per = Math.max(1, options.framesPerRead ?? 4);
    const self = this;
    const all = function* () {
      for (let f = 0; f < self.entries.length; f++)
        for (let b = 0; b < self.entries[f]!.meta.nTrajectories; b++) yield { fileIndex: f, trajectory: b };
    };
    return {
      async *[Symbol.asyncIterator]() {
        for (const { fileIndex, trajectory } of options.trajectories ?? all()) {
          const e = self.entries[fileIndex];
          if (!e || trajectory < 0 || trajectory >= e.meta.nTrajectories) {
            throw new RangeError(`no trajectory ${trajectory} in file index ${fileIndex}`);
          }
          const T = e.meta.nSteps;
          if (start < 0 || start >= T) throw new RangeError(`start ${start} outside [0, ${T}) for ${e.meta.path}`);
          const constants = await self.readConstants(e, trajectory);
          const S = e.meta.spatialShape.reduce((a, b) => a * b, 1);
          const C = e.layout.names.length;
          const timeBase = e.meta.timeSampleVarying ? trajectory * T : 0;
          const times = e.meta.time.slice(timeBase + start, timeBase + T);
          const read = (t: number) =>
            self.readFrames(e, trajectory, t, Math.min(per, T - t), 1, `reading trajectory ${trajectory}, frames from ${t} of ${e.meta.path}`, null);
          const frames: AsyncIterable<WellTrajectoryFrame> = {
            async *[Symbol.asyncIterator]() {
              let pending: Promise<WindowReadResult> | null = read(start);
              for (let t = start; t < T; ) {
                const block: WindowReadResult = await pending!;
                const count: number = block.data.length / (S * C);
                const next: number = t + count;
                pending = next < T ? read(next) : null;
                pending?.catch(() => undefined);
                for (let k = 0; k < count; k++, t++) {
                  yield {
                    t,
                    time: e.meta.time[timeBase + t]!,
                    channels: block.data.subarray(k * S * C, (k + 1) * S * C),
                    shape: [...e.meta.spatialShape, C],
                  };
                }
              }
            },
          };
          const stream: WellTrajectoryStream = {
            origin: { file: e.meta.path, fileIndex, trajectory, start },
            meta: e.meta,
            layout: e.layout,
            nFrames: T - start,
            times,
            spaceGrid: e.spaceGrid,
            boundaryConditions: e.boundaryConditions,
            frames,
          };
          if (constants) stream.constantFields = { data: constants.data, shape: [...e.meta.spatialShape, e.constChannels] };
          if (self.options.normalize) stream.normalization = { ...self.options.normalize.applied, delta: false };
          yield stream;
        }
      },
    };
  }
}

/** One frame of a streamed trajectory: channel-last `(*spatial, C)`. */
export interface WellTrajectoryFrame {
  t: number;
  time: number;
  channels: Float32Array;
  shape: number[];
}

export interface WellTrajectoryStream {
  origin: { file: string; fileIndex: number; trajectory: number; start: number };
  meta: WellMeta;
  layout: ChannelLayout;
  nFrames: number;
  /** Times of the streamed frames (from `start`). */
  times: Float32Array;
  constantFields?: WellArray;
  spaceGrid: WellArray;
  boundaryConditions: WellArray;
  frames: AsyncIterable<WellTrajectoryFrame>;
  /** Set when the dataset normalises at read time (always the plain, non-delta variant for trajectories). */
  normalization?: AppliedNormalization;
}

/** Opens files and computes the sample index (see WellDataset). */
export function openWellDataset(source: string | string[], options: WellDatasetOptions = {}): Promise<WellDataset> {
  return WellDataset.open(source, options);
}

/**
 * Source of window samples over a file, files or split directory: `wellWindows(dir, { nIn: 4, nOut: 1 })`.
 * Opens lazily when first pulled. See WellDataset.windows for ordering and memory.
 */
export function wellWindows(
  source: string | string[],
  options: WellDatasetOptions & { shuffle?: boolean; seed?: number; epoch?: number; indices?: Iterable<number>; prefetch?: number } = {},
): AsyncIterable<WellSample> {
  return {
    async *[Symbol.asyncIterator]() {
      const ds = await WellDataset.open(source, options);
      yield* ds.windows(options);
    },
  };
}

/** Source of whole trajectories streamed frame by frame (see WellDataset.trajectories). */
export function wellTrajectories(
  source: string | string[],
  options: WellDatasetOptions & { start?: number; framesPerRead?: number; trajectories?: Iterable<{ fileIndex: number; trajectory: number }> } = {},
): AsyncIterable<WellTrajectoryStream> {
  return {
    async *[Symbol.asyncIterator]() {
      const ds = await WellDataset.open(source, options);
      yield* ds.trajectories(options);
    },
  };
}

function* rangeIter(n: number): Iterable<number> {
  for (let i = 0; i < n; i++) yield i;
}

/** Which fields to read and which channels to keep for a `fields` selection. */
function selectFields(
  meta: WellMeta,
  wanted: string[] | undefined,
): { fields: WellFieldInfo[]; keep: number[] | null; layout: ChannelLayout } {
  if (!wanted) return { fields: meta.fields, keep: null, layout: meta.layout };
  const keepChannels = new Set<string>();
  const fieldSet = new Set<string>();
  for (const w of wanted) {
    const byField = meta.fields.find((f) => f.name === w);
    const byChannel = meta.fields.find((f) => f.channelNames.includes(w));
    if (byField) {
      fieldSet.add(byField.name);
      byField.channelNames.forEach((c) => keepChannels.add(c));
    } else if (byChannel) {
      fieldSet.add(byChannel.name);
      keepChannels.add(w);
    } else {
      throw new Error(`${meta.path}: no time-varying field or channel "${w}" (have ${meta.layout.names.join(', ')})`);
    }
  }
  const fields = meta.fields.filter((f) => fieldSet.has(f.name));
  const readNames = fields.flatMap((f) => f.channelNames);
  const keep = readNames.flatMap((c, i) => (keepChannels.has(c) ? [i] : []));
  const layout: ChannelLayout = {
    names: keep.map((i) => readNames[i]!),
    fields: fields.flatMap((f) => f.channelNames.map(() => f.name)).filter((_, i) => keep.includes(i)),
    components: fields.flatMap((f) => f.channelNames.map((_, c) => c)).filter((_, i) => keep.includes(i)),
  };
  return { fields, keep: keep.length === readNames.length ? null : keep, layout };
}

/** Keeps channels `keep` of a channel-last array with `C` channels. */
export function keepChannels(data: Float32Array, C: number, keep: number[]): Float32Array {
  const n = data.length / C;
  const K = keep.length;
  const out = new Float32Array(n * K);
  for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) out[i * K + k] = data[i * C + keep[k]!]!;
  return out;
}
