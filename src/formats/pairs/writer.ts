/**
 * Writes distillation pair batches to an Arrow IPC file (the pairs format of schema.ts), atomically.
 */
import { Field, Int32, RecordBatch, Schema, Struct, makeData, vectorFromArray } from 'apache-arrow';
import { PairsError, PAIR_WINDOW_COLUMNS, checkFinitePairs, pairsMetaEntries, type PairBatch, type PairsMeta } from './schema.js';
import { floatListData, floatListField, writeArrowFile } from '../arrow.js';

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


/**
 * Sink: writes every pair batch of `source` as one record batch. Every batch must have the window shape and
 * label count of the first; a mismatch or a non-finite value stops the write with an error naming the batch,
 * and no file is left under the final name. Pulls the source only as fast as the file accepts the bytes.
 * Holds one record batch.
 */
export async function writePairs(source: AsyncIterable<PairBatch> | Iterable<PairBatch>, options: WritePairsOptions): Promise<WritePairsResult> {
  const { path, meta } = options;
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
          ...PAIR_WINDOW_COLUMNS.map((name) => floatListField(name, size, shapeMeta)),
          floatListField('mask', L, new Map([['shape', JSON.stringify([L])]])),
          floatListField('labels', P, new Map([['names', JSON.stringify(meta.labelNames)]])),
          new Field('batch', new Int32(), false),
        ],
        pairsMetaEntries(meta),
      );
    } else if ([L, H, W, C].some((d, i) => d !== shape![i]) || P !== labelCount) {
      throw new PairsError(`${where}: windows [${[L, H, W, C]}] with ${P} labels differ from the file's [${shape}] with ${labelCount} labels`);
    }
    const columns = [
      ...PAIR_WINDOW_COLUMNS.map((name) => floatListData(b[name], size, B)),
      floatListData(b.mask, L, B),
      floatListData(b.labels ?? new Float32Array(0), P, B),
      vectorFromArray(new Array<number>(B).fill(b.index), new Int32()).data[0]!,
    ];
    const struct = makeData({ type: new Struct(schema!.fields), length: B, nullCount: 0, children: columns });
    windows += B;
    batches++;
    return new RecordBatch(schema!, struct);
  };

  async function* recordBatches(): AsyncGenerator<RecordBatch> {
    for await (const b of source) yield toBatch(b);
    if (batches === 0) throw new PairsError(`${path}: no pair batches to write`);
  }
  await writeArrowFile(path, recordBatches());
  return { path, windows, batches, shape: shape! };
}
