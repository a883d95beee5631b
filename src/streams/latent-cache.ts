/**
 * The latent cache: Arrow IPC files of encoded trajectories, one file per source file and split, one row per
 * (trajectory, augmentation). This module defines the format and reads it back as a stream; the writer is
 * `writeLatentCache` in src/sinks.
 *
 * Schema (documented in README.md, "Latent cache format"):
 * - `latents`: FixedSizeList<Float32> of T*H*W*C values, row-major (T, H, W, C); field metadata `shape` = JSON [T,H,W,C]
 * - `labels`: FixedSizeList<Float32> of L values (simulation parameters, transformed); metadata `names` = JSON [..]
 * - `source_file`: Utf8, `trajectory`: Int32, `augmentation`: Int32 (repeat index), `transform`: Utf8 (e.g. "flip:y;roll:x=3")
 * - schema metadata: `wellspring.format` = "latent-cache/1", `wellspring.autoencoder` (run id), `wellspring.normalisation`
 *   (JSON), `wellspring.split`, `wellspring.source`, `wellspring.created`, plus any user entries under `user.`.
 */
import { open } from 'node:fs/promises';
import {
  RecordBatchReader,
  type RecordBatch,
  type Schema,
  type Vector,
  type FixedSizeList,
  type Float32,
} from 'apache-arrow';

export const LATENT_CACHE_FORMAT = 'latent-cache/1';

/** One encoded trajectory (or one augmented copy of it). */
export interface CachedTrajectory {
  /** Latent states, row-major (T, H, W, C). */
  latents: Float32Array;
  /** [T, H, W, C]. */
  shape: [number, number, number, number];
  /** Conditioning labels (simulation parameters and flags). */
  labels: Float32Array;
  /** Where it came from. */
  origin: CacheOrigin;
}

export interface CacheOrigin {
  /** The Well file the trajectory was read from (base name). */
  file: string;
  /** Trajectory index in that file. */
  trajectory: number;
  /** Repeat index (0 for the plain encoding). */
  augmentation: number;
  /** The augmentation applied, e.g. `flip:y;roll:x=3` ('' for none). */
  transform: string;
}

/** What a cache file says about itself. */
export interface LatentCacheMeta {
  /** Identifies the autoencoder that produced the latents (run id or checkpoint hash). */
  autoencoder: string;
  /** The normalisation applied before encoding (statistics, transforms), as JSON-compatible data. */
  normalisation: unknown;
  /** Names of the label entries. */
  labelNames: string[];
  /** Split name (train/valid/test). */
  split: string;
  /** The source Well file this cache file was made from. */
  source: string;
  /** Free-form extra entries, stored under `user.<key>`. */
  extra?: Record<string, string>;
}

export interface LatentCacheInfo extends LatentCacheMeta {
  path: string;
  /** Rows (trajectory copies) in the file. */
  trajectories: number;
  /** [T, H, W, C] of every row. */
  shape: [number, number, number, number];
  created: string;
}

/** Error for a cache file that is not what the caller expects (names the file and what was expected). */
export class LatentCacheError extends Error {
  override readonly name = 'LatentCacheError';
}

export function metaToSchemaEntries(meta: LatentCacheMeta): Map<string, string> {
  const entries = new Map<string, string>([
    ['wellspring.format', LATENT_CACHE_FORMAT],
    ['wellspring.autoencoder', meta.autoencoder],
    ['wellspring.normalisation', JSON.stringify(meta.normalisation ?? null)],
    ['wellspring.split', meta.split],
    ['wellspring.source', meta.source],
    ['wellspring.created', new Date().toISOString()],
  ]);
  for (const [k, v] of Object.entries(meta.extra ?? {})) entries.set(`user.${k}`, v);
  return entries;
}

function parseJson(path: string, what: string, text: string | undefined): unknown {
  if (text === undefined) throw new LatentCacheError(`${path}: missing ${what} in the Arrow schema metadata`);
  try {
    return JSON.parse(text);
  } catch {
    throw new LatentCacheError(`${path}: ${what} is not valid JSON: ${text.slice(0, 80)}`);
  }
}

function infoFromSchema(path: string, schema: Schema, rows: number): LatentCacheInfo {
  const md = schema.metadata;
  const format = md.get('wellspring.format');
  if (format !== LATENT_CACHE_FORMAT) {
    throw new LatentCacheError(
      `${path}: not a wellspring latent cache (schema metadata wellspring.format is ${JSON.stringify(format)}, expected "${LATENT_CACHE_FORMAT}")`,
    );
  }
  const latents = schema.fields.find((f) => f.name === 'latents');
  const labels = schema.fields.find((f) => f.name === 'labels');
  if (!latents || !labels) throw new LatentCacheError(`${path}: expected columns latents and labels`);
  const shape = parseJson(path, 'latents field metadata "shape"', latents.metadata.get('shape')) as number[];
  if (!Array.isArray(shape) || shape.length !== 4) {
    throw new LatentCacheError(`${path}: latents shape metadata must be [T, H, W, C], got ${JSON.stringify(shape)}`);
  }
  const extra: Record<string, string> = {};
  for (const [k, v] of md) if (k.startsWith('user.')) extra[k.slice(5)] = v;
  return {
    path,
    trajectories: rows,
    shape: shape as [number, number, number, number],
    autoencoder: md.get('wellspring.autoencoder') ?? '',
    normalisation: parseJson(path, 'wellspring.normalisation', md.get('wellspring.normalisation')),
    labelNames: parseJson(path, 'labels field metadata "names"', labels.metadata.get('names')) as string[],
    split: md.get('wellspring.split') ?? '',
    source: md.get('wellspring.source') ?? '',
    created: md.get('wellspring.created') ?? '',
    extra,
  };
}

export interface ReadLatentCacheOptions {
  /** Fail before reading any row unless the file was made by this autoencoder run. */
  autoencoder?: string;
  /**
   * Copy each row out of the record batch (default false: rows are views into the batch's memory, which stays
   * alive while any row of it is referenced).
   */
  copy?: boolean;
}

async function openReader(path: string) {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new LatentCacheError(`${path}: cannot open latent cache (${(err as Error).message})`);
  }
  try {
    const reader = await RecordBatchReader.from(handle);
    await reader.open();
    if (!reader.isFile()) throw new LatentCacheError(`${path}: expected an Arrow IPC file (with footer), found a stream`);
    return { reader, handle };
  } catch (err) {
    await handle.close();
    if (err instanceof LatentCacheError) throw err;
    throw new LatentCacheError(`${path}: not a readable Arrow IPC file (${(err as Error).message})`);
  }
}

/** Reads a cache file's metadata (footer and schema only). */
export async function openLatentCache(path: string): Promise<LatentCacheInfo> {
  const { reader, handle } = await openReader(path);
  try {
    let rows = 0;
    for (let i = 0; i < reader.numRecordBatches; i++) {
      const batch = await reader.readRecordBatch(i);
      rows += batch?.numRows ?? 0;
    }
    return infoFromSchema(path, reader.schema, rows);
  } finally {
    await handle.close();
  }
}

function rowsOf(path: string, info: LatentCacheInfo, batch: RecordBatch, copy: boolean): CachedTrajectory[] {
  const latents = batch.getChild('latents') as Vector<FixedSizeList<Float32>> | null;
  const labels = batch.getChild('labels') as Vector<FixedSizeList<Float32>> | null;
  const files = batch.getChild('source_file');
  const trajectories = batch.getChild('trajectory');
  const augmentations = batch.getChild('augmentation');
  const transforms = batch.getChild('transform');
  if (!latents || !labels || !files || !trajectories || !augmentations || !transforms) {
    throw new LatentCacheError(`${path}: a record batch lacks one of the columns latents, labels, source_file, trajectory, augmentation, transform`);
  }
  const [t, h, w, c] = info.shape;
  const rowSize = t * h * w * c;
  const latentValues = latents.data[0]!.children[0]!.values as Float32Array;
  const labelData = labels.data[0]!;
  const labelSize = (labelData.type as FixedSizeList).listSize;
  const labelValues = labelData.children[0]!.values as Float32Array;
  const latentOffset = latents.data[0]!.offset;
  const labelOffset = labelData.offset;
  const out: CachedTrajectory[] = [];
  for (let r = 0; r < batch.numRows; r++) {
    const lat = latentValues.subarray((latentOffset + r) * rowSize, (latentOffset + r + 1) * rowSize);
    const lab = labelValues.subarray((labelOffset + r) * labelSize, (labelOffset + r + 1) * labelSize);
    out.push({
      latents: copy ? lat.slice() : lat,
      shape: [t, h, w, c],
      labels: copy ? lab.slice() : lab,
      origin: {
        file: String(files.get(r)),
        trajectory: Number(trajectories.get(r)),
        augmentation: Number(augmentations.get(r)),
        transform: String(transforms.get(r) ?? ''),
      },
    });
  }
  return out;
}

/**
 * Source: streams the trajectories of one or more cache files, record batch by record batch. Reads only the
 * footer and the batch being served, so it holds one record batch at a time (rows are views into it unless
 * `copy` is set). Checks before reading any row that every file is a latent cache of the expected autoencoder.
 */
export function readLatentCache(paths: string | string[], options: ReadLatentCacheOptions = {}): AsyncIterable<CachedTrajectory> {
  const list = Array.isArray(paths) ? paths : [paths];
  return {
    async *[Symbol.asyncIterator]() {
      for (const path of list) {
        const { reader, handle } = await openReader(path);
        try {
          const info = infoFromSchema(path, reader.schema, 0);
          if (options.autoencoder !== undefined && info.autoencoder !== options.autoencoder) {
            throw new LatentCacheError(
              `${path}: made by autoencoder "${info.autoencoder}", expected "${options.autoencoder}" (re-run the cache step with this autoencoder)`,
            );
          }
          for (let i = 0; i < reader.numRecordBatches; i++) {
            const batch = await reader.readRecordBatch(i);
            if (batch) yield* rowsOf(path, info, batch, options.copy ?? false);
          }
        } finally {
          await handle.close();
        }
      }
    },
  };
}
