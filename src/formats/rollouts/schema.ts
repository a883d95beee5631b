/**
 * Saved rollouts: one Arrow IPC file per model (`<dir>/<model>.arrow`), one row per predicted state of one test
 * trajectory, in the order the rollout stream produced them (trajectory by trajectory, lead by lead). This module is
 * the format: its row and metadata types, the schema written, and the checks applied when a file is opened.
 *
 * Columns (documented in README.md, "Saved rollouts format"):
 * - `file`: Utf8, the Well file of the trajectory (base name); `trajectory`: Int32, its index in that file
 * - `start`: Int32, the frame of the Well trajectory where the rollout starts (its first context state)
 * - `lead`: Int32, 1 for the first predicted state; `frame`: Int32, the Well frame this state predicts
 *   (start + context + lead - 1), i.e. the frame `truth` is
 * - `truth`: `arrow.fixed_shape_tensor` of float32, shape [...spatial, C] (dim_names x, y(, z), channel)
 * - `members`: `arrow.fixed_shape_tensor` of float32, shape [M, ...spatial, C] (dim_names member, x, y(, z), channel)
 * - schema metadata: `wellspring.format` = "rollouts/1", `wellspring.model`, `wellspring.fields` (JSON channel
 *   names), `wellspring.context` (states given as context), `wellspring.created`, `user.*`
 *
 * Values are in physical units, channels last, row-major; a diverged rollout's NaN or infinities are kept as data.
 */
import type { Schema } from 'apache-arrow';
import { checkWellspringMetadata, parseJsonEntry, tensorColumn, wellspringMetadata, type FormatError } from '../arrow.js';

export const ROLLOUTS_FORMAT = 'rollouts/1';

/** Names of the spatial dimensions in the tensors' `dim_names`, by rank. */
export const SPATIAL_DIM_NAMES = ['x', 'y', 'z'] as const;

/** Where a saved state comes from. */
export interface RolloutOrigin {
  /** The Well file of the trajectory (base name). */
  file: string;
  /** Trajectory index in that file. */
  trajectory: number;
  /** Frame of the Well trajectory where the rollout starts (its first context state). */
  start: number;
  /** Frame of the Well trajectory this state predicts (its truth). */
  frame: number;
}

/** One saved state of one model. */
export interface SavedRolloutRow {
  model: string;
  origin: RolloutOrigin;
  /** 1 for the first predicted state. */
  lead: number;
  /** The simulated state, (...spatial, C). */
  truth: Float32Array;
  /** M members, each (...spatial, C). */
  members: Float32Array[];
}

/** What a saved-rollouts file says about itself. */
export interface RolloutsInfo {
  path: string;
  model: string;
  /** Channel names, length C. */
  fields: string[];
  /** States given as context. */
  context: number;
  /** [...spatial, C]. */
  stateShape: number[];
  /** Ensemble members per row. */
  members: number;
  rows: number;
  created: string;
  extra: Record<string, string>;
}

/** Error for a rollouts file that is not what the caller expects (names the file and what was expected). */
export class RolloutsError extends Error {
  override readonly name = 'RolloutsError';
}

const fail: FormatError = (message) => new RolloutsError(message);

/** The schema metadata of a rollouts file. */
export function rolloutsSchemaEntries(model: string, fields: readonly string[], context: number, extra: Record<string, string> = {}): Map<string, string> {
  return wellspringMetadata(
    ROLLOUTS_FORMAT,
    [
      ['wellspring.model', model],
      ['wellspring.fields', JSON.stringify(fields)],
      ['wellspring.context', String(context)],
    ],
    extra,
  );
}

/** Validates a rollouts file's schema (named by `path` in errors) and returns what it says about itself. */
export function rolloutsInfoFromSchema(path: string, schema: Schema, rows: number): RolloutsInfo {
  const { created, extra } = checkWellspringMetadata(path, schema, ROLLOUTS_FORMAT, 'rollouts file', fail);
  const column = (name: string) => {
    const field = schema.fields.find((f) => f.name === name);
    if (!field) throw new RolloutsError(`${path}: expected a column ${name}`);
    return field;
  };
  for (const name of ['file', 'trajectory', 'start', 'lead', 'frame']) column(name);
  const truth = tensorColumn(path, column('truth'), fail);
  const members = tensorColumn(path, column('members'), fail);
  if (!truth || !members) throw new RolloutsError(`${path}: columns truth and members must be arrow.fixed_shape_tensor columns`);
  if (members.shape.length !== truth.shape.length + 1 || members.shape.slice(1).join() !== truth.shape.join()) {
    throw new RolloutsError(`${path}: members shape ${JSON.stringify(members.shape)} is not [M, ...${JSON.stringify(truth.shape)}]`);
  }
  const md = schema.metadata;
  const fields = parseJsonEntry(path, 'wellspring.fields', md.get('wellspring.fields'), fail);
  if (!Array.isArray(fields) || fields.length !== truth.shape[truth.shape.length - 1]) {
    throw new RolloutsError(`${path}: wellspring.fields must list one name per channel (${truth.shape[truth.shape.length - 1]}), got ${JSON.stringify(fields)}`);
  }
  const context = Number(md.get('wellspring.context'));
  if (!Number.isInteger(context) || context < 1) throw new RolloutsError(`${path}: wellspring.context must be a positive integer, got ${JSON.stringify(md.get('wellspring.context'))}`);
  return { path, model: md.get('wellspring.model') ?? '', fields: fields as string[], context, stateShape: truth.shape, members: members.shape[0]!, rows, created, extra };
}
