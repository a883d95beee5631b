/**
 * Reading distillation pairs (format in schema.ts): `openPairs` reads a file's footer and schema, `readPairs`
 * streams its pair batches, one record batch at a time.
 */
import type { FixedSizeList, RecordBatch, Schema, Vector } from 'apache-arrow';
import { arrowBatches, readArrowInfo } from '../arrow.js';
import { PairsError, PAIR_WINDOW_COLUMNS, checkFinitePairs, pairsInfoFromSchema, type PairBatch, type PairsInfo } from './schema.js';

export interface ReadPairsOptions {
  /** Fail before reading any row unless the pairs were made by this teacher (run id). */
  teacher?: string;
}

const fail = (message: string) => new PairsError(message);

/** Reads a pairs file's metadata (footer, schema and row counts). */
export function openPairs(path: string): Promise<PairsInfo> {
  return readArrowInfo(path, 'pairs file', fail, pairsInfoFromSchema);
}

/** Throws unless `info` says the pairs were made by `teacher`. */
export function checkPairsTeacher(info: PairsInfo, teacher: string): void {
  if (info.teacher !== teacher) {
    throw new PairsError(`${info.path}: pairs made by teacher "${info.teacher}", expected "${teacher}" (make the pairs again with this teacher)`);
  }
}

function floats(path: string, batch: RecordBatch, name: string): Float32Array {
  const column = batch.getChild(name) as Vector<FixedSizeList> | null;
  if (!column) throw new PairsError(`${path}: a record batch lacks column ${name}`);
  const data = column.data[0]!;
  const size = (data.type as FixedSizeList).listSize;
  const values = data.children[0]!.values as Float32Array;
  // copied: a pair batch outlives its record batch (and is often uploaded as tensors at once)
  return values.slice(data.offset * size, (data.offset + batch.numRows) * size);
}

/**
 * Source: streams the pair batches of one or more pairs files, one record batch at a time (so it holds one).
 * Checks before reading any row that every file is a pairs file of the expected teacher.
 */
export function readPairs(paths: string | string[], options: ReadPairsOptions = {}): AsyncIterable<PairBatch> {
  const list = Array.isArray(paths) ? paths : [paths];
  const infoOf = (path: string, schema: Schema): PairsInfo => {
    const info = pairsInfoFromSchema(path, schema, 0);
    if (options.teacher !== undefined) checkPairsTeacher(info, options.teacher);
    return info;
  };
  return {
    async *[Symbol.asyncIterator]() {
      for await (const { path, info, batch, index: i } of arrowBatches(list, 'pairs file', fail, infoOf)) {
        if (batch.numRows === 0) continue;
        const [L, H, W, C] = info.shape;
        const B = batch.numRows;
        const where = `${path}: record batch ${i}`;
        const [noise, sample, observed] = PAIR_WINDOW_COLUMNS.map((name) => {
          const v = floats(path, batch, name);
          checkFinitePairs(where, name, v);
          return v;
        });
        const labels = floats(path, batch, 'labels');
        const index = batch.getChild('batch');
        yield {
          noise: noise!,
          sample: sample!,
          observed: observed!,
          shape: [B, L, H, W, C] as const,
          mask: floats(path, batch, 'mask'),
          labels: labels.length > 0 ? labels : null,
          index: index ? Number(index.get(0)) : i,
        };
      }
    },
  };
}
