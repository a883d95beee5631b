/**
 * Writes distillation pair batches to an Arrow IPC file (the pairs format of schema.ts), atomically.
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { Field, FixedSizeList, Float32, Int32, RecordBatch, RecordBatchFileWriter, Schema, Struct, makeData, vectorFromArray } from 'apache-arrow';
import { PairsError, PAIR_WINDOW_COLUMNS, checkFinitePairs, pairsMetaEntries, type PairBatch, type PairsMeta } from './schema.js';
import { atomicTarget, fileError } from '../../streams/atomic.js';

export interface WritePairsOptions {
  /** Final path of the `.arrow` file. It appears only when the whole stream is written (temp name, fsync, rename). */
  path: string;
  meta: PairsMeta;
}

export interface WritePairsResult {
  path: string;
  /** Rows (windows) written. */
  windows: number;
  /** Pair batches (record batches) written. */
  batches: number;
  shape: [number, number, number, number];
}

const floatField = (name: string, size: number, metadata: Map<string, string>) =>
  new Field(name, new FixedSizeList(size, new Field('item', new Float32(), false)), false, metadata);

function floatList(values: Float32Array, listSize: number, rows: number) {
  const child = makeData({ type: new Float32(), length: values.length, nullCount: 0, data: values });
  return makeData({ type: new FixedSizeList(listSize, new Field('item', new Float32(), false)), length: rows, nullCount: 0, child });
}

/**
 * Sink: writes every pair batch of `source` as one record batch. Every batch must have the window shape and
 * label count of the first; a mismatch or a non-finite value stops the write with an error naming the batch,
 * and no file is left under the final name. Pulls the source only as fast as the file accepts the bytes.
 * Holds one record batch.
 */
export async function writePairs(source: AsyncIterable<PairBatch> | Iterable<PairBatch>, options: WritePairsOptions): Promise<WritePairsResult> {
  const { path, meta } = options;
  const target = atomicTarget(path);
  let shape: [number, number, number, number] | undefined;
  let labelCount = 0;
  let schema: Schema | undefined;
  let windows = 0;
  let batches = 0;

  const toBatch = (b: PairBatch): RecordBatch => {
    const where = `${path}: pair batch ${b.index}`;
    const [B, L, H, W, C] = b.shape;
    const size = L * H * W * C;
    for (const name of PAIR_WINDOW_COLUMNS) {
      if (b[name].length !== B * size) throw new PairsError(`${where}: ${name} has ${b[name].length} values, shape [${b.shape}] needs ${B * size}`);
      checkFinitePairs(where, name, b[name]);
    }
    if (b.mask.length !== B * L) throw new PairsError(`${where}: mask has ${b.mask.length} values, expected B*L = ${B * L}`);
    const P = b.labels ? b.labels.length / B : 0;
    if (!Number.isInteger(P)) throw new PairsError(`${where}: ${b.labels!.length} label values do not split into ${B} rows`);
    if (b.labels) checkFinitePairs(where, 'labels', b.labels);
    if (!shape) {
      shape = [L, H, W, C];
      labelCount = P;
      if (meta.labelNames.length !== P) throw new PairsError(`${where}: ${P} labels but meta.labelNames has ${meta.labelNames.length} names`);
      const shapeMeta = new Map([['shape', JSON.stringify(shape)]]);
      schema = new Schema(
        [
          ...PAIR_WINDOW_COLUMNS.map((name) => floatField(name, size, shapeMeta)),
          floatField('mask', L, new Map([['shape', JSON.stringify([L])]])),
          floatField('labels', P, new Map([['names', JSON.stringify(meta.labelNames)]])),
          new Field('batch', new Int32(), false),
        ],
        pairsMetaEntries(meta),
      );
    } else if ([L, H, W, C].some((d, i) => d !== shape![i]) || P !== labelCount) {
      throw new PairsError(`${where}: windows [${[L, H, W, C]}] with ${P} labels differ from the file's [${shape}] with ${labelCount} labels`);
    }
    const columns = [
      ...PAIR_WINDOW_COLUMNS.map((name) => floatList(b[name], size, B)),
      floatList(b.mask, L, B),
      floatList(b.labels ?? new Float32Array(0), P, B),
      vectorFromArray(new Array<number>(B).fill(b.index), new Int32()).data[0]!,
    ];
    const struct = makeData({ type: new Struct(schema!.fields), length: B, nullCount: 0, children: columns });
    windows += B;
    batches++;
    return new RecordBatch(schema!, struct);
  };

  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(target.tmp);
  const outClosed = finished(out);
  outClosed.catch(() => undefined);
  const writer = new RecordBatchFileWriter();
  const bytes = writer[Symbol.asyncIterator]();
  // as in the latent cache writer: hand the writer's bytes to the file stream after each record batch, waiting
  // for 'drain', before pulling the next batch (`_position` counts the bytes the writer has produced)
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
    for await (const b of source) {
      writer.write(toBatch(b));
      await handOver(false);
    }
    if (batches === 0) throw new PairsError(`${path}: no pair batches to write`);
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
  return { path, windows, batches, shape: shape! };
}
