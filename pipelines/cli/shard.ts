/**
 * Splitting work across processes (`--shard i/n`), e.g. the tasks of a Slurm array job. Items are dealt
 * round-robin: shard i of n takes items i, i + n, i + 2n, ...
 */
import { filter, type Stage } from '../../src/streams/index.js';
import { UsageError } from './command.js';

export interface Shard {
  /** 0-based index of this shard. */
  index: number;
  /** Number of shards. */
  count: number;
}

/**
 * `--shard i/n` when given; else SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set (Slurm arrays may start at
 * SLURM_ARRAY_TASK_MIN, which is subtracted); else the whole job (0/1).
 */
export function parseShard(text: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard {
  if (text !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(text.trim());
    if (!m) throw new UsageError(`--shard ${text}: expected i/n with 0 <= i < n, e.g. --shard 2/8`);
    const shard = { index: Number(m[1]), count: Number(m[2]) };
    if (shard.count < 1 || shard.index >= shard.count) throw new UsageError(`--shard ${text}: need 0 <= i < n`);
    return shard;
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const index = Number(env.SLURM_ARRAY_TASK_ID) - Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    const count = Number(env.SLURM_ARRAY_TASK_COUNT);
    if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || index >= count) {
      throw new UsageError(
        `SLURM_ARRAY_TASK_ID=${env.SLURM_ARRAY_TASK_ID} (min ${env.SLURM_ARRAY_TASK_MIN ?? 0}) with SLURM_ARRAY_TASK_COUNT=${env.SLURM_ARRAY_TASK_COUNT} is not a valid shard`,
      );
    }
    return { index, count };
  }
  return { index: 0, count: 1 };
}

/** Stage: keeps this shard's items (the k-th item goes to shard k mod n). */
export function shardItems<A>(shard: Shard): Stage<A, A> {
  return filter((_: A, k: number) => k % shard.count === shard.index, `shard ${shard.index}/${shard.count}`);
}

/** `shard-0003-of-0008`, for output names that a merge step can find. */
export function shardTag(shard: Shard): string {
  return `shard-${String(shard.index).padStart(4, '0')}-of-${String(shard.count).padStart(4, '0')}`;
}
