/**
 * Job `cache`: every trajectory of every split is read frame by frame, augmented in physical units (`repeat`
 * copies with distinct symmetry transforms, the first one plain), normalised, encoded by the trained autoencoder and written to
 * `<run>/cache/<split>/<file stem>.arrow`, one Arrow file per source file and split: a pipe of
 * `wellTrajectories` -> `encodeTrajectories` -> `writeLatentCache`. With `--shard i/n` each process takes every
 * n-th trajectory and writes `<stem>.shard-i-of-n.arrow`; `mergeLatentCacheShards` then joins the shards.
 * Existing output files are kept (a rerun finishes an interrupted job).
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { pipe, progress, abortable } from '../../src/streams/index.js';
import { DEFAULT_LOG_LABELS, openWellDataset, resolveWellFiles, wellLabels, wellSplitDir, wellTrajectories } from '../../src/formats/well/index.js';
import { openLatentCache, writeLatentCache, type CachedTrajectory } from '../../src/formats/latent-cache/index.js';
import { encodeTrajectories, loadAutoencoder } from '../../src/models/autoencoder.js';
import { shardTag, type Shard } from '../cli/shard.js';
import type { RunDir } from '../cli/run-dir.js';
import { describeBackend, ensureBackend } from '../../src/models/backend/index.js';
import { ConfigError, type SettingDescriptions } from '../cli/config.js';
import { dataIdentity } from '../../src/sinks/provenance.js';

/** The settings of `cache`; what each means is in `cacheSettings` (shown by --help). */
export const cacheDefaults = {
  autoencoder: '',
  data: { root: '' },
  splits: { train: 4, valid: 1, test: 1 },
  logLabels: [...DEFAULT_LOG_LABELS],
  batchSize: 16,
  seed: 0,
};
export type CacheConfig = typeof cacheDefaults;

export const cacheSettings: SettingDescriptions<CacheConfig> = {
  autoencoder: 'train-ae run directory',
  data: { root: 'dataset root holding data/{train,valid,test}' },
  splits: {
    train: 'copies of each train trajectory (the first plain, the others augmented with grid symmetries; 0: skip)',
    valid: 'copies of each valid trajectory (0: skip the split)',
    test: 'copies of each test trajectory (0: skip the split)',
  },
  logLabels: 'simulation parameters given to the emulators as log10 (positive, spanning decades)',
  batchSize: 'frames encoded per autoencoder call',
  seed: 'seed of the augmentations',
};

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
  if (!existsSync(config.data.root)) throw new ConfigError(`data.root ${config.data.root}: no such directory`);
  const ae = await loadAutoencoder(config.autoencoder);
  const backend = await ensureBackend();
  console.error(describeBackend(backend));
  await run.log('backend', { backend: backend.name, gpu: backend.gpu, ...(backend.adapter ? { adapter: backend.adapter } : {}) });
  await run.describe({ backend, data: await dataIdentity(config.data.root) });
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
        const labels = wellLabels(meta, config.logLabels);
        const rows = pipe(
          wellTrajectories(file, { nIn: 1, nOut: 1, trajectories: mine.map((trajectory) => ({ fileIndex: 0, trajectory })), framesPerRead: config.batchSize }),
          encodeTrajectories(ae, { repeat, seed: config.seed, batchSize: config.batchSize, logLabels: config.logLabels }),
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
    ae.dispose();
  }
  return result;
}
