/**
 * Job `eval`: for every test trajectory of the latent cache, roll out each emulator from the first `context`
 * encoded states, decode, pair with the simulated truth and score, as one pipe of public stages:
 *
 *   readLatentCache -> (plain copies, this shard's) -> rolloutLatents -> decodeStates -> withTruth
 *     -> [saveRollouts] -> reportSink
 *
 * The autoencoder's own reconstruction of each trajectory is scored as the model "autoencoder" (the floor any
 * latent emulator sits on). Holds one trajectory's latents and truth and one state per model at a time; the
 * reducers hold only their running sums.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { filter, map, pipe, progress, abortable, take } from '../../src/streams/index.js';
import { openWell, resolveWellFiles, wellSplitDir } from '../../src/formats/well/index.js';
import { RESIDUAL_SYSTEMS, residualForWell, type ResidualSystem } from '../../src/physics/residuals/index.js';
import type { PdeResidual } from '../../src/physics/residuals/residual.js';
import { latentCacheFiles, openLatentCache, readLatentCache, type CachedTrajectory } from '../../src/formats/latent-cache/index.js';
import { loadAutoencoder, type LoadedAutoencoder } from '../../src/models/autoencoder.js';
import { loadEmulator, type LoadedEmulator } from '../../src/models/emulators.js';
import { decodeStates, rolloutLatents, withTruth } from '../../src/models/emulate.js';
import { mergeResults, parseBands, reduceMetrics, summarize, writeResults, readResults, type MetricsResult, type RolloutChunk } from '../../src/sinks/metrics/index.js';
import { reportSink, renderSavedReport } from '../../src/sinks/report/index.js';
import { saveRollouts } from '../../src/sinks/rollouts.js';
import { shardItems, shardTag, type Shard } from '../cli/shard.js';
import { ConfigError } from '../cli/config.js';
import type { RunDir } from '../cli/run-dir.js';
import { describeBackend, ensureBackend } from '../../src/models/backend/index.js';

export const evaluateDefaults = {
  /** train-ae run directory. */
  autoencoder: '',
  /** cache run directory (its test split gives the initial states and labels). */
  cache: '',
  /** Dataset root (the truth, in physical units). */
  data: { root: '' },
  /** Emulator run directories; an empty one is skipped. */
  emulators: { surrogate: '', diffusion: '', student: '' },
  split: 'test',
  /** States given as context (then carried over between emulator calls). */
  context: 1,
  /** Ensemble members of the diffusion emulator and the student (the surrogate always has one). */
  ensemble: 16,
  /** States rolled out (0: to the end of each trajectory). */
  horizon: 0,
  /** Test trajectories evaluated (0: all). */
  trajectories: 0,
  seed: 0,
  /** Lead-time bands of the summary tables. */
  bands: '1-20,21-60,61-100',
  convention: 'the_well',
  /** Also write frames.csv, one line per scored frame. */
  frameLog: false,
  /**
   * PDE residual metric: "auto" (the system the dataset's name names, skipped with a note when none is known),
   * "none", or a system: euler, rayleigh-benard, darcy.
   */
  residual: 'auto',
  /** Also save the decoded rollouts (truth, members, leads, origin) to results/rollouts/<model>.arrow. */
  saveRollouts: false,
};
export type EvaluateConfig = typeof evaluateDefaults;

interface Models {
  ae: LoadedAutoencoder;
  emulators: Record<string, LoadedEmulator>;
}

async function loadModels(config: EvaluateConfig): Promise<Models> {
  if (!config.autoencoder) throw new ConfigError('autoencoder is not set (--ae DIR)');
  if (!config.cache) throw new ConfigError('cache is not set (--cache DIR)');
  if (!config.data.root) throw new ConfigError('data.root is not set (--data ROOT)');
  const ae = await loadAutoencoder(config.autoencoder);
  const emulators: Models['emulators'] = {};
  for (const [name, dir] of Object.entries(config.emulators)) {
    if (!dir) continue;
    const loaded = await loadEmulator(dir, { autoencoder: ae });
    if (config.context >= loaded.window) throw new ConfigError(`context (${config.context}) must be smaller than the ${name} window (${loaded.window})`);
    emulators[name] = loaded;
  }
  return { ae, emulators };
}

/** Runs the evaluation into `<run>/results` (or `<run>/results/<shard tag>` for one shard). */
export async function evaluate(config: EvaluateConfig, run: RunDir, shard: Shard, signal?: AbortSignal): Promise<{ dir: string; result: MetricsResult }> {
  const bands = parseBands(config.bands);
  if (config.convention !== 'the_well' && config.convention !== 'lola') throw new ConfigError(`convention must be "the_well" or "lola", got "${config.convention}"`);
  const models = await loadModels(config);
  const cacheFiles = await latentCacheFiles(config.cache, config.split);
  for (const f of cacheFiles) {
    const info = await openLatentCache(f);
    if (info.autoencoder !== models.ae.id) throw new Error(`${f} was made by autoencoder ${info.autoencoder}, not ${models.ae.id}: re-run the cache step`);
  }
  const truthDir = wellSplitDir(config.data.root, config.split as 'train' | 'valid' | 'test');
  if (!existsSync(truthDir)) throw new ConfigError(`data.root ${config.data.root}: no ${config.split} split at ${truthDir}`);
  const residual = await residualOf(config.residual, truthDir);
  // Everything is validated: from here on the run directory is written.
  const backend = await ensureBackend();
  console.error(describeBackend(backend));
  await run.log('backend', { backend: backend.name, gpu: backend.gpu });
  if (residual.note) console.error(residual.note);

  /** This shard's test trajectories (plain copies only), in cache order. */
  const rows = () =>
    pipe(
      readLatentCache(cacheFiles, { autoencoder: models.ae.id, copy: true }),
      filter((row: CachedTrajectory) => row.origin.augmentation === 0, 'plain-copies'),
      config.trajectories > 0 ? take<CachedTrajectory>(config.trajectories) : (all: AsyncIterable<CachedTrajectory>) => all,
      shardItems<CachedTrajectory>(shard),
    );
  const hasTrajectories = async (): Promise<boolean> => {
    for await (const _ of rows()) return true;
    return false;
  };
  const chunks = pipe(
    rows(),
    rolloutLatents(models.emulators, { context: config.context, horizon: config.horizon, ensemble: config.ensemble, seed: config.seed, reconstruct: true }),
    decodeStates(models.ae),
    withTruth(truthDir, { context: config.context }),
  );
  const dir = shard.count > 1 ? run.path('results', shardTag(shard)) : run.path('results');
  const rolloutsDir = join(dir, 'rollouts');
  const saved = config.saveRollouts ? pipe(chunks, saveRollouts(rolloutsDir, { context: config.context })) : chunks;
  let scored = 0;
  const source = pipe(saved, progress<RolloutChunk>({ label: 'eval states', intervalMs: 5000 }));
  const counted = pipe(source, map((c: RolloutChunk) => (scored++, c)));
  const title = `wellspring evaluation (${config.split} split, context ${config.context})`;
  try {
    if (!(await hasTrajectories())) {
      // An empty shard (more shards than trajectories) still leaves a results file for the merge step.
      const empty = summarize(await reduceMetrics([], { convention: config.convention as 'the_well' | 'lola' }), { title, bands });
      await writeResults(dir, empty);
      await run.log('results', { dir, models: [], note: 'no trajectories in this shard' });
      return { dir, result: empty.result };
    }
    const out = await reportSink(signal ? pipe(counted, abortable<RolloutChunk>(signal)) : counted, {
      dir,
      title,
      bands,
      convention: config.convention as 'the_well' | 'lola',
      frameLog: config.frameLog,
      residual: residual.operator,
    });
    await run.log('results', { dir, models: out.saved.result.models, states: scored, ...(config.saveRollouts ? { rollouts: rolloutsDir } : {}) });
    return { dir, result: out.saved.result };
  } finally {
    models.ae.dispose();
    for (const e of Object.values(models.emulators)) e.dispose();
  }
}

/**
 * The residual operator of the `residual` setting for the data in `truthDir` (its first file's metadata gives
 * the grid, dt, boundaries and parameters). "auto" falls back to none, with a note, for a system without one.
 */
async function residualOf(setting: string, truthDir: string): Promise<{ operator?: PdeResidual; note?: string }> {
  if (setting === 'none') return {};
  if (setting !== 'auto' && !RESIDUAL_SYSTEMS.includes(setting as ResidualSystem)) {
    throw new ConfigError(`residual must be auto, none or one of ${RESIDUAL_SYSTEMS.join(', ')}; got "${setting}"`);
  }
  const [file] = await resolveWellFiles(truthDir);
  if (!file) throw new ConfigError(`${truthDir}: no Well files`);
  const meta = await openWell(file);
  try {
    const operator = setting === 'auto' ? residualForWell(meta) : residualForWell(meta, setting as ResidualSystem);
    return { operator, note: `PDE residual: ${operator.name} (${operator.equations.join(', ')}), from ${file}` };
  } catch (err) {
    if (setting !== 'auto') throw new ConfigError(`residual ${setting}: ${(err as Error).message}`);
    return { note: `PDE residual: none (${(err as Error).message})` };
  }
}

/** Merges `<run>/results/shard-*` into `<run>/results` and renders the report. */
export async function mergeEvaluation(runDir: string, bandsText: string): Promise<string> {
  const base = join(runDir, 'results');
  const shards = (await readdir(base)).filter((d) => d.startsWith('shard-')).sort();
  if (shards.length === 0) throw new Error(`${base}: no shard-* result directories to merge`);
  const count = Number(/of-(\d+)/.exec(shards[0]!)![1]);
  if (shards.length !== count) throw new Error(`${base}: ${shards.length} of ${count} shard results present; run the missing shards first`);
  const saved = await Promise.all(shards.map((s) => readResults(join(base, s))));
  const merged = summarize(mergeResults(saved.map((s) => s.result)), { title: saved[0]!.title, bands: parseBands(bandsText) });
  await writeResults(base, merged);
  const { report } = await renderSavedReport(merged, base);
  return report;
}
