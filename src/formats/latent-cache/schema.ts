/**
 * The latent cache: Arrow IPC files of encoded trajectories, one file per source file and split, one row per
 * (trajectory, augmentation). This module is the format: its row and metadata types, the schema entries
 * written, and the checks applied when a file is opened. `reader.ts` streams rows out, `writer.ts` writes them.
 *
 * Schema (documented in README.md, "Latent cache format"):
 * - `latents`: Arrow's canonical `arrow.fixed_shape_tensor` (shape [T, H, W, C], dim_names time, h, w, channel) over
 *   FixedSizeList<Float32> of T*H*W*C values, row-major; field metadata also `shape` = JSON [T,H,W,C], as in files
 *   written before the extension type (which have only `shape`: both read, and a file with both must agree)
 * - `labels`: FixedSizeList<Float32> of L values (simulation parameters, transformed); metadata `names` = JSON [..]
 * - `source_file`: Utf8, `trajectory`: Int32, `augmentation`: Int32 (repeat index), `transform`: Utf8 (e.g. "flip:y;roll:x=3")
 * - schema metadata: `wellspring.format` = "latent-cache/1", `wellspring.autoencoder` (run id), `wellspring.normalisation`
 *   (JSON), `wellspring.split`, `wellspring.source`, `wellspring.created`, plus any user entries under `user.`.
 */
import type { Schema } from 'apache-arrow';
import { checkWellspringMetadata, parseJsonEntry, tensorColumn, wellspringMetadata, type FormatError } from '../arrow.js';

export const LATENT_CACHE_FORMAT = 'latent-cache/1';

/** The `dim_names` of the latents tensor column. */
export const LATENT_DIM_NAMES = ['time', 'h', 'w', 'channel'] as const;

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

/** The schema metadata of a cache file (see the header). */
export function metaToSchemaEntries(meta: LatentCacheMeta): Map<string, string> {
  return wellspringMetadata(
    LATENT_CACHE_FORMAT,
    [
      ['wellspring.autoencoder', meta.autoencoder],
      ['wellspring.normalisation', JSON.stringify(meta.normalisation ?? null)],
      ['wellspring.split', meta.split],
      ['wellspring.source', meta.source],
    ],
    meta.extra,
  );
}

const fail: FormatError = (message) => new LatentCacheError(message);
const parseJson = (path: string, what: string, text: string | undefined): unknown => parseJsonEntry(path, what, text, fail);

/** Validates a cache file's schema (named by `path` in errors) and returns what it says about itself. */
export function infoFromSchema(path: string, schema: Schema, rows: number): LatentCacheInfo {
  const md = schema.metadata;
  const { created, extra } = checkWellspringMetadata(path, schema, LATENT_CACHE_FORMAT, 'latent cache', fail);
  const latents = schema.fields.find((f) => f.name === 'latents');
  const labels = schema.fields.find((f) => f.name === 'labels');
  if (!latents || !labels) throw new LatentCacheError(`${path}: expected columns latents and labels`);
  // The tensor extension's shape when present (files since the extension type), else the `shape` entry (older
  // files, and readers' copies that dropped the extension keys); a file with both must say the same.
  const tensor = tensorColumn(path, latents, fail);
  const legacy = latents.metadata.get('shape');
  const shape = tensor?.shape ?? (parseJson(path, 'latents field metadata "shape"', legacy) as number[]);
  if (!Array.isArray(shape) || shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new LatentCacheError(`${path}: latents shape metadata must be [T, H, W, C], got ${JSON.stringify(shape)}`);
  }
  if (tensor && legacy !== undefined && JSON.stringify(parseJson(path, 'latents field metadata "shape"', legacy)) !== JSON.stringify(shape)) {
    throw new LatentCacheError(`${path}: latents field metadata "shape" ${legacy} differs from its arrow.fixed_shape_tensor shape ${JSON.stringify(shape)}`);
  }
  const listSize = (latents.type as { listSize?: number }).listSize;
  if (listSize !== shape.reduce((a, b) => a * b, 1)) {
    throw new LatentCacheError(`${path}: latents lists ${String(listSize)} values per row, shape ${JSON.stringify(shape)} needs ${shape.reduce((a, b) => a * b, 1)}`);
  }
  return {
    path,
    trajectories: rows,
    shape: shape as [number, number, number, number],
    autoencoder: md.get('wellspring.autoencoder') ?? '',
    normalisation: parseJson(path, 'wellspring.normalisation', md.get('wellspring.normalisation')),
    labelNames: parseJson(path, 'labels field metadata "names"', labels.metadata.get('names')) as string[],
    split: md.get('wellspring.split') ?? '',
    source: md.get('wellspring.source') ?? '',
    created,
    extra,
  };
}


/**
 * Fails (naming `where`, the row and the column) when a row holds a non-finite latent or label: NaN or infinity
 * in a cache would train an emulator on garbage without a word, so it is refused at write and at read.
 */
export function checkFiniteRow(where: string, row: CachedTrajectory): void {
  const [, h, w, c] = row.shape;
  for (let i = 0; i < row.latents.length; i++) {
    const v = row.latents[i]!;
    if (!Number.isFinite(v)) {
      const state = Math.floor(i / (h * w * c));
      const rest = i % (h * w * c);
      const at = `state ${state}, latent pixel (${Math.floor(rest / (w * c))}, ${Math.floor(rest / c) % w}), channel ${rest % c}`;
      throw new LatentCacheError(`${where}: column latents holds ${v} at ${at} (flat index ${i})`);
    }
  }
  for (let i = 0; i < row.labels.length; i++) {
    if (!Number.isFinite(row.labels[i]!)) throw new LatentCacheError(`${where}: column labels holds ${row.labels[i]} at entry ${i}`);
  }
}
