/**
 * Writes encoded trajectories to an Arrow IPC file (the latent cache format of schema.ts).
 */
import {
  Field,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  Utf8,
  makeData,
  vectorFromArray,
} from 'apache-arrow';
import {
  LATENT_DIM_NAMES,
  LatentCacheError,
  checkFiniteRow,
  metaToSchemaEntries,
  type LatentCacheMeta,
  type CachedTrajectory,
} from './schema.js';
import { floatListData, floatListField, tensorField, writeArrowFile } from '../arrow.js';

export interface WriteLatentCacheOptions {
  /** Final path of the `.arrow` file. It appears only when the whole stream is written (temp name, fsync, rename). */
  path: string;
  meta: LatentCacheMeta;
  /** Rows per record batch (default 1: a reader then holds one trajectory at a time). */
  rowsPerBatch?: number;
}

export interface WriteLatentCacheResult {
  path: string;
  trajectories: number;
  shape: [number, number, number, number];
}

/**
 * Sink: writes every trajectory of `source` into one Arrow IPC file, `rowsPerBatch` rows per record batch. The
 * source is pulled only as fast as the file stream accepts the bytes (backpressure through 'drain'). Every row must
 * have the shape and label count of the first; a mismatch or a non-finite latent stops the write with an error
 * naming the trajectory, and no file is left under the final name. Holds one record batch.
 */
export async function writeLatentCache(
  source: AsyncIterable<CachedTrajectory> | Iterable<CachedTrajectory>,
  options: WriteLatentCacheOptions,
): Promise<WriteLatentCacheResult> {
  const rowsPerBatch = options.rowsPerBatch ?? 1;
  const path = options.path;
  let shape: [number, number, number, number] | undefined;
  let labelCount = 0;
  let schema: Schema | undefined;
  let count = 0;

  const check = (row: CachedTrajectory): void => {
    const where = `${path}: trajectory ${row.origin.trajectory} of ${row.origin.file} (augmentation ${row.origin.augmentation})`;
    const [t, h, w, c] = row.shape;
    if (row.latents.length !== t * h * w * c) {
      throw new LatentCacheError(`${where}: latents has ${row.latents.length} values, shape ${JSON.stringify(row.shape)} needs ${t * h * w * c}`);
    }
    if (!shape) {
      shape = [...row.shape];
      labelCount = row.labels.length;
      const latentField = tensorField('latents', shape, { dimNames: LATENT_DIM_NAMES, metadata: new Map([['shape', JSON.stringify(shape)]]) });
      const labelField = floatListField('labels', labelCount, new Map([['names', JSON.stringify(options.meta.labelNames)]]));
      if (options.meta.labelNames.length !== labelCount) {
        throw new LatentCacheError(`${where}: ${labelCount} labels but meta.labelNames has ${options.meta.labelNames.length} names`);
      }
      schema = new Schema(
        [latentField, labelField, new Field('source_file', new Utf8(), false), new Field('trajectory', new Int32(), false), new Field('augmentation', new Int32(), false), new Field('transform', new Utf8(), false)],
        metaToSchemaEntries(options.meta),
      );
    } else if (row.shape.some((d, i) => d !== shape![i]) || row.labels.length !== labelCount) {
      throw new LatentCacheError(
        `${where}: shape ${JSON.stringify(row.shape)} with ${row.labels.length} labels differs from the file's ${JSON.stringify(shape)} with ${labelCount} labels`,
      );
    }
    checkFiniteRow(where, row);
  };

  const toBatch = (rows: CachedTrajectory[]): RecordBatch => {
    const [t, h, w, c] = shape!;
    const size = t * h * w * c;
    const latents = new Float32Array(rows.length * size);
    const labels = new Float32Array(rows.length * labelCount);
    rows.forEach((r, i) => {
      latents.set(r.latents, i * size);
      labels.set(r.labels, i * labelCount);
    });
    const columns = [
      floatListData(latents, size, rows.length),
      floatListData(labels, labelCount, rows.length),
      vectorFromArray(rows.map((r) => r.origin.file), new Utf8()).data[0]!,
      vectorFromArray(rows.map((r) => r.origin.trajectory), new Int32()).data[0]!,
      vectorFromArray(rows.map((r) => r.origin.augmentation), new Int32()).data[0]!,
      vectorFromArray(rows.map((r) => r.origin.transform), new Utf8()).data[0]!,
    ];
    const struct = makeData({ type: new Struct(schema!.fields), length: rows.length, nullCount: 0, children: columns });
    return new RecordBatch(schema!, struct);
  };

  async function* batches(): AsyncGenerator<RecordBatch> {
    let pending: CachedTrajectory[] = [];
    for await (const row of source) {
      check(row);
      pending.push(row);
      count++;
      if (pending.length === rowsPerBatch) {
        yield toBatch(pending);
        pending = [];
      }
    }
    if (pending.length > 0) yield toBatch(pending);
    if (count === 0) throw new LatentCacheError(`${path}: no trajectories to write`);
  }

  await writeArrowFile(path, batches());
  return { path, trajectories: count, shape: shape! };
}
