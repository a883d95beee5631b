/**
 * Evaluation: for every test trajectory of the latent cache, roll out each emulator from the first `context`
 * encoded states, decode each predicted state, return it to physical units, and pipe it with the simulated truth
 * into the metric sinks and the report. The autoencoder's own reconstruction of the trajectory is scored as the
 * model "autoencoder" (the floor any latent emulator sits on). Holds one trajectory's latents and one state per
 * model at a time; the reducers hold only their running sums.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { map, pipe, progress, abortable } from '../src/streams/index.js';
import { openWellDataset, wellSplitDir } from '../src/streams/well/index.js';
import { openLatentCache, readLatentCache, type CachedTrajectory } from '../src/streams/latent-cache.js';
import { rollout } from '../src/models/diffusion/index.js';
import { mergeResults, parseBands, reduceMetrics, summarize, writeResults, readResults, type MetricsResult, type RolloutChunk } from '../src/sinks/metrics/index.js';
import { reportSink, renderSavedReport } from '../src/sinks/report/index.js';
import { decodeLatents, loadAutoencoder, type LoadedAutoencoder } from './autoencoder.js';
import { loadEmulator, type LoadedEmulator } from './emulator.js';
import { shardTag, type Shard } from './shard.js';
import { ConfigError } from './config.js';
import type { RunDir } from './run-dir.js';

export const evaluateDefaults = {
  /** train-ae run directory. */
  autoencoder: '',
  /** cache run directory (its test split gives the initial states and labels). */
  cache: '',
  /** Dataset root (the truth, in physical units). */
  data: { root: '' },
  /** Emulator run directories; an empty one is skipped. */
  emulators: { surrogate: '', diffusion: '' },
  split: 'test',
  /** States given as context (then carried over between emulator calls). */
  context: 1,
  /** Diffusion ensemble members (the surrogate always has one). */
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
};
export type EvaluateConfig = typeof evaluateDefaults;

interface Models {
  ae: LoadedAutoencoder;
  emulators: { name: string; loaded: LoadedEmulator }[];
}

/** Physical-unit frames (N, H, W, C) of N latent states (N, h, w, c). */
function toPhysical(ae: LoadedAutoencoder, latents: Float32Array, n: number): Float32Array {
  return ae.normalizer.denormalize(decodeLatents(ae, latents, n), ae.data.layout);
}

/** Splits (N, ...) into N views. */
function frames(data: Float32Array, n: number): Float32Array[] {
  const size = data.length / n;
  return Array.from({ length: n }, (_, i) => data.subarray(i * size, (i + 1) * size));
}

/**
 * Source of metric chunks for one cached test trajectory: its truth frames, the autoencoder reconstruction, and
 * each emulator's rollout, state by state.
 */
async function* trajectoryChunks(models: Models, row: CachedTrajectory, truthFile: string, config: EvaluateConfig): AsyncGenerator<RolloutChunk> {
  const { ae } = models;
  const [T, h, w, c] = row.shape;
  const context = config.context;
  const horizon = config.horizon > 0 ? Math.min(config.horizon, T - context) : T - context;
  if (horizon < 1) throw new ConfigError(`context (${context}) leaves no state to predict in trajectories of ${T} states`);
  const latentSize = h * w * c;
  const fields = ae.data.layout.names;
  const spatialShape = ae.data.spatialShape;
  const id = `${row.origin.file}#${row.origin.trajectory}`;

  // The truth, streamed frame by frame from the Well file, from the first predicted state on.
  const ds = await openWellDataset(truthFile, { nIn: 1, nOut: 1 });
  const truth: Float32Array[] = [];
  for await (const traj of ds.trajectories({ trajectories: [{ fileIndex: 0, trajectory: row.origin.trajectory }], start: context })) {
    for await (const frame of traj.frames) {
      if (truth.length < horizon) truth.push(frame.channels.slice());
    }
  }

  // Autoencoder reconstruction of the same states.
  const recon = frames(toPhysical(ae, row.latents.subarray(context * latentSize, (context + horizon) * latentSize), horizon), horizon);
  for (let k = 0; k < horizon; k++) {
    yield { model: 'autoencoder', trajectory: id, fields, spatialShape, lead: k + 1, truth: truth[k]!, ensemble: [recon[k]!] };
  }

  for (const { name, loaded } of models.emulators) {
    const members = loaded.kind === 'diffusion' ? config.ensemble : 1;
    const states = rollout(
      loaded.emulator,
      { states: row.latents.subarray(0, context * latentSize), shape: [context, h, w, c], labels: row.labels.length > 0 ? row.labels : null, id },
      { horizon, window: loaded.window, context, ensemble: members, seed: (config.seed * 7919 + row.origin.trajectory) >>> 0 },
    );
    for await (const state of states) {
      const physical = frames(toPhysical(ae, state.states, members), members);
      yield { model: name, trajectory: id, fields, spatialShape, lead: state.lead, truth: truth[state.lead - 1]!, ensemble: physical };
    }
  }
}

async function loadModels(config: EvaluateConfig): Promise<Models> {
  if (!config.autoencoder) throw new ConfigError('autoencoder is not set (--ae DIR)');
  if (!config.cache) throw new ConfigError('cache is not set (--cache DIR)');
  if (!config.data.root) throw new ConfigError('data.root is not set (--data ROOT)');
  const ae = await loadAutoencoder(config.autoencoder);
  const emulators: Models['emulators'] = [];
  for (const [name, dir] of Object.entries(config.emulators)) {
    if (!dir) continue;
    const loaded = await loadEmulator(dir);
    if (loaded.autoencoder !== ae.id) {
      throw new Error(`emulator ${dir} was trained on latents of autoencoder ${loaded.autoencoder}, not ${ae.id} (${config.autoencoder})`);
    }
    if (config.context >= loaded.window) throw new ConfigError(`context (${config.context}) must be smaller than the ${name} window (${loaded.window})`);
    emulators.push({ name, loaded });
  }
  return { ae, emulators };
}

/** Runs the evaluation into `<run>/results` (or `<run>/results/<shard tag>` for one shard). */
export async function evaluate(config: EvaluateConfig, run: RunDir, shard: Shard, signal?: AbortSignal): Promise<{ dir: string; result: MetricsResult }> {
  const bands = parseBands(config.bands);
  if (config.convention !== 'the_well' && config.convention !== 'lola') throw new ConfigError(`convention must be "the_well" or "lola", got "${config.convention}"`);
  const models = await loadModels(config);
  const cacheDir = join(config.cache, 'cache', config.split);
  if (!existsSync(cacheDir)) throw new Error(`latent cache ${config.cache}: no ${config.split} split at ${cacheDir}`);
  const cacheFiles = (await readdir(cacheDir)).filter((f) => f.endsWith('.arrow') && !f.includes('.shard-')).sort().map((f) => join(cacheDir, f));
  for (const f of cacheFiles) {
    const info = await openLatentCache(f);
    if (info.autoencoder !== models.ae.id) throw new Error(`${f} was made by autoencoder ${info.autoencoder}, not ${models.ae.id}: re-run the cache step`);
  }
  const truthDir = wellSplitDir(config.data.root, config.split as 'train' | 'valid' | 'test');
  const limit = config.trajectories > 0 ? config.trajectories : Infinity;

  /** This shard's test trajectories (plain copies only), in cache order. */
  async function* rows(): AsyncGenerator<CachedTrajectory> {
    let k = 0;
    for await (const row of readLatentCache(cacheFiles, { autoencoder: models.ae.id, copy: true })) {
      if (row.origin.augmentation !== 0) continue;
      if (k >= limit) break;
      if (k++ % shard.count === shard.index) yield row;
    }
  }
  const hasTrajectories = async (): Promise<boolean> => {
    for await (const _ of rows()) return true;
    return false;
  };
  async function* chunks(): AsyncGenerator<RolloutChunk> {
    for await (const row of rows()) yield* trajectoryChunks(models, row, join(truthDir, row.origin.file), config);
  }
  const dir = shard.count > 1 ? run.path('results', shardTag(shard)) : run.path('results');
  let scored = 0;
  const source = pipe(chunks(), progress<RolloutChunk>({ label: 'eval states', intervalMs: 5000}));
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
    });
    await run.log('results', { dir, models: out.saved.result.models, states: scored });
    return { dir, result: out.saved.result };
  } finally {
    models.ae.dcae.dispose();
    for (const e of models.emulators) e.loaded.vit.dispose();
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
