/**
 * What the project's Arrow IPC formats (the latent cache, distillation pairs) share: tensor columns as
 * FixedSizeList<Float32>, the schema metadata every file carries (`wellspring.format`, `wellspring.created`,
 * `user.*`), opening a file for footer-indexed reads with errors that name it, streaming its record batches, and
 * writing a stream of record batches atomically with real backpressure.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { Field, FixedSizeList, Float32, RecordBatchFileWriter, RecordBatchReader, makeData, type RecordBatch, type Schema } from 'apache-arrow';
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

/** Makes the error of a format (LatentCacheError, PairsError) from a message naming the file. */
export type FormatError = (message: string) => Error;

/**
 * Schema metadata of a wellspring Arrow file: `wellspring.format`, the format's own `wellspring.*` entries,
 * `wellspring.created` (now) and the free-form `extra` entries under `user.<key>`.
 */
export function wellspringMetadata(format: string, entries: readonly [string, string][], extra: Record<string, string> = {}): Map<string, string> {
  const md = new Map<string, string>([['wellspring.format', format], ...entries, ['wellspring.created', new Date().toISOString()]]);
  for (const [k, v] of Object.entries(extra)) md.set(`user.${k}`, v);
  return md;
}

/**
 * Checks a file's `wellspring.format` against `format` (failing with `fail`, naming the file and `what` it should
 * be) and returns the entries every format reads the same way: `created` and the `user.*` extras.
 */
export function checkWellspringMetadata(path: string, schema: Schema, format: string, what: string, fail: FormatError): { created: string; extra: Record<string, string> } {
  const md = schema.metadata;
  const found = md.get('wellspring.format');
  if (found !== format) {
    throw fail(`${path}: not a wellspring ${what} (schema metadata wellspring.format is ${JSON.stringify(found)}, expected "${format}")`);
  }
  const extra: Record<string, string> = {};
  for (const [k, v] of md) if (k.startsWith('user.')) extra[k.slice(5)] = v;
  return { created: md.get('wellspring.created') ?? '', extra };
}

/** Parses a JSON metadata entry, failing with `fail` naming the file and `what` the entry is when it is absent or not JSON. */
export function parseJsonEntry(path: string, what: string, text: string | undefined, fail: FormatError): unknown {
  if (text === undefined) throw fail(`${path}: missing ${what}`);
  try {
    return JSON.parse(text);
  } catch {
    throw fail(`${path}: ${what} is not valid JSON: ${text.slice(0, 80)}`);
  }
}

/**
 * Opens an Arrow IPC file (with footer) for reading record batches by index. Errors are made by `fail` and name
 * the file and what is wrong (`what` names the format, e.g. "latent cache"). Close `handle` when done.
 */
export async function openArrowFile(
  path: string,
  what: string,
  fail: FormatError,
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
async function countRows(reader: RecordBatchReader): Promise<number> {
  let rows = 0;
  for (let i = 0; i < reader.numRecordBatches; i++) rows += (await reader.readRecordBatch(i))?.numRows ?? 0;
  return rows;
}

/**
 * What an Arrow file says about itself: `infoOf(path, schema, rows)` on its schema and row count (reads the
 * footer and each batch's header; the file is closed again).
 */
export async function readArrowInfo<I>(path: string, what: string, fail: FormatError, infoOf: (path: string, schema: Schema, rows: number) => I): Promise<I> {
  const { reader, handle } = await openArrowFile(path, what, fail);
  try {
    return infoOf(path, reader.schema, await countRows(reader));
  } finally {
    await handle.close();
  }
}

/**
 * Source: the record batches of one or more Arrow files, in order, each with its file's info from `infoOf`,
 * which runs (and may refuse the file) before any batch of that file is read. Holds one record batch; each file
 * is closed when its batches are done or the consumer stops.
 */
export async function* arrowBatches<I>(
  paths: readonly string[],
  what: string,
  fail: FormatError,
  infoOf: (path: string, schema: Schema) => I,
): AsyncGenerator<{ path: string; info: I; batch: RecordBatch; index: number }> {
  for (const path of paths) {
    const { reader, handle } = await openArrowFile(path, what, fail);
    try {
      const info = infoOf(path, reader.schema);
      for (let index = 0; index < reader.numRecordBatches; index++) {
        const batch = await reader.readRecordBatch(index);
        if (batch) yield { path, info, batch, index };
      }
    } finally {
      await handle.close();
    }
  }
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
