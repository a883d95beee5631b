/**
 * What the project's Arrow IPC formats (the latent cache, distillation pairs) share: tensor columns as
 * FixedSizeList<Float32>, opening a file for footer-indexed reads with errors that name it, and writing a stream
 * of record batches atomically with real backpressure.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { Field, FixedSizeList, Float32, RecordBatchFileWriter, RecordBatchReader, makeData, type RecordBatch } from 'apache-arrow';
import { atomicTarget, fileError } from '../streams/atomic.js';

/** A FixedSizeList<Float32> field of `size` values per row, with field metadata (e.g. its `shape`). */
export function floatListField(name: string, size: number, metadata: Map<string, string> = new Map()): Field {
  return new Field(name, new FixedSizeList(size, new Field('item', new Float32(), false)), false, metadata);
}

/** The column data of `rows` lists of `listSize` float32 values each, stored back to back in `values`. */
export function floatListData(values: Float32Array, listSize: number, rows: number) {
  const child = makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values });
  return makeData({ type: new FixedSizeList(listSize, new Field('item', new Float32(), false)), length: rows, nullCount: 0, child });
}

/**
 * Opens an Arrow IPC file (with footer) for reading record batches by index. Errors are made by `fail` and name
 * the file and what is wrong (`what` names the format, e.g. "latent cache"). Close `handle` when done.
 */
export async function openArrowFile(
  path: string,
  what: string,
  fail: (message: string) => Error,
): Promise<{ reader: RecordBatchReader; handle: FileHandle }> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw fail(`${path}: cannot open ${what} (${(err as Error).message})`);
  }
  try {
    const reader = await RecordBatchReader.from(handle);
    await reader.open();
    if (!reader.isFile()) throw fail(`${path}: expected an Arrow IPC file (with footer), found a stream`);
    return { reader: reader as RecordBatchReader, handle };
  } catch (err) {
    await handle.close();
    if (err instanceof Error && err.message.startsWith(`${path}:`)) throw err;
    throw fail(`${path}: not a readable Arrow IPC file (${(err as Error).message})`);
  }
}

/** Rows in an open Arrow file, summed over its record batches (reads each batch's header and body). */
export async function countRows(reader: RecordBatchReader): Promise<number> {
  let rows = 0;
  for (let i = 0; i < reader.numRecordBatches; i++) rows += (await reader.readRecordBatch(i))?.numRows ?? 0;
  return rows;
}

/**
 * Sink: writes the record batches of `batches` to an Arrow IPC file at `path`, atomically (temporary file,
 * fsync, rename, fsync of the folder): nothing appears under `path` unless every batch was written. Pulls the
 * next batch only once the file stream has taken every byte of the previous one (arrow's writer queues without
 * limit, and its Node duplex acknowledges at once, so the hand-over waits for 'drain' here). Holds one batch.
 */
export async function writeArrowFile(path: string, batches: AsyncIterable<RecordBatch>): Promise<void> {
  const target = atomicTarget(path);
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(target.tmp);
  const outClosed = finished(out);
  outClosed.catch(() => undefined);
  const writer = new RecordBatchFileWriter();
  const bytes = writer[Symbol.asyncIterator]();
  // `_position` (declared in arrow's typings) counts the bytes the writer has produced.
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
    for await (const recordBatch of batches) {
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
}
