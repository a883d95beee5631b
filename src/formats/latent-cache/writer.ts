/**
 * Writes encoded trajectories to an Arrow IPC file (the latent cache format of schema.ts).
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import {
  Field,
  FixedSizeList,
  Float32,
  Int32,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  Utf8,
  makeData,
  vectorFromArray,
} from 'apache-arrow';
import {
  LatentCacheError,
  checkFiniteRow,
  metaToSchemaEntries,
  type LatentCacheMeta,
  type CachedTrajectory,
} from './schema.js';
import { atomicTarget, fileError } from '../../streams/atomic.js';

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

function floatList(values: Float32Array, listSize: number, rows: number) {
  const child = makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values });
  return makeData({ type: new FixedSizeList(listSize, new Field('item', new Float32(), false)), length: rows, nullCount: 0, child });
}

/**
 * Sink: writes every trajectory of `source` into one Arrow IPC file, `rowsPerBatch` rows per record batch. The
 * source is pulled only as fast as the file stream accepts the bytes (backpressure through 'drain'). Every row must
 * have the shape and label count of the first; a mismatch or a non-finite latent stops the write with an error
 * naming the trajectory, and no file is left under the final name. Holds one record batch.
 */
export async function writeLatentCache(
  source: AsyncIterable<CachedTrajectory>,
  options: WriteLatentCacheOptions,
): Promise<WriteLatentCacheResult> {
  const rowsPerBatch = options.rowsPerBatch ?? 1;
  const path = options.path;
  const target = atomicTarget(path);
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
      const latentField = new Field('latents', new FixedSizeList(t * h * w * c, new Field('item', new Float32(), false)), false, new Map([['shape', JSON.stringify(shape)]]));
      const labelField = new Field('labels', new FixedSizeList(labelCount, new Field('item', new Float32(), false)), false, new Map([['names', JSON.stringify(options.meta.labelNames)]]));
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
      floatList(latents, size, rows.length),
      floatList(labels, labelCount, rows.length),
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

  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(target.tmp);
  const outClosed = finished(out);
  outClosed.catch(() => undefined);
  const writer = new RecordBatchFileWriter();
  const bytes = writer[Symbol.asyncIterator]();
  // RecordBatchWriter.write() queues its bytes without limit (and its throughNode() duplex acknowledges writes at
  // once), so backpressure is done here: after each record batch, hand every byte produced so far to the file
  // stream, waiting for 'drain', before pulling the next rows. `_position` (declared in arrow's typings) counts
  // the bytes the writer has produced.
  const produced = (): number => (writer as unknown as { _position: number })._position;
  let handed = 0;
  const handOver = async (untilDone: boolean): Promise<void> => {
    while (untilDone || handed < produced()) {
      const chunk = await bytes.next();
      if (chunk.done) return;
      handed += chunk.value.byteLength;
      if (!out.write(chunk.value)) await Promise.race([once(out, 'drain'), outClosed]);
    }
  };
  try {
    for await (const recordBatch of batches()) {
      writer.write(recordBatch);
      await handOver(false);
    }
    writer.close();
    await handOver(true);
    out.end();
    await outClosed;
    await target.commit();
  } catch (err) {
    writer.abort();
    out.destroy();
    await outClosed.catch(() => undefined);
    await target.abort();
    throw fileError(path, 'writing', err);
  }
  return { path, trajectories: count, shape: shape! };
}
