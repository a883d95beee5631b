/**
 * What the project's Arrow IPC formats (the latent cache, distillation pairs, saved rollouts) share: tensor columns
 * as FixedSizeList<Float32> (optionally tagged with Arrow's canonical `arrow.fixed_shape_tensor` extension type),
 * the schema metadata every file carries (`wellspring.format`, `wellspring.created`,
 * `user.*`), opening a file for footer-indexed reads with errors that name it, streaming its record batches, and
 * writing a stream of record batches atomically with real backpressure.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { DataType, Field, FixedSizeList, Float32, RecordBatchFileWriter, RecordBatchReader, makeData, type RecordBatch, type Schema } from 'apache-arrow';
import { atomicTarget, fileError } from '../streams/atomic.js';

/** A FixedSizeList<Float32> field of `size` values per row, with field metadata (e.g. its `shape`). */
export function floatListField(name: string, size: number, metadata: Map<string, string> = new Map()): Field {
  return new Field(name, new FixedSizeList(size, new Field('item', new Float32(), false)), false, metadata);
}

/** Field metadata key naming an extension type, and the key of its parameters (Arrow columnar format, "Extension Types"). */
export const EXTENSION_NAME_KEY = 'ARROW:extension:name';
export const EXTENSION_METADATA_KEY = 'ARROW:extension:metadata';
/** The name of Arrow's canonical fixed-shape tensor extension type. */
export const FIXED_SHAPE_TENSOR = 'arrow.fixed_shape_tensor';

/**
 * A column of float32 tensors of one `shape` as Arrow's canonical extension type `arrow.fixed_shape_tensor`:
 * storage FixedSizeList<Float32>[product of shape], each row one tensor in row-major order, and the field metadata
 * `ARROW:extension:name` = "arrow.fixed_shape_tensor", `ARROW:extension:metadata` = JSON
 * `{"shape": [...], "dim_names": [...]}` (no `permutation`: the logical layout is the physical one). Readers that
 * know the type (pyarrow >= 12) see tensors; readers that ignore extensions see the plain FixedSizeList, with the
 * other `metadata` entries kept.
 */
export function tensorField(name: string, shape: readonly number[], options: { dimNames?: readonly string[]; metadata?: Map<string, string> } = {}): Field {
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`tensor column ${name}: shape must be positive integers, got ${JSON.stringify(shape)}`);
  if (options.dimNames && options.dimNames.length !== shape.length) {
    throw new Error(`tensor column ${name}: ${options.dimNames.length} dim_names for a shape of ${shape.length} dimensions`);
  }
  const parameters = { shape: [...shape], ...(options.dimNames ? { dim_names: [...options.dimNames] } : {}) };
  const metadata = new Map(options.metadata ?? []);
  metadata.set(EXTENSION_NAME_KEY, FIXED_SHAPE_TENSOR);
  metadata.set(EXTENSION_METADATA_KEY, JSON.stringify(parameters));
  return floatListField(name, shape.reduce((a, b) => a * b, 1), metadata);
}

/** What a field tagged `arrow.fixed_shape_tensor` declares: the tensor shape and, when given, its dimension names. */
export interface TensorColumn {
  shape: number[];
  dimNames?: string[];
}

/**
 * The tensor shape a field declares as an `arrow.fixed_shape_tensor` column, checked against the canonical
 * specification (storage a FixedSizeList whose size is the product of `shape`; `dim_names`, when present, one name
 * per dimension; `permutation`, when present, a permutation of 0..N-1, refused unless it is the identity, since
 * every reader here assumes row-major tensors). Returns null for a field without the extension; fails with `fail`
 * naming the file (`path`) and the column otherwise.
 */
export function tensorColumn(path: string, field: Field, fail: FormatError): TensorColumn | null {
  const name = field.metadata.get(EXTENSION_NAME_KEY);
  if (name === undefined) return null;
  const where = `${path}: column ${field.name}`;
  if (name !== FIXED_SHAPE_TENSOR) throw fail(`${where} has extension type "${name}", expected "${FIXED_SHAPE_TENSOR}"`);
  if (!DataType.isFixedSizeList(field.type)) throw fail(`${where}: ${FIXED_SHAPE_TENSOR} needs FixedSizeList storage, found ${String(field.type)}`);
  const parameters = parseJsonEntry(path, `column ${field.name} metadata ${EXTENSION_METADATA_KEY}`, field.metadata.get(EXTENSION_METADATA_KEY), fail);
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) throw fail(`${where}: ${EXTENSION_METADATA_KEY} must be a JSON object, got ${JSON.stringify(parameters)}`);
  const { shape, dim_names: dimNames, permutation } = parameters as Record<string, unknown>;
  if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => !Number.isInteger(d) || (d as number) < 0)) {
    throw fail(`${where}: ${FIXED_SHAPE_TENSOR} "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const size = (shape as number[]).reduce((a, b) => a * b, 1);
  const listSize = (field.type as FixedSizeList).listSize;
  if (size !== listSize) throw fail(`${where}: ${FIXED_SHAPE_TENSOR} shape ${JSON.stringify(shape)} holds ${size} values, the storage lists ${listSize}`);
  if (dimNames !== undefined && (!Array.isArray(dimNames) || dimNames.length !== shape.length || dimNames.some((d) => typeof d !== 'string'))) {
    throw fail(`${where}: ${FIXED_SHAPE_TENSOR} "dim_names" must be ${shape.length} strings, got ${JSON.stringify(dimNames)}`);
  }
  if (permutation !== undefined) {
    const valid = Array.isArray(permutation) && permutation.length === shape.length && [...permutation].sort((a, b) => a - b).every((p, i) => p === i);
    if (!valid) throw fail(`${where}: ${FIXED_SHAPE_TENSOR} "permutation" must be a permutation of 0..${shape.length - 1}, got ${JSON.stringify(permutation)}`);
    if ((permutation as number[]).some((p, i) => p !== i)) throw fail(`${where}: ${FIXED_SHAPE_TENSOR} with permutation ${JSON.stringify(permutation)} is not supported (row-major tensors only)`);
  }
  return { shape: [...(shape as number[])], ...(dimNames ? { dimNames: [...(dimNames as string[])] } : {}) };
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
 * An Arrow IPC file being written batch by batch (see `openArrowWriter`): `write` resolves once the file stream has
 * taken every byte of the batch, `close` finishes the file and puts it under its final name, `abort` removes it.
 */
export interface ArrowFileWriter {
  write(batch: RecordBatch): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Opens an Arrow IPC file at `path` for writing record batches one at a time, atomically (temporary file, fsync,
 * rename, fsync of the folder): nothing appears under `path` unless `close` succeeds, and `abort` (or a failed
 * `write` / `close`, which abort by themselves) leaves no temporary file. Each `write` waits until the file stream
 * has taken every byte of its batch (arrow's writer queues without limit, and its Node duplex acknowledges at once,
 * so the hand-over waits for 'drain' here): a caller holds one batch.
 */
export async function openArrowWriter(path: string): Promise<ArrowFileWriter> {
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
  let state: 'open' | 'closed' | 'aborted' = 'open';
  const handOver = async (untilDone: boolean): Promise<void> => {
    while (untilDone || handed < produced()) {
      const chunk = await bytes.next();
      if (chunk.done) return;
      handed += chunk.value.byteLength;
      if (!out.write(chunk.value)) await Promise.race([once(out, 'drain'), outClosed]);
    }
  };
  const abort = async (): Promise<void> => {
    if (state !== 'open') return;
    state = 'aborted';
    writer.abort();
    out.destroy();
    await outClosed.catch(() => undefined);
    await target.abort();
  };
  const guarded = async (step: () => Promise<void>): Promise<void> => {
    if (state !== 'open') throw new Error(`${path}: the Arrow writer is already ${state}`);
    try {
      await step();
    } catch (err) {
      await abort();
      throw fileError(path, 'writing', err);
    }
  };
  return {
    write: (batch) =>
      guarded(async () => {
        writer.write(batch);
        await handOver(false);
      }),
    close: () =>
      guarded(async () => {
        writer.close();
        await handOver(true);
        out.end();
        await outClosed;
        await target.commit();
        state = 'closed';
      }),
    abort,
  };
}

/**
 * Sink: writes the record batches of `batches` to an Arrow IPC file at `path`, atomically, pulling the next batch
 * only once the file stream has taken the previous one (see `openArrowWriter`). Holds one batch; a failing source
 * leaves nothing under `path`.
 */
export async function writeArrowFile(path: string, batches: AsyncIterable<RecordBatch>): Promise<void> {
  const file = await openArrowWriter(path);
  try {
    for await (const recordBatch of batches) await file.write(recordBatch);
  } catch (err) {
    await file.abort();
    throw fileError(path, 'writing', err);
  }
  await file.close();
}
