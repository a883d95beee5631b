/**
 * The latent-cache pipeline: every trajectory of every split is read frame by frame, normalised, augmented
 * (`repeat` copies with distinct symmetry transforms, the first one plain), encoded by the trained autoencoder
 * and written to `<run>/cache/<split>/<file stem>.arrow`, one Arrow file per source file and split. With
 * `--shard i/n` each process takes every n-th trajectory and writes `<stem>.shard-i-of-n.arrow`; `mergeCache`
 * then joins the shards. Existing output files are kept (a rerun finishes an interrupted job).
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  applyTransform,
  channelGeometry,
  IDENTITY_TRANSFORM,
  randomTransform,
  Rng,
  describeTransform,
  pipe,
  progress,
  abortable,
  type GridTransform,
} from '../src/streams/index.js';
import { openWellDataset, resolveWellFiles, wellSplitDir, type WellMeta } from '../src/streams/well/index.js';
import { openLatentCache, readLatentCache, type CachedTrajectory } from '../src/streams/latent-cache.js';
import { writeLatentCache } from '../src/sinks/latent-cache.js';
import { encodeFrames, loadAutoencoder, type LoadedAutoencoder } from './autoencoder.js';
import { shardTag, type Shard } from './shard.js';
import type { RunDir } from './run-dir.js';
import { ConfigError } from './config.js';

export const cacheDefaults = {
  /** Run directory of the trained autoencoder. */
  autoencoder: '',
  data: { root: '' },
  /** Splits to encode, and how many copies of each trajectory (the first plain, the others augmented). */
  splits: { train: 4, valid: 1, test: 1 },
  /** Simulation parameters given to the emulators as log10 (positive, spanning decades). */
  logLabels: ['Rayleigh', 'Prandtl', 'Reynolds'],
  /** Frames encoded per autoencoder call. */
  batchSize: 16,
  seed: 0,
};
export type CacheConfig = typeof cacheDefaults;

/** Label vector of a file: its simulation parameters (log10 where configured), then periodic flags per axis. */
export function labelsFor(meta: WellMeta, logLabels: string[]): { names: string[]; values: Float32Array } {
  const names: string[] = [];
  const values: number[] = [];
  for (const [name, value] of Object.entries(meta.simulationParameters)) {
    if (typeof value !== 'number') continue;
    const useLog = logLabels.includes(name);
    if (useLog && !(value > 0)) throw new Error(`${meta.path}: simulation parameter ${name} = ${value} must be positive to take its log`);
    names.push(useLog ? `log10_${name}` : name);
    values.push(useLog ? Math.log10(value) : value);
  }
  const bc = meta.boundaryTable;
  meta.spatialDims.forEach((dim, d) => {
    names.push(`periodic_${dim}`);
    values.push(bc[2 * d] === 2 && bc[2 * d + 1] === 2 ? 1 : 0);
  });
  return { names, values: Float32Array.from(values) };
}

/** The transforms of the `repeat` copies of one trajectory: identity first, then seeded random symmetries. */
function copiesOf(ae: LoadedAutoencoder, repeat: number, seed: number): GridTransform[] {
  const random = new Rng(seed);
  return Array.from({ length: repeat }, (_, r) =>
    r === 0 ? IDENTITY_TRANSFORM : randomTransform(random, { periodic: ae.data.periodic, size: ae.data.spatialShape }),
  );
}

/**
 * Source: the encoded copies of the chosen trajectories of one file. Reads each trajectory once, frame block
 * by frame block, and encodes every copy of each block; holds one trajectory's latents per copy plus one block
 * of frames.
 */
export function encodeTrajectories(
  ae: LoadedAutoencoder,
  file: string,
  trajectories: number[],
  options: { repeat: number; seed: number; batchSize: number; logLabels: string[] },
): AsyncIterable<CachedTrajectory> {
  return {
    async *[Symbol.asyncIterator]() {
      const ds = await openWellDataset(file, { nIn: 1, nOut: 1 });
      const meta = ds.files[0]!;
      if (meta.layout.names.join() !== ae.data.layout.names.join()) {
        throw new Error(`${file}: channels [${meta.layout.names}] differ from the autoencoder's [${ae.data.layout.names}]`);
      }
      const labels = labelsFor(meta, options.logLabels);
      const [H, W] = ae.data.spatialShape;
      const C = ae.data.layout.names.length;
      const [h, w, c] = ae.latentShape;
      const geometry = channelGeometry(ae.data.layout);
      const frameSize = H * W * C;
      const latentSize = h * w * c;
      for await (const traj of ds.trajectories({ trajectories: trajectories.map((t) => ({ fileIndex: 0, trajectory: t })), framesPerRead: options.batchSize })) {
        const T = traj.nFrames;
        const copies = copiesOf(ae, options.repeat, options.seed * 1_000_003 + traj.origin.trajectory);
        const latents = copies.map(() => new Float32Array(T * latentSize));
        let block: Float32Array[] = [];
        let done = 0;
        const flush = () => {
          const n = block.length;
          const normalised = new Float32Array(n * frameSize);
          block.forEach((f, i) => normalised.set(ae.normalizer.normalize(f, traj.layout), i * frameSize));
          copies.forEach((transform, r) => {
            const moved = r === 0 ? normalised : applyTransform(normalised, [n, H, W, C], transform, geometry);
            latents[r]!.set(encodeFrames(ae, moved, n, options.batchSize), done * latentSize);
          });
          done += n;
          block = [];
        };
        for await (const frame of traj.frames) {
          block.push(frame.channels);
          if (block.length === options.batchSize) flush();
        }
        if (block.length > 0) flush();
        for (let r = 0; r < copies.length; r++) {
          yield {
            latents: latents[r]!,
            shape: [T, h, w, c],
            labels: labels.values,
            origin: { file: basename(file), trajectory: traj.origin.trajectory, augmentation: r, transform: describeTransform(copies[r]!, ae.data.spatialDims as [string, string]) },
          };
        }
      }
    },
  };
}

function stemOf(file: string): string {
  return basename(file).replace(/\.(hdf5|h5)$/, '');
}

export interface CacheResult {
  files: { split: string; path: string; trajectories: number; skipped: boolean }[];
}

/** Encodes the dataset's splits into `<run>/cache`. */
export async function cacheLatents(config: CacheConfig, run: RunDir, shard: Shard, signal?: AbortSignal): Promise<CacheResult> {
  if (!config.autoencoder) throw new ConfigError('autoencoder is not set: give the train-ae run directory (--ae DIR)');
  if (!config.data.root) throw new ConfigError('data.root is not set: give the dataset root (--data ROOT)');
  for (const [split, repeat] of Object.entries(config.splits)) {
    if (!Number.isInteger(repeat) || repeat < 0) throw new ConfigError(`splits.${split} must be a whole number of copies, got ${repeat}`);
  }
  const ae = await loadAutoencoder(config.autoencoder);
  await run.log('autoencoder', { id: ae.id, latentShape: ae.latentShape });
  const result: CacheResult = { files: [] };
  try {
    for (const [split, repeat] of Object.entries(config.splits)) {
      if (repeat === 0) continue;
      const files = await resolveWellFiles(wellSplitDir(config.data.root, split as 'train' | 'valid' | 'test'));
      for (const file of files) {
        const suffix = shard.count > 1 ? `.${shardTag(shard)}` : '';
        const path = run.path('cache', split, `${stemOf(file)}${suffix}.arrow`);
        if (existsSync(path)) {
          const info = await openLatentCache(path);
          if (info.autoencoder !== ae.id) {
            throw new Error(`${path} exists but was made by autoencoder ${info.autoencoder}, not ${ae.id}: remove it or use another run directory`);
          }
          result.files.push({ split, path, trajectories: info.trajectories, skipped: true });
          continue;
        }
        const ds = await openWellDataset(file, { nIn: 1, nOut: 1 });
        const meta = ds.files[0]!;
        const mine = Array.from({ length: meta.nTrajectories }, (_, t) => t).filter((t) => t % shard.count === shard.index);
        if (mine.length === 0) continue;
        const labels = labelsFor(meta, config.logLabels);
        const rows = pipe(
          encodeTrajectories(ae, file, mine, { repeat, seed: config.seed, batchSize: config.batchSize, logLabels: config.logLabels }),
          progress<CachedTrajectory>({ label: `cache ${split}/${stemOf(file)}`, total: mine.length * repeat }),
        );
        const written = await writeLatentCache(signal ? pipe(rows, abortable<CachedTrajectory>(signal)) : rows, {
          path,
          meta: {
            autoencoder: ae.id,
            normalisation: ae.normalization,
            labelNames: labels.names,
            split,
            source: basename(file),
            extra: { shard: `${shard.index}/${shard.count}`, repeat: String(repeat), trajectories_in_source: String(meta.nTrajectories) },
          },
        });
        await run.log('cached', { split, path, trajectories: written.trajectories });
        result.files.push({ split, path, trajectories: written.trajectories, skipped: false });
      }
    }
  } finally {
    ae.dcae.dispose();
  }
  return result;
}

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
export async function mergeCache(cacheDir: string): Promise<string[]> {
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
