/**
 * The read side of the HDF5 worker (runs inside a worker thread, never on the main thread): opens files
 * (keeping a few handles open), describes a file's structure, reads window slabs by hyperslab and assembles
 * them channel-last, and accumulates moments for statistics. Every h5wasm call here is synchronous; that is
 * why it lives in a worker.
 */
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import type { Dataset, File as H5File, Group } from 'h5wasm';
import type h5wasmDefault from 'h5wasm';
import type {
  FieldReadPlan,
  MomentsPlan,
  MomentsResult,
  RawDataset,
  RawGroup,
  RawNode,
  RawValue,
  WindowReadPlan,
  WindowReadResult,
} from './raw.js';
import { addBlock, emptyMoments, type MomentSet } from './moments.js';
import { normalizeWindowInPlace, type ChannelCoefficients } from './normalize-core.js';
import type { H5Handlers, H5ReadOpName } from './protocol.js';

type H5 = typeof h5wasmDefault;
const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX_OPEN_FILES = 16;
/** Metadata datasets are read whole; refuse absurd ones rather than fill the wasm heap. */
const MAX_METADATA_VALUES = 1 << 24;

/**
 * Copies `points` points of `comps` interleaved components from `src` (at `srcBase`) into channel-last `out`
 * (at `outBase`, `C` channels per point), one component at a time; returns the number of non-finite values.
 */
function copyStrided(
  src: Float32Array,
  srcBase: number,
  comps: number,
  out: Float32Array,
  outBase: number,
  C: number,
  points: number,
  scaling?: { shift: ArrayLike<number>; scale: ArrayLike<number>; channel: number },
): number {
  let bad = 0;
  for (let c = 0; c < comps; c++) {
    let i = srcBase + c;
    let o = outBase + c;
    if (scaling) {
      // the same float32 arithmetic as scaleChannels (normalize-core.ts), fused into the copy
      const shift = Math.fround(scaling.shift[scaling.channel + c]!);
      const scale = Math.fround(scaling.scale[scaling.channel + c]!);
      for (let p = 0; p < points; p++, i += comps, o += C) {
        const v = src[i]!;
        out[o] = Math.fround(Math.fround(v - shift) / scale);
        if (v - v !== 0) bad++; // NaN or +-Infinity
      }
    } else {
      for (let p = 0; p < points; p++, i += comps, o += C) {
        const v = src[i]!;
        out[o] = v;
        if (v - v !== 0) bad++;
      }
    }
  }
  return bad;
}

/** Summarises the HDF5 library's error stack (printed through console.error) into one line. */
export function diagSummary(lines: string[]): string {
  const details = lines
    .map((l) => /\(\):\s*(.*)$/.exec(l)?.[1])
    .filter((m): m is string => !!m && !/^unable to (synchronously )?open/.test(m));
  const last = details.at(-1);
  return last ? ` (HDF5: ${last})` : '';
}

/** Checks the HDF5 signature at the offsets where a superblock may sit (0, 512, 1024, ...). */
function looksLikeHdf5(path: string): boolean {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(8);
    for (let off = 0; off + 8 <= size; off = off === 0 ? 512 : off * 2) {
      readSync(fd, buf, 0, 8, off);
      if (buf.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

function toRawValue(read: () => unknown): RawValue {
  try {
    const v = read();
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'string' || typeof v === 'number') return v;
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => Number(x));
    if (Array.isArray(v)) return v.map((x) => (typeof x === 'bigint' ? Number(x) : (x as string | number)));
    return { unreadable: `unsupported value ${String(v)}` };
  } catch (err) {
    return { unreadable: err instanceof Error ? err.message : String(err) };
  }
}

/** The emscripten module behind h5wasm: only the calls used for direct reads and their status checks. */
export interface H5Module {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  get_dataset_data(
    fileId: bigint,
    path: string,
    count: bigint[] | null,
    offset: bigint[] | null,
    strides: bigint[] | null,
    ptr: bigint,
  ): number;
  get_attribute_data(fileId: bigint, objectName: string, attributeName: string, ptr: bigint): number;
}

/** The message of the error a failed low-level read throws once `checkReads` has wrapped the module. */
export const READ_FAILED = 'the HDF5 read returned an error status';
const checkedModules = new WeakSet<H5Module>();

/**
 * h5wasm's own reads (`Dataset.slice`, `Dataset.value`, attribute values) ignore the status that H5Dread and
 * H5Aread return: a chunk whose gzip data is damaged then "reads" as whatever its buffer held before. This
 * wraps the module's two low-level reads so that a failed read throws instead (h5wasm frees its buffer in a
 * `finally`); the callers below add the file, the dataset and the hyperslab to the message.
 */
export function checkReads(module: H5Module): void {
  if (checkedModules.has(module)) return;
  checkedModules.add(module);
  const getData = module.get_dataset_data;
  const getAttr = module.get_attribute_data;
  module.get_dataset_data = (...args) => {
    const status = getData.apply(module, args);
    if (status < 0) throw new Error(READ_FAILED);
    return status;
  };
  module.get_attribute_data = (...args) => {
    const status = getAttr.apply(module, args);
    if (status < 0) throw new Error(READ_FAILED);
    return status;
  };
}

/** Which part of a dataset a read covers, for error messages. */
interface SlabPlace {
  /** Trajectory index (the first axis of a sample-varying field); absent for fields shared by trajectories. */
  trajectory?: number;
  /** Position of the time axis in the ranges; absent for fields constant in time. */
  timeAxis?: number;
}

function describePlace(place: SlabPlace, ranges: [number, number, number?][]): string {
  const parts: string[] = [];
  parts.push(place.trajectory === undefined ? 'the data shared by all trajectories' : `trajectory ${place.trajectory}`);
  const time = place.timeAxis === undefined ? undefined : ranges[place.timeAxis];
  if (time) {
    const [start, stop, step = 1] = time;
    const last = start + Math.max(0, Math.ceil((stop - start) / step) - 1) * step;
    parts.push(start === last ? `frame ${start}` : `frames ${start}..${last}${step === 1 ? '' : ` (every ${step})`}`);
  } else parts.push('constant in time');
  return parts.join(', ');
}

export function createReadOps(h5: H5, diag: string[], module: H5Module): H5Handlers<H5ReadOpName> {
  checkReads(module);
  const open = new Map<string, H5File>();
  /** Dataset handles per file (h5wasm caches a dataset's metadata on its object). */
  const datasets = new Map<string, Map<string, Dataset>>();
  /** A reusable wasm buffer for direct float32 hyperslab reads (grown on demand, never shrunk). */
  let buffer = { ptr: 0, bytes: 0 };

  function file(path: string): H5File {
    const cached = open.get(path);
    if (cached) {
      open.delete(path);
      open.set(path, cached); // most recently used last
      return cached;
    }
    if (!existsSync(path)) throw new Error(`${path}: no such file`);
    if (!statSync(path).isFile()) throw new Error(`${path}: not a regular file`);
    if (!looksLikeHdf5(path)) throw new Error(`${path}: not an HDF5 file (no HDF5 signature)`);
    let f: H5File;
    try {
      f = new h5.File(path, 'r');
      if (!f.file_id || f.file_id < 0n) throw new Error('open failed');
    } catch {
      throw new Error(`${path}: the HDF5 library could not open it${diagSummary(diag)}`);
    }
    if (open.size >= MAX_OPEN_FILES) {
      const [oldest, handle] = open.entries().next().value as [string, H5File];
      handle.close();
      open.delete(oldest);
      datasets.delete(oldest);
    }
    open.set(path, f);
    return f;
  }

  function dataset(path: string, name: string): Dataset {
    const f = file(path);
    let byName = datasets.get(path);
    if (!byName) datasets.set(path, (byName = new Map()));
    const cached = byName.get(name);
    if (cached) return cached;
    let node: ReturnType<H5File['get']>;
    try {
      node = f.get(name);
      if (node instanceof h5.Dataset) void node.metadata; // h5wasm reads (and caches) the dataset's header here
    } catch (err) {
      throw new Error(`${path}: /${name}: cannot open the dataset: ${why(err)}`);
    }
    if (!node || !(node instanceof h5.Dataset)) throw new Error(`${path}: missing dataset /${name}`);
    byName.set(name, node);
    return node;
  }

  /**
   * What went wrong in an h5wasm call, in words, with the HDF5 library's own last message: h5wasm's errors
   * ("error - name not defined!") name neither the file nor the cause.
   */
  function why(err: unknown, filters: string[] = []): string {
    const message = err instanceof Error ? err.message : String(err);
    const hdf = diagSummary(diag);
    if (diag.some((l) => /filter returned failure|Filter operation failed|inflate\(\) failed/.test(l))) {
      const by = filters.length > 0 ? ` by its filters (${filters.join(', ')})` : '';
      return `a compressed chunk could not be decoded${by}, the stored data is damaged${hdf}`;
    }
    if (message === READ_FAILED) return `HDF5 could not read the data, the file may be damaged${hdf}`;
    if (/name not defined/.test(message)) return `HDF5 could not open the object, the file may be damaged${hdf}`;
    return `${message}${hdf}`;
  }

  /** An error that already names the file passes through; anything else gets the file, dataset and place. */
  function readError(err: unknown, path: string, name: string, where: string, detail = ''): Error {
    if (err instanceof Error && err.message.startsWith(`${path}:`)) return err;
    let filters: string[] = [];
    try {
      filters = datasets.get(path)?.get(name)?.filters.map((x) => x.name) ?? [];
    } catch {
      // the names only decorate the message
    }
    return new Error(`${path}: /${name}: reading ${where} failed${detail}: ${why(err, filters)}`);
  }

  /**
   * Reads a hyperslab, checking the read's status: a read that fails (a damaged chunk whose gzip data does not
   * decode, an unreadable dataset header) throws an error naming the file, the dataset, the trajectory and
   * frames (`place`) and the cause; when it spanned several frames, the frames that fail alone are named too.
   * Nothing of a failed read is ever returned.
   */
  function readSlab(path: string, name: string, ranges: [number, number, number?][], place: SlabPlace): ArrayLike<number> {
    diag.length = 0; // only this read's HDF5 messages explain its failure
    try {
      return readSlabUnchecked(path, name, ranges);
    } catch (err) {
      const first = diag.slice(); // the probes below add their own messages
      let detail = '';
      const time = place.timeAxis === undefined ? undefined : ranges[place.timeAxis];
      if (err instanceof Error && err.message === READ_FAILED && time) {
        const [start, stop, step = 1] = time;
        const bad: number[] = [];
        for (let t = start; t < stop; t += step) {
          const one = ranges.slice();
          one[place.timeAxis!] = [t, t + 1];
          try {
            readSlabUnchecked(path, name, one);
          } catch {
            bad.push(t);
          }
        }
        if (bad.length > 0 && bad.length < Math.ceil((stop - start) / step)) {
          detail = ` (${bad.length === 1 ? `frame ${bad[0]}` : `frames ${bad.join(', ')}`} cannot be read)`;
        }
      }
      diag.splice(0, diag.length, ...first);
      throw readError(err, path, name, describePlace(place, ranges), detail);
    }
  }

  /**
   * Reads a hyperslab. Little-endian float32 datasets are read straight into a reusable wasm buffer and
   * returned as a view on the wasm heap (valid until the next read); anything else goes through h5wasm's
   * `slice` (a fresh array). Either way a failed read throws (see `checkReads`).
   */
  function readSlabUnchecked(path: string, name: string, ranges: [number, number, number?][]): ArrayLike<number> {
    const ds = dataset(path, name);
    const meta = ds.metadata;
    const shape = meta.shape ?? [];
    const direct = meta.type === 1 && meta.size === 4 && meta.littleEndian && !meta.vlen;
    if (!direct) {
      const raw = ds.slice(ranges as [number, number][]);
      if (!raw || !ArrayBuffer.isView(raw)) throw new Error(`${path}: /${name} did not read as numbers`);
      return raw as unknown as ArrayLike<number>;
    }
    const count: bigint[] = [];
    const offset: bigint[] = [];
    const strides: bigint[] = [];
    let total = 1;
    shape.forEach((n, i) => {
      const [start, stop, step] = ranges[i] ?? [0, n];
      const st = step ?? 1;
      const c = Math.max(0, Math.ceil((Math.min(stop, n) - start) / st));
      if (start < 0 || start > n) throw new Error(`${path}: /${name} axis ${i}: start ${start} outside [0, ${n}]`);
      count.push(BigInt(c));
      offset.push(BigInt(start));
      strides.push(BigInt(st));
      total *= c;
    });
    const bytes = total * 4;
    if (bytes > buffer.bytes) {
      releaseBuffer();
      const size = Math.max(bytes, 1 << 20);
      const ptr = module._malloc(size);
      if (!ptr) throw new Error(`${path}: /${name}: cannot allocate ${size} bytes in the wasm heap`);
      buffer = { ptr, bytes: size };
    }
    if (total > 0) {
      try {
        module.get_dataset_data(f(path), '/' + name, count, offset, strides, BigInt(buffer.ptr));
      } catch (err) {
        // whatever the failed read left in the buffer (parts of this read, the previous frame) must never be
        // seen: drop the buffer, the next read allocates a fresh one
        releaseBuffer();
        throw err;
      }
    }
    return new Float32Array(module.HEAPU8.buffer, buffer.ptr, total);
  }

  function releaseBuffer(): void {
    if (buffer.ptr) {
      module.HEAPU8.fill(0, buffer.ptr, buffer.ptr + buffer.bytes);
      module._free(buffer.ptr);
    }
    buffer = { ptr: 0, bytes: 0 };
  }

  function f(path: string): bigint {
    return file(path).file_id;
  }

  function attrsOf(node: Dataset | Group): Record<string, RawValue> {
    const out: Record<string, RawValue> = {};
    let names: string[];
    try {
      names = Object.keys(node.attrs);
    } catch (err) {
      return { __error__: { unreadable: err instanceof Error ? err.message : String(err) } };
    }
    for (const name of names) {
      out[name] = toRawValue(() => {
        try {
          return node.get_attribute(name, false);
        } catch (err) {
          throw new Error(why(err));
        }
      });
    }
    return out;
  }

  function wantsValue(path: string): boolean {
    return /^\/?(dimensions\/[^/]+|boundary_conditions\/[^/]+\/mask|scalars\/[^/]+)$/.test(path);
  }

  /** Describes the node at `path`; a failure names the file and the node (and never leaves h5wasm's words alone). */
  function describeNode(f: H5File, path: string, filePath: string): RawNode {
    try {
      return describeNodeUnchecked(f, path, filePath);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(`${filePath}:`)) throw err;
      throw new Error(`${filePath}: /${path}: cannot read the file's structure here: ${why(err)}`);
    }
  }

  function describeNodeUnchecked(f: H5File, path: string, filePath: string): RawNode {
    const node = path === '' ? f : f.get(path);
    if (node instanceof h5.Group) {
      const children: Record<string, RawNode> = {};
      for (const key of node.keys()) children[key] = describeNode(f, path ? `${path}/${key}` : key, filePath);
      return { kind: 'group', attrs: attrsOf(node), children } satisfies RawGroup;
    }
    if (node instanceof h5.Dataset) {
      const meta = node.metadata;
      const out: RawDataset = {
        kind: 'dataset',
        shape: node.shape ?? [],
        maxshape: (meta.maxshape as (number | null)[] | undefined) ?? null,
        chunks: meta.chunks ?? null,
        dtype: typeof node.dtype === 'string' ? node.dtype : 'compound',
        filters: node.filters.map((x) => x.name),
        attrs: attrsOf(node),
      };
      if (wantsValue(path)) {
        const n = out.shape.reduce((a, b) => a * b, 1);
        if (n > MAX_METADATA_VALUES) throw new Error(`${filePath}: /${path} has ${n} values, too many for metadata`);
        const v = toRawValue(() => {
          try {
            return node.value;
          } catch (err) {
            throw new Error(why(err));
          }
        });
        if (Array.isArray(v)) out.value = v.map(Number);
        else if (typeof v === 'number') out.value = [v];
      }
      return out;
    }
    return { kind: 'other' };
  }

  /** Reads one field's frames into the channel-last output; `fused` scales while copying (plain normalisation). */
  function readField(plan: WindowReadPlan, fp: FieldReadPlan, out: Float32Array, fused?: ChannelCoefficients): number {
    const ranges: [number, number, number?][] = [];
    const place: SlabPlace = {};
    if (fp.sampleVarying) {
      ranges.push([plan.trajectory, plan.trajectory + 1]);
      place.trajectory = plan.trajectory;
    }
    if (fp.timeVarying) {
      const last = plan.start + (plan.count - 1) * plan.stride;
      place.timeAxis = ranges.length;
      ranges.push(plan.stride === 1 ? [plan.start, last + 1] : [plan.start, last + 1, plan.stride]);
    }
    const src = readSlab(plan.path, fp.dataset, ranges, place);
    const frames = fp.timeVarying ? plan.count : 1;
    const spatial = plan.spatial;
    const S = spatial.reduce((a, b) => a * b, 1);
    // strides of the stored array for each output spatial axis (0 where broadcast)
    const storedStride = new Array<number>(spatial.length).fill(0);
    let acc = fp.components;
    for (let i = spatial.length - 1; i >= 0; i--) {
      if (fp.storedAxes[i]) {
        storedStride[i] = acc;
        acc *= spatial[i]!;
      }
    }
    const storedFrame = acc;
    if (src.length !== storedFrame * frames) {
      throw new Error(
        `${plan.path}: /${fp.dataset} slice has ${src.length} values, expected ${storedFrame * frames} ` +
          `(${frames} frame(s) of ${storedFrame})`,
      );
    }
    const C = plan.channels;
    const comps = fp.components;
    // one concrete array type keeps the copy loops monomorphic (fast)
    const src32 = src instanceof Float32Array ? src : Float32Array.from(src);
    const allStored = fp.storedAxes.every(Boolean);
    let bad = 0;
    const outFrames = plan.count;
    const idx = new Array<number>(spatial.length).fill(0);
    for (let k = 0; k < outFrames; k++) {
      const srcBase = fp.timeVarying ? k * storedFrame : 0;
      const outBase = k * S * C + fp.channelOffset;
      if (allStored) {
        bad += copyStrided(src32, srcBase, comps, out, outBase, C, S, fused && { ...fused, channel: fp.channelOffset });
      } else {
        idx.fill(0);
        let off = 0;
        for (let s = 0; s < S; s++) {
          const o = outBase + s * C;
          for (let c = 0; c < comps; c++) {
            const v = src32[srcBase + off + c]!;
            if (!Number.isFinite(v)) bad++;
            out[o + c] = v;
          }
          // advance the multi-index (last axis fastest) and the stored offset with it
          for (let a = spatial.length - 1; a >= 0; a--) {
            idx[a]!++;
            off += storedStride[a]!;
            if (idx[a]! < spatial[a]!) break;
            off -= storedStride[a]! * spatial[a]!;
            idx[a] = 0;
          }
        }
      }
    }
    if (bad > 0 && plan.nonFinite === 'error') {
      throw new Error(
        `${plan.path}: /${fp.dataset} has ${bad} non-finite value(s) in trajectory ${plan.trajectory}, ` +
          `frames ${plan.start}..${plan.start + (plan.count - 1) * plan.stride} (expected finite numbers)`,
      );
    }
    return bad;
  }

  return {
    describe(args: { path: string }): RawGroup {
      diag.length = 0;
      const f = file(args.path);
      return describeNode(f, '', args.path) as RawGroup;
    },

    readWindow(plan: WindowReadPlan): WindowReadResult {
      const S = plan.spatial.reduce((a, b) => a * b, 1);
      const data = new Float32Array(plan.count * S * plan.channels);
      let nonFinite = 0;
      const n = plan.normalize;
      // plain normalisation without transforms is fused into the copy; anything else is a pass afterwards
      const fusable = n && !n.delta && !Array.from(n.plain.log1p).some(Boolean) && plan.fields.every((f) => f.storedAxes.every(Boolean));
      for (const fp of plan.fields) nonFinite += readField(plan, fp, data, fusable ? n.plain : undefined);
      if (n && !fusable) normalizeWindowInPlace(data, S * plan.channels, n);
      return { data, nonFinite };
    },

    /** Moments of the listed fields over a whole file, in bounded blocks of frames. */
    moments(plan: MomentsPlan): MomentsResult {
      const result: MomentSet = { fields: {}, deltas: {} };
      let nonFinite = 0;
      for (const fp of plan.fields) {
        const acc = emptyMoments(fp.components);
        const dAcc = emptyMoments(fp.components);
        dataset(plan.path, fp.dataset); // a missing or unreadable dataset fails here, before any read
        const [from, to] = fp.sampleVarying ? plan.trajectories : plan.trajectories[0] === 0 ? [0, 1] : [0, 0];
        const steps = fp.timeVarying ? plan.nSteps : 1;
        const block = Math.max(2, Math.floor(plan.maxValuesPerRead / fp.frameSize));
        const check = (values: Float32Array | Float64Array, b: number, t0: number) => {
          let bad = 0;
          let first = -1;
          for (let i = 0; i < values.length; i++) {
            if (!Number.isFinite(values[i]!)) {
              if (first < 0) first = i;
              bad++;
            }
          }
          if (bad > 0 && plan.nonFinite === 'error') {
            // The block holds whole frames of `frameSize` values, from frame t0 on.
            const frame = fp.timeVarying ? t0 + Math.floor(first / fp.frameSize) : 0;
            throw new Error(
              `${plan.path}: /${fp.dataset} has ${bad} non-finite value(s) in trajectory ${b}, the first (${values[first]}) ` +
                `in frame ${frame}${fp.timeVarying ? '' : ' (the field does not vary in time)'} (expected finite numbers)`,
            );
          }
          nonFinite += bad;
        };
        for (let b = from; b < to; b++) {
          // blocks overlap by one frame so that every one-step difference is seen exactly once
          for (let t0 = 0; t0 < steps; t0 += block - 1) {
            const t1 = Math.min(steps, t0 + block);
            const ranges: [number, number][] = [];
            const place: SlabPlace = {};
            if (fp.sampleVarying) {
              ranges.push([b, b + 1]);
              place.trajectory = b;
            }
            if (fp.timeVarying) {
              place.timeAxis = ranges.length;
              ranges.push([t0, t1]);
            }
            const raw = readSlab(plan.path, fp.dataset, ranges, place);
            let values = raw instanceof Float64Array ? raw : raw instanceof Float32Array ? raw : Float32Array.from(raw);
            check(values, b, t0);
            if (fp.transform === 'log1p') values = values.map(Math.log1p);
            const firstNew = t0 === 0 ? 0 : 1; // the overlapping frame was counted by the previous block
            addBlock(acc, values.subarray(firstNew * fp.frameSize), fp.components);
            if (fp.timeVarying && t1 - t0 > 1) {
              addBlock(dAcc, values.subarray(fp.frameSize), fp.components, values.subarray(0, values.length - fp.frameSize));
            }
            if (t1 === steps) break;
          }
        }
        result.fields[fp.name] = acc;
        if (fp.timeVarying) result.deltas[fp.name] = dAcc;
      }
      return { moments: result, nonFinite };
    },

    close(args: { path: string }): boolean {
      const handle = open.get(args.path);
      if (handle) {
        handle.close();
        open.delete(args.path);
        datasets.delete(args.path);
      }
      return true;
    },
  };
}
