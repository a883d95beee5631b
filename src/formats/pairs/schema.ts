/**
 * Distillation pairs: Arrow IPC files of (noise, teacher sample) pairs with their conditioning, one row per
 * window, one record batch per pair batch as `teacherPairs` (src/models/diffusion/distill.ts) yields them.
 * This module is the format: metadata types, the schema entries written, and the checks applied when a file is
 * opened. `reader.ts` streams pair batches out, `writer.ts` writes them (atomically).
 *
 * Schema:
 * - `noise`, `sample`, `observed`: FixedSizeList<Float32> of L*H*W*C values, row-major (L, H, W, C); field
 *   metadata `shape` = JSON [L, H, W, C]. `noise` is standard normal eps (the teacher started from
 *   noiseScale * eps), `sample` the teacher's sample, `observed` the context frames (zero where unobserved).
 * - `mask`: FixedSizeList<Float32> of L values (1 on observed frames); field metadata `shape` = JSON [L].
 * - `labels`: FixedSizeList<Float32> of P values (P may be 0: no labels); field metadata `names` = JSON [..].
 * - `batch`: Int32, the index of the row's pair batch in the teacher run's stream (its noise seed is
 *   pairSeed(seed, batch)).
 * - schema metadata: `wellspring.format` = "pairs/1", `wellspring.teacher` (the teacher emulator's run id),
 *   `wellspring.sampler` (JSON: the teacher's sampler settings), `wellspring.formulation`, `wellspring.seed`,
 *   `wellspring.autoencoder` (the latents' autoencoder id, '' if unknown), `wellspring.created`, and user
 *   entries under `user.`.
 */
import type { Schema } from 'apache-arrow';
import { checkWellspringMetadata, parseJsonEntry, wellspringMetadata, type FormatError } from '../arrow.js';

export const PAIRS_FORMAT = 'pairs/1';

/** One batch of distillation pairs, as typed arrays (one row per window in the pairs file). */
export interface PairBatch {
  /** Standard normal noise eps (B, L, H, W, C); the teacher started from x_1 = noiseScale(schedule) * eps. */
  noise: Float32Array;
  /** The teacher's sample (B, L, H, W, C); its observed frames equal `observed`'s. */
  sample: Float32Array;
  /** The observed context (B, L, H, W, C): the window's frames where `mask` is 1, zero elsewhere. */
  observed: Float32Array;
  shape: readonly [number, number, number, number, number];
  /** Frame mask (B, L): 1 on observed frames. */
  mask: Float32Array;
  /** Labels (B, P), or null. */
  labels: Float32Array | null;
  /** Index of the batch in the teacher run's stream: its noise came from pairSeed(seed, index). */
  index: number;
}


/** What a pairs file says about itself. */
export interface PairsMeta {
  /** Identifies the teacher (emulator run id or weights hash). */
  teacher: string;
  /** The teacher's sampler settings (sampler, steps, order...). */
  sampler: Record<string, unknown>;
  /** The teacher's formulation ('diffusion' or 'flow'). */
  formulation: string;
  /** The run seed the noise was derived from. */
  seed: number;
  /** The autoencoder whose latents the teacher emulates ('' when unknown). */
  autoencoder?: string;
  /** Names of the label entries. */
  labelNames: string[];
  /** Free-form extra entries, stored under `user.<key>`. */
  extra?: Record<string, string>;
}

export interface PairsInfo extends Required<PairsMeta> {
  path: string;
  /** Rows (windows) in the file (0 when only the schema was read). */
  windows: number;
  /** [L, H, W, C] of every window. */
  shape: [number, number, number, number];
  created: string;
}

/** Error for a pairs file that is not what the caller expects (names the file and what was expected). */
export class PairsError extends Error {
  override readonly name = 'PairsError';
}

/** The schema metadata of a pairs file (see the header). */
export function pairsMetaEntries(meta: PairsMeta): Map<string, string> {
  return wellspringMetadata(
    PAIRS_FORMAT,
    [
      ['wellspring.teacher', meta.teacher],
      ['wellspring.sampler', JSON.stringify(meta.sampler)],
      ['wellspring.formulation', meta.formulation],
      ['wellspring.seed', String(meta.seed)],
      ['wellspring.autoencoder', meta.autoencoder ?? ''],
    ],
    meta.extra,
  );
}

const fail: FormatError = (message) => new PairsError(message);
const parseJson = (path: string, what: string, text: string | undefined): unknown => parseJsonEntry(path, what, text, fail);

export const PAIR_WINDOW_COLUMNS = ['noise', 'sample', 'observed'] as const;

/** Validates a pairs file's schema (named by `path` in errors) and returns what it says about itself. */
export function pairsInfoFromSchema(path: string, schema: Schema, rows: number): PairsInfo {
  const md = schema.metadata;
  const { created, extra } = checkWellspringMetadata(path, schema, PAIRS_FORMAT, 'pairs file', fail);
  const field = (name: string) => {
    const f = schema.fields.find((x) => x.name === name);
    if (!f) throw new PairsError(`${path}: expected columns ${[...PAIR_WINDOW_COLUMNS, 'mask', 'labels', 'batch'].join(', ')}; ${name} is missing`);
    return f;
  };
  let shape: number[] | undefined;
  for (const name of PAIR_WINDOW_COLUMNS) {
    const s = parseJson(path, `${name} field metadata "shape"`, field(name).metadata.get('shape')) as number[];
    if (!Array.isArray(s) || s.length !== 4 || s.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new PairsError(`${path}: ${name} shape metadata must be [L, H, W, C], got ${JSON.stringify(s)}`);
    }
    if (shape && s.some((d, i) => d !== shape![i])) throw new PairsError(`${path}: ${name} shape ${JSON.stringify(s)} differs from noise's ${JSON.stringify(shape)}`);
    shape = s;
  }
  field('mask');
  field('batch');
  const seed = Number(md.get('wellspring.seed'));
  return {
    path,
    windows: rows,
    shape: shape as [number, number, number, number],
    teacher: md.get('wellspring.teacher') ?? '',
    sampler: parseJson(path, 'schema metadata wellspring.sampler', md.get('wellspring.sampler')) as Record<string, unknown>,
    formulation: md.get('wellspring.formulation') ?? '',
    seed: Number.isFinite(seed) ? seed : NaN,
    autoencoder: md.get('wellspring.autoencoder') ?? '',
    labelNames: parseJson(path, 'labels field metadata "names"', field('labels').metadata.get('names')) as string[],
    created,
    extra,
  };
}

/** Fails (naming `where` and the column) when a value is not finite: a NaN pair would train a student on garbage. */
export function checkFinitePairs(where: string, column: string, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) throw new PairsError(`${where}: column ${column} holds ${values[i]} at flat index ${i}`);
  }
}
