/**
 * Sink face of the saved-rollouts format (src/formats/rollouts): `saveRollouts(dir)` is a pass-through stage that
 * writes every rollout chunk it sees to `<dir>/<model>.arrow` before handing the chunk on, so the metric sinks
 * downstream score exactly what is saved.
 */
import { join } from 'node:path';
import { named, type Stage } from '../streams/core.js';
import { openRolloutsFile, RolloutsError, type RolloutsFileWriter } from '../formats/rollouts/index.js';
import type { RolloutChunk } from './metrics/types.js';

export interface SaveRolloutsOptions {
  /** States given as context before lead 1 (recorded in each file). Default 1. */
  context?: number;
  /** Free-form entries stored in every file under `user.<key>`. */
  extra?: Record<string, string>;
}

/**
 * Stage: rollout chunks in, the same chunks out; each chunk's frames are written to its model's file (one row per
 * frame: truth, members, lead, origin) before the chunk is yielded, so the stage holds one chunk. A model's file is
 * opened at its first chunk and every later chunk of it must have the same fields, spatial shape and member count.
 * The files appear under their names (atomically) when the source ends; if the stream fails or the consumer stops
 * early, none does. Chunks need `origin` (set by `withTruth`); model names must be usable as file names.
 */
export function saveRollouts(dir: string, options: SaveRolloutsOptions = {}): Stage<RolloutChunk, RolloutChunk> {
  const context = options.context ?? 1;
  return named('save-rollouts', async function* (source) {
    const files = new Map<string, { writer: RolloutsFileWriter; fields: string; spatial: string }>();
    let complete = false;
    try {
      for await (const chunk of source) {
        const model = chunk.model ?? 'model';
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(model)) throw new RolloutsError(`${dir}: model name "${model}" cannot name a rollouts file (letters, digits, . _ -)`);
        if (!chunk.origin) throw new RolloutsError(`${dir}: a chunk of ${model} (trajectory ${String(chunk.trajectory)}, lead ${chunk.lead}) has no origin: pair rollouts with their truth through withTruth before saving them`);
        const stateSize = chunk.spatialShape.reduce((a, b) => a * b, 1) * chunk.fields.length;
        let file = files.get(model);
        if (!file) {
          const writer = await openRolloutsFile(join(dir, `${model}.arrow`), {
            model, fields: chunk.fields, spatialShape: chunk.spatialShape, members: chunk.ensemble.length, context, ...(options.extra ? { extra: options.extra } : {}),
          });
          file = { writer, fields: chunk.fields.join(), spatial: chunk.spatialShape.join() };
          files.set(model, file);
        } else if (file.fields !== chunk.fields.join() || file.spatial !== chunk.spatialShape.join()) {
          throw new RolloutsError(`${file.writer.path}: a chunk of trajectory ${String(chunk.trajectory)} has fields [${chunk.fields}] on [${chunk.spatialShape}], the file holds [${file.fields}] on [${file.spatial}]`);
        }
        const frames = chunk.truth.length / stateSize;
        for (let k = 0; k < frames; k++) {
          const at = (a: Float32Array | Float64Array) => a.subarray(k * stateSize, (k + 1) * stateSize);
          await file.writer.write({
            origin: { ...chunk.origin, frame: chunk.origin.frame + k },
            lead: chunk.lead + k,
            truth: at(chunk.truth),
            members: chunk.ensemble.map(at),
          });
        }
        yield chunk;
      }
      for (const f of files.values()) await f.writer.close();
      complete = true;
    } finally {
      if (!complete) for (const f of files.values()) await f.writer.abort();
    }
  });
}
