/**
 * Reading saved rollouts (format in schema.ts): `openRollouts` reads a file's footer and schema, `readRollouts` is
 * the source that streams its rows, one record batch at a time.
 */
import type { FixedSizeList, RecordBatch, Schema, Vector } from 'apache-arrow';
import { arrowBatches, readArrowInfo } from '../arrow.js';
import { RolloutsError, rolloutsInfoFromSchema, type RolloutsInfo, type SavedRolloutRow } from './schema.js';

const fail = (message: string) => new RolloutsError(message);

/** Reads a rollouts file's metadata (footer, schema and row count). */
export function openRollouts(path: string): Promise<RolloutsInfo> {
  return readArrowInfo(path, 'rollouts file', fail, rolloutsInfoFromSchema);
}

function rowsOf(path: string, info: RolloutsInfo, batch: RecordBatch): SavedRolloutRow[] {
  const get = (name: string) => {
    const column = batch.getChild(name);
    if (!column) throw new RolloutsError(`${path}: a record batch lacks column ${name}`);
    return column;
  };
  const [file, trajectory, start, lead, frame] = ['file', 'trajectory', 'start', 'lead', 'frame'].map(get);
  const values = (name: string): Float32Array => {
    const data = (get(name) as Vector<FixedSizeList>).data[0]!;
    const size = (data.type as FixedSizeList).listSize;
    return (data.children[0]!.values as Float32Array).subarray(data.offset * size, (data.offset + batch.numRows) * size);
  };
  const truth = values('truth');
  const members = values('members');
  const stateSize = info.stateShape.reduce((a, b) => a * b, 1);
  return Array.from({ length: batch.numRows }, (_, r) => ({
    model: info.model,
    origin: { file: String(file!.get(r)), trajectory: Number(trajectory!.get(r)), start: Number(start!.get(r)), frame: Number(frame!.get(r)) },
    lead: Number(lead!.get(r)),
    truth: truth.slice(r * stateSize, (r + 1) * stateSize),
    members: Array.from({ length: info.members }, (_, m) => members.slice((r * info.members + m) * stateSize, (r * info.members + m + 1) * stateSize)),
  }));
}

/**
 * Source: the saved states of one or more rollouts files, in file order. Holds one record batch (one state as
 * written); each row's arrays are copies. Checks each file's schema before reading its rows.
 */
export function readRollouts(paths: string | string[]): AsyncIterable<SavedRolloutRow> {
  const list = Array.isArray(paths) ? paths : [paths];
  const infoOf = (path: string, schema: Schema): RolloutsInfo => rolloutsInfoFromSchema(path, schema, 0);
  return {
    async *[Symbol.asyncIterator]() {
      for await (const { path, info, batch } of arrowBatches(list, 'rollouts file', fail, infoOf)) yield* rowsOf(path, info, batch);
    },
  };
}
