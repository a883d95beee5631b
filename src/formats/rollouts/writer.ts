/**
 * Writing saved rollouts (format in schema.ts): `openRolloutsFile` opens one model's file and takes its states one
 * at a time, each written as one record batch before the next is taken, so memory is one state's truth and members
 * whatever the number of trajectories and leads. The file appears under its name only when closed (temporary name,
 * fsync, rename); an aborted or failed write leaves nothing.
 */
import { Field, Int32, RecordBatch, Schema, Struct, Utf8, makeData, vectorFromArray } from 'apache-arrow';
import { floatListData, openArrowWriter, tensorField } from '../arrow.js';
import { RolloutsError, SPATIAL_DIM_NAMES, rolloutsSchemaEntries, type RolloutOrigin } from './schema.js';

export interface RolloutsFileOptions {
  model: string;
  /** Channel names, length C. */
  fields: readonly string[];
  /** Spatial shape of a state, e.g. [H, W]. */
  spatialShape: readonly number[];
  /** Ensemble members per state. */
  members: number;
  /** States given as context. */
  context: number;
  /** Free-form entries, stored under `user.<key>`. */
  extra?: Record<string, string>;
}

/** One state to write: its origin, lead, truth (...spatial, C) and members (each like the truth). */
export interface SavedState {
  origin: RolloutOrigin;
  lead: number;
  truth: ArrayLike<number>;
  members: readonly ArrayLike<number>[];
}

/** A rollouts file being written: `write` one state at a time, then `close` (or `abort`). */
export interface RolloutsFileWriter {
  readonly path: string;
  /** States written so far. */
  readonly rows: number;
  write(state: SavedState): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** Opens `path` for the states of one model (see the module header). Fails on a shape it cannot store. */
export async function openRolloutsFile(path: string, options: RolloutsFileOptions): Promise<RolloutsFileWriter> {
  const { model, fields, spatialShape, members } = options;
  if (spatialShape.length < 1 || spatialShape.length > SPATIAL_DIM_NAMES.length) {
    throw new RolloutsError(`${path}: states of ${spatialShape.length} spatial dimensions cannot be saved (1 to ${SPATIAL_DIM_NAMES.length})`);
  }
  if (!Number.isInteger(members) || members < 1) throw new RolloutsError(`${path}: members must be a positive integer, got ${members}`);
  const stateShape = [...spatialShape, fields.length];
  const stateSize = stateShape.reduce((a, b) => a * b, 1);
  const dims = [...SPATIAL_DIM_NAMES.slice(0, spatialShape.length), 'channel'];
  const schema = new Schema(
    [
      new Field('file', new Utf8(), false),
      new Field('trajectory', new Int32(), false),
      new Field('start', new Int32(), false),
      new Field('lead', new Int32(), false),
      new Field('frame', new Int32(), false),
      tensorField('truth', stateShape, { dimNames: dims }),
      tensorField('members', [members, ...stateShape], { dimNames: ['member', ...dims] }),
    ],
    rolloutsSchemaEntries(model, fields, options.context, options.extra),
  );
  const file = await openArrowWriter(path);
  let rows = 0;
  const write = async (state: SavedState): Promise<void> => {
    const where = `${path}: ${model} on trajectory ${state.origin.trajectory} of ${state.origin.file}, lead ${state.lead}`;
    if (state.truth.length !== stateSize) throw new RolloutsError(`${where}: truth has ${state.truth.length} values, shape ${JSON.stringify(stateShape)} needs ${stateSize}`);
    if (state.members.length !== members) throw new RolloutsError(`${where}: ${state.members.length} members, the file holds ${members} per state`);
    const packed = new Float32Array(members * stateSize);
    state.members.forEach((m, i) => {
      if (m.length !== stateSize) throw new RolloutsError(`${where}: member ${i} has ${m.length} values, shape ${JSON.stringify(stateShape)} needs ${stateSize}`);
      packed.set(m, i * stateSize);
    });
    const int = (v: number) => vectorFromArray([v], new Int32()).data[0]!;
    const columns = [
      vectorFromArray([state.origin.file], new Utf8()).data[0]!,
      int(state.origin.trajectory),
      int(state.origin.start),
      int(state.lead),
      int(state.origin.frame),
      floatListData(Float32Array.from(state.truth), stateSize, 1),
      floatListData(packed, members * stateSize, 1),
    ];
    await file.write(new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: 1, nullCount: 0, children: columns })));
    rows++;
  };
  return {
    path,
    get rows() {
      return rows;
    },
    async write(state) {
      try {
        await write(state);
      } catch (err) {
        await file.abort();
        throw err;
      }
    },
    close: () => file.close(),
    abort: () => file.abort(),
  };
}
