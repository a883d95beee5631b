/**
 * Reading the latent cache (format in schema.ts): `openLatentCache` reads a file's footer and schema, and
 * `readLatentCache` is the source that streams its rows record batch by record batch.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RecordBatch, Schema, Vector, FixedSizeList, Float32 } from 'apache-arrow';
import { arrowBatches, readArrowInfo } from '../arrow.js';
import { checkFiniteRow, infoFromSchema, LatentCacheError, type CachedTrajectory, type LatentCacheInfo } from './schema.js';

export interface ReadLatentCacheOptions {
  /** Fail before reading any row unless the file was made by this autoencoder run. */
  autoencoder?: string;
  /**
   * Copy each row out of the record batch (default false: rows are views into the batch's memory, which stays
   * alive while any row of it is referenced).
   */
  copy?: boolean;
}

const fail = (message: string) => new LatentCacheError(message);

/** Reads a cache file's metadata (footer, schema and row count). */
export function openLatentCache(path: string): Promise<LatentCacheInfo> {
  return readArrowInfo(path, 'latent cache', fail, infoFromSchema);
}

function rowsOf(path: string, info: LatentCacheInfo, batch: RecordBatch, copy: boolean, rowBase: number): CachedTrajectory[] {
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
    const trajectory = Number(trajectories.get(r));
    checkFiniteRow(`${path}: row ${rowBase + r} (trajectory ${trajectory} of ${String(files.get(r))})`, { latents: lat, shape: [t, h, w, c], labels: lab, origin: { file: '', trajectory, augmentation: 0, transform: '' } });
    out.push({
      latents: copy ? lat.slice() : lat,
      shape: [t, h, w, c],
      labels: copy ? lab.slice() : lab,
      origin: {
        file: String(files.get(r)),
        trajectory,
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
  const infoOf = (path: string, schema: Schema): LatentCacheInfo => {
    const info = infoFromSchema(path, schema, 0);
    if (options.autoencoder !== undefined && info.autoencoder !== options.autoencoder) {
      throw new LatentCacheError(
        `${path}: made by autoencoder "${info.autoencoder}", expected "${options.autoencoder}" (re-run the cache step with this autoencoder)`,
      );
    }
    return info;
  };
  return {
    async *[Symbol.asyncIterator]() {
      let file = '';
      let rowBase = 0; // rows of the current file before this batch, for error messages
      for await (const { path, info, batch } of arrowBatches(list, 'latent cache', fail, infoOf)) {
        if (path !== file) [file, rowBase] = [path, 0];
        yield* rowsOf(path, info, batch, options.copy ?? false, rowBase);
        rowBase += batch.numRows;
      }
    },
  };
}

/**
 * The cache files of one split of a cache run directory (`<run>/cache/<split>/*.arrow`, shard files excluded),
 * sorted. Fails naming the directory when the split is missing or holds only shard files.
 */
export async function latentCacheFiles(cacheRun: string, split: string): Promise<string[]> {
  const dir = join(cacheRun, 'cache', split);
  if (!existsSync(dir)) throw new LatentCacheError(`latent cache ${cacheRun}: no ${split} split at ${dir} (run wellspring cache first)`);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.arrow') && !f.includes('.shard-')).sort();
  if (files.length === 0) throw new LatentCacheError(`latent cache ${dir}: no .arrow files (merge shards with wellspring cache --merge)`);
  return files.map((f) => join(dir, f));
}
