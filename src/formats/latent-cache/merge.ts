/**
 * Joining the shard files of a sharded cache run (`<stem>.shard-i-of-n.arrow`, written by processes that each
 * encoded every n-th trajectory) into one file per source: rows come out in the order an unsharded run writes
 * them (by trajectory, then copy).
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CachedTrajectory } from './schema.js';
import { openLatentCache, readLatentCache } from './reader.js';
import { writeLatentCache } from './writer.js';

/** Merges streams each sorted by (trajectory, augmentation) into one sorted stream (the unsharded order). */
async function* inTrajectoryOrder(sources: AsyncIterable<CachedTrajectory>[]): AsyncGenerator<CachedTrajectory> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const heads = await Promise.all(iterators.map((it) => it.next()));
  const key = (row: CachedTrajectory) => row.origin.trajectory * 1_000_000 + row.origin.augmentation;
  for (;;) {
    let best = -1;
    heads.forEach((h, i) => {
      if (!h.done && (best < 0 || key(h.value) < key((heads[best] as IteratorYieldResult<CachedTrajectory>).value))) best = i;
    });
    if (best < 0) return;
    yield (heads[best] as IteratorYieldResult<CachedTrajectory>).value;
    heads[best] = await iterators[best]!.next();
  }
}

/**
 * Joins shard files (`<stem>.shard-i-of-n.arrow`) in `<cacheDir>/<split>/` into `<stem>.arrow`, after checking that
 * all n shards are present and made by one autoencoder (rows come out in trajectory order, as an unsharded run
 * writes them); the shard files are removed once the merged file is in
 * place.
 */
export async function mergeLatentCacheShards(cacheDir: string): Promise<string[]> {
  const merged: string[] = [];
  if (!existsSync(cacheDir)) throw new Error(`${cacheDir}: no cache directory to merge`);
  for (const split of await readdir(cacheDir)) {
    const dir = join(cacheDir, split);
    const names = (await readdir(dir)).filter((f) => /\.shard-\d+-of-\d+\.arrow$/.test(f));
    const groups = new Map<string, string[]>();
    for (const name of names) {
      const stem = name.replace(/\.shard-\d+-of-\d+\.arrow$/, '');
      groups.set(stem, [...(groups.get(stem) ?? []), name]);
    }
    for (const [stem, parts] of groups) {
      parts.sort();
      const count = Number(/of-(\d+)/.exec(parts[0]!)![1]);
      const infos = await Promise.all(parts.map((p) => openLatentCache(join(dir, p))));
      // Shard i takes trajectories i, i + n, ...: it is empty (and writes no file) exactly when i >= the total.
      const total = Number(infos[0]!.extra?.trajectories_in_source ?? count);
      const present = new Set(parts.map((p) => Number(/shard-(\d+)-of/.exec(p)![1])));
      const missing = Array.from({ length: Math.min(count, total) }, (_, i) => i).filter((i) => !present.has(i));
      if (missing.length > 0) throw new Error(`${dir}: ${stem} lacks shard(s) ${missing.join(', ')} of ${count}; run the missing shards first`);
      const ids = new Set(infos.map((i) => i.autoencoder));
      if (ids.size !== 1) throw new Error(`${dir}: the shards of ${stem} come from different autoencoders (${[...ids].join(', ')})`);
      const first = infos[0]!;
      const out = join(dir, `${stem}.arrow`);
      await writeLatentCache(inTrajectoryOrder(parts.map((p) => readLatentCache(join(dir, p)))), {
        path: out,
        meta: { autoencoder: first.autoencoder, normalisation: first.normalisation, labelNames: first.labelNames, split: first.split, source: first.source, extra: { shards: String(count) } },
      });
      for (const p of parts) await rm(join(dir, p));
      merged.push(out);
    }
  }
  return merged;
}
