/**
 * Job `eval`: for every test trajectory of the latent cache, roll out each emulator from the first `context`
 * encoded states, decode, pair with the simulated truth and score, as one pipe of public stages:
 *
 *   readLatentCache -> (plain copies, this shard's) -> rolloutLatents -> decodeStates -> withTruth
 *     -> [saveRollouts] -> [againstReconstruction] -> reportSink
 *
 * The autoencoder's own reconstruction of each trajectory is scored as the model "autoencoder" (the floor any
 * latent emulator sits on), and the baselines (persistence and the spatial-mean field, src/models/baselines.ts)
 * as models of their own names, computed from the truth by `withTruth`. With `guidance.operator` set, the
 * diffusion emulator is also rolled out with guidance on noisy observations of the truth, scored as the model
 * "diffusion+<method>" beside the unguided one. The emulators named in `againstReconstruction` are also scored
 * against the autoencoder's reconstruction instead of the truth, as "<model>-vs-ae". Holds one trajectory's latents and truth and one state per model at a time; the
 * reducers hold only their running sums.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { filter, map, pipe, progress, abortable, take } from '../../src/streams/index.js';
import { openWell, resolveWellFiles, wellSplitDir, type WellMeta } from '../../src/formats/well/index.js';
import { RESIDUAL_SYSTEMS, residualForWell, type ResidualSystem } from '../../src/physics/residuals/index.js';
import type { PdeResidual } from '../../src/physics/residuals/residual.js';
import { latentCacheFiles, openLatentCache, readLatentCache, type CachedTrajectory } from '../../src/formats/latent-cache/index.js';
import { loadAutoencoder, physicalDecoder, type LoadedAutoencoder } from '../../src/models/autoencoder.js';
import { type CovarianceName, guidance, type LinearSolverName } from '../../src/models/diffusion/guidance.js';
import {
  composeObservations, downscale, randomSensors, selectFields, sensorMask, subsample, type ObservationOperator, type StateLayout,
} from '../../src/physics/observe.js';
import { sensorSeed } from '../../src/streams/random.js';
import { loadEmulator, type LoadedEmulator, type SamplingOptions } from '../../src/models/emulators.js';
import { SAMPLER_NAMES } from '../../src/models/diffusion/samplers.js';
import { rolloutWorkers } from '../../src/models/worker-models.js';
import { againstReconstruction, decodeStates, rolloutLatents, truthObservations, withTruth, type GuidedModel } from '../../src/models/emulate.js';
import { BASELINES, checkBaselines } from '../../src/models/baselines.js';
import { mergeResults, parseBands, reduceMetrics, summarize, writeResults, readResults, type MetricsResult, type RolloutChunk } from '../../src/sinks/metrics/index.js';
import { reportSink, renderSavedReport } from '../../src/sinks/report/index.js';
import { saveRollouts } from '../../src/sinks/rollouts.js';
import { shardItems, shardTag, type Shard } from '../cli/shard.js';
import { ConfigError, type SettingDescriptions } from '../cli/config.js';
import type { RunDir } from '../cli/run-dir.js';
import { dataIdentity, readRunProvenance, readTrainingCurve, type Provenance, type TrainingCurve } from '../../src/sinks/provenance.js';
import { describeBackend, ensureBackend } from '../../src/models/backend/index.js';

/** The settings of `eval`; what each means is in `evaluateSettings` (shown by --help). */
export const evaluateDefaults = {
  autoencoder: '',
  cache: '',
  data: { root: '' },
  emulators: { surrogate: '', diffusion: '', student: '' },
  split: 'test',
  context: 1,
  ensemble: 16,
  workers: 0,
  horizon: 0,
  trajectories: 0,
  seed: 0,
  baselines: [...BASELINES] as string[],
  againstReconstruction: [] as string[],
  sampling: { sampler: '', steps: 0, order: 0 },
  bands: '1-20,21-60,61-100',
  convention: 'the_well',
  frameLog: false,
  residual: 'auto',
  saveRollouts: false,
  guidance: {
    operator: '',
    method: 'mmps',
    stride: 16,
    offset: 0,
    factor: 16,
    mask: '',
    sensors: 16,
    fields: '',
    noise: 0.1,
    iterations: 1,
    solver: 'gmres',
    covariance: 'tweedie',
    tweedieUpTo: 1,
    priorVariance: 1,
    scale: 1,
    every: 1,
  },
};
export type EvaluateConfig = typeof evaluateDefaults;

/** Settings that may change when an evaluation run directory is reused: they do not change its results. */
export const EVALUATE_MUTABLE = ['workers'];

export const evaluateSettings: SettingDescriptions<EvaluateConfig> = {
  autoencoder: 'train-ae run directory',
  cache: 'cache run directory (its split gives the initial states and labels)',
  data: { root: 'dataset root (the truth, in physical units)' },
  emulators: {
    surrogate: 'train-surrogate run directory ("": none)',
    diffusion: 'train-diffusion run directory ("": none)',
    student: 'distill run directory ("": none)',
  },
  split: 'split evaluated: "test", "valid" or "train"',
  context: 'states given as context (then carried over between emulator calls)',
  ensemble: 'ensemble members of the diffusion emulator and the student (the surrogate has one)',
  workers: 'worker threads rolling out the ensembles of the diffusion emulator and the student (0: one per core on wasm, none on TensorFlow or WebGPU; 1: the main thread); the scores do not depend on it',
  horizon: 'states rolled out (0: to the end of each trajectory)',
  trajectories: 'trajectories evaluated (0: all)',
  seed: 'seed of the ensemble noise',
  baselines: 'reference predictors scored beside the emulators: persistence, spatial-mean ([] for none)',
  againstReconstruction: 'models also scored against the autoencoder\'s reconstruction of the truth, as <model>-vs-ae (e.g. [diffusion]): the emulator\'s own error and calibration, without the reconstruction error that decoded members cannot spread over',
  sampling: {
    sampler: 'sampler of the diffusion emulator: "" (the one it was trained with), "ab", "euler", "heun" or "ddpm"',
    steps: 'denoising steps per sample (0: as trained)',
    order: 'order of the Adams-Bashforth sampler (0: as trained)',
  },
  bands: 'lead-time bands of the summary tables (from-to, comma-separated)',
  convention: 'metric epsilon convention: "the_well" (1e-7) or "lola" (1e-6)',
  frameLog: 'also write frames.csv, one line per scored frame',
  residual: 'PDE-residual metric: "auto" (the system the data\'s dataset name names; none, with a note, if unknown), "none", or euler, rayleigh-benard, darcy',
  saveRollouts: 'also save the decoded rollouts (truth, members, leads, origin) to results/rollouts/<model>.arrow',
  guidance: {
    operator: 'observation operator of the guided diffusion model: "" (none), "subsample", "downscale" or "mask"',
    method: 'guidance method: "mmps" or "dps"',
    stride: 'subsample: keep every stride-th pixel along both axes',
    offset: 'subsample: first kept pixel along both axes',
    factor: 'downscale: means over factor x factor blocks',
    mask: 'mask: a JSON file holding an H x W array of 0/1 (sensor positions); "": `sensors` random positions',
    sensors: 'mask: number of random sensor positions when no mask file is given',
    fields: 'observed fields, comma-separated ("": all)',
    noise: 'standard deviation of the observation noise, in physical units',
    iterations: 'mmps: iterations of the covariance solver',
    solver: 'mmps: covariance solver, "gmres" (robust to the indefinite covariance of a trained network) or "cg" (conjugate gradients)',
    covariance: 'mmps: covariance of the state given its noisy version, "tweedie" (the denoiser\'s Jacobian, as the reference) or "isotropic" (a white Gaussian prior\'s, no Jacobian)',
    tweedieUpTo: 'mmps with "tweedie": noise level sigma/alpha above which the isotropic covariance is used (0: none, Tweedie at every level; the default 1 keeps a trained network\'s Jacobian, magnified by sigma, out of the high-noise steps)',
    priorVariance: 'mmps: prior variance of the isotropic covariance (latents are standardised: 1)',
    scale: 'dps: guidance strength',
    every: 'observe every n-th lead from lead 1',
  },
};

interface Models {
  ae: LoadedAutoencoder;
  emulators: Record<string, LoadedEmulator>;
}

/** The observation operator the guidance settings describe, on the autoencoder's physical states. */
async function observationOperator(g: EvaluateConfig['guidance'], ae: LoadedAutoencoder, seed: number): Promise<ObservationOperator> {
  const all: StateLayout = { shape: ae.data.spatialShape, channels: ae.data.layout.names };
  const fields = g.fields.split(',').map((f) => f.trim()).filter((f) => f.length > 0);
  const select = fields.length > 0 ? [selectFields(all, fields)] : [];
  const input = select[0]?.output ?? all;
  const noise = { noise: g.noise };
  let op: ObservationOperator;
  if (g.operator === 'subsample') op = subsample(input, { stride: g.stride, offset: g.offset, ...noise });
  else if (g.operator === 'downscale') op = downscale(input, { factor: g.factor, ...noise });
  else if (g.operator === 'mask') {
    let mask: ArrayLike<number>;
    if (g.mask) {
      let grid: unknown;
      try {
        grid = JSON.parse(await readFile(g.mask, 'utf8'));
      } catch (err) {
        throw new ConfigError(`guidance.mask ${g.mask}: not a readable JSON file (${(err as Error).message})`);
      }
      const [H, W] = input.shape;
      if (!Array.isArray(grid) || grid.length !== H || grid.some((r) => !Array.isArray(r) || r.length !== W || r.some((v) => typeof v !== 'number'))) {
        throw new ConfigError(`guidance.mask ${g.mask}: expected an array of ${H} rows of ${W} numbers (1 where a sensor is)`);
      }
      mask = (grid as number[][]).flat();
    } else mask = randomSensors(input.shape, g.sensors, sensorSeed(seed));
    op = sensorMask(input, { mask, ...noise });
  } else throw new ConfigError(`guidance.operator must be "subsample", "downscale" or "mask", got "${g.operator}"`);
  return composeObservations(...select, op);
}

async function loadModels(config: EvaluateConfig): Promise<Models> {
  if (!config.autoencoder) throw new ConfigError('autoencoder is not set (--ae DIR)');
  if (!config.cache) throw new ConfigError('cache is not set (--cache DIR)');
  if (!config.data.root) throw new ConfigError('data.root is not set (--data ROOT)');
  const ae = await loadAutoencoder(config.autoencoder);
  const emulators: Models['emulators'] = {};
  for (const [name, dir] of Object.entries(config.emulators)) {
    if (!dir) continue;
    const loaded = await loadEmulator(dir, { autoencoder: ae, ...(name === 'diffusion' ? { sampling: samplingOverride(config) } : {}) });
    if (config.context >= loaded.window) throw new ConfigError(`context (${config.context}) must be smaller than the ${name} window (${loaded.window})`);
    emulators[name] = loaded;
  }
  return { ae, emulators };
}

/** The sampler settings `sampling` overrides ("" and 0 keep the trained emulator's). */
function samplingOverride(config: EvaluateConfig): Partial<SamplingOptions> {
  const { sampler, steps, order } = config.sampling;
  return { ...(sampler ? { sampler } : {}), ...(steps ? { steps } : {}), ...(order ? { order } : {}) };
}

/** Runs the evaluation into `<run>/results` (or `<run>/results/<shard tag>` for one shard). */
export async function evaluate(config: EvaluateConfig, run: RunDir, shard: Shard, signal?: AbortSignal): Promise<{ dir: string; result: MetricsResult }> {
  const bands = parseBands(config.bands);
  if (!Number.isInteger(config.workers) || config.workers < 0) throw new ConfigError(`workers must be an integer >= 0 (0: one per core on wasm), got ${config.workers}`);
  if (config.convention !== 'the_well' && config.convention !== 'lola') throw new ConfigError(`convention must be "the_well" or "lola", got "${config.convention}"`);
  if (config.guidance.operator && config.guidance.method !== 'mmps' && config.guidance.method !== 'dps') {
    throw new ConfigError(`guidance.method must be "mmps" or "dps", got "${config.guidance.method}"`);
  }
  if (config.guidance.operator && config.guidance.method === 'mmps' && config.guidance.solver !== 'gmres' && config.guidance.solver !== 'cg') {
    throw new ConfigError(`guidance.solver must be "gmres" or "cg", got "${config.guidance.solver}"`);
  }
  if (config.guidance.operator && config.guidance.method === 'mmps' && config.guidance.covariance !== 'tweedie' && config.guidance.covariance !== 'isotropic') {
    throw new ConfigError(`guidance.covariance must be "tweedie" or "isotropic", got "${config.guidance.covariance}"`);
  }
  if (config.guidance.operator && !config.emulators.diffusion) {
    throw new ConfigError(`guidance (${config.guidance.operator}) needs the diffusion emulator (--diffusion DIR): the surrogate and the student are deterministic maps with no denoiser to guide`);
  }
  let baselines;
  try {
    baselines = checkBaselines(config.baselines);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const { sampler, steps: samplerSteps, order } = config.sampling;
  if (sampler && !(SAMPLER_NAMES as readonly string[]).includes(sampler)) throw new ConfigError(`sampling.sampler must be "" or one of ${SAMPLER_NAMES.join(', ')}, got "${sampler}"`);
  for (const [key, v] of [['steps', samplerSteps], ['order', order]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`sampling.${key} must be an integer >= 0 (0: as trained), got ${v}`);
  }
  if ((sampler || samplerSteps || order) && !config.emulators.diffusion) throw new ConfigError('sampling overrides the diffusion emulator\'s sampler, but emulators.diffusion is not set');
  const vsAe = config.againstReconstruction;
  const known = Object.keys(evaluateDefaults.emulators);
  for (const m of vsAe) {
    if (!known.includes(m)) throw new ConfigError(`againstReconstruction: "${m}" is not an emulator (${known.join(', ')})`);
    if (!config.emulators[m as keyof EvaluateConfig['emulators']]) throw new ConfigError(`againstReconstruction names ${m}, but emulators.${m} is not set`);
  }
  const models = await loadModels(config);
  const cacheFiles = await latentCacheFiles(config.cache, config.split);
  for (const f of cacheFiles) {
    const info = await openLatentCache(f);
    if (info.autoencoder !== models.ae.id) throw new Error(`${f} was made by autoencoder ${info.autoencoder}, not ${models.ae.id}: re-run the cache step`);
  }
  const truthDir = wellSplitDir(config.data.root, config.split as 'train' | 'valid' | 'test');
  if (!existsSync(truthDir)) throw new ConfigError(`data.root ${config.data.root}: no ${config.split} split at ${truthDir}`);
  let operator: ObservationOperator | undefined;
  try {
    if (config.guidance.operator) operator = await observationOperator(config.guidance, models.ae, config.seed);
  } catch (err) {
    models.ae.dispose();
    for (const e of Object.values(models.emulators)) e.dispose();
    throw err instanceof ConfigError ? err : new ConfigError(`guidance: ${(err as Error).message}`);
  }
  // the truth's first file: its metadata gives the residual's grid, dt, boundaries and parameters, and the report's dt
  const [truthFile] = await resolveWellFiles(truthDir);
  if (!truthFile) throw new ConfigError(`${truthDir}: no Well files`);
  const truthMeta = await openWell(truthFile);
  const residual = residualOf(config.residual, truthMeta, truthFile);
  // Everything is validated: from here on the run directory is written.
  const backend = await ensureBackend();
  console.error(describeBackend(backend));
  await run.log('backend', { backend: backend.name, gpu: backend.gpu, ...(backend.adapter ? { adapter: backend.adapter } : {}) });
  const rolloutThreads = Math.min(rolloutWorkers(config.workers, backend), config.ensemble);
  await run.log('rollout workers', { workers: rolloutThreads > 1 ? rolloutThreads : 0, note: rolloutThreads > 1 ? 'ensembles on worker threads' : 'ensembles on the main thread' });
  if (residual.note) console.error(residual.note);
  await run.describe({ backend, data: await dataIdentity(config.data.root) });

  /** This shard's test trajectories (plain copies only), in cache order. */
  const rows = () =>
    pipe(
      readLatentCache(cacheFiles, { autoencoder: models.ae.id, copy: true }),
      filter((row: CachedTrajectory) => row.origin.augmentation === 0, 'plain-copies'),
      config.trajectories > 0 ? take<CachedTrajectory>(config.trajectories) : (all: AsyncIterable<CachedTrajectory>) => all,
      shardItems<CachedTrajectory>(shard),
    );
  const guided: Record<string, GuidedModel> = {};
  if (operator) {
    const g = config.guidance;
    guided[`diffusion+${g.method}`] = {
      emulator: models.emulators.diffusion!,
      guidance: guidance(g.method, {
        iterations: g.iterations,
        solver: g.solver as LinearSolverName,
        covariance: g.covariance as CovarianceName,
        tweedieUpTo: g.tweedieUpTo > 0 ? g.tweedieUpTo : Infinity,
        priorVariance: g.priorVariance,
        scale: g.scale,
      }),
      operator,
      decoder: physicalDecoder(models.ae),
      observations: truthObservations(truthDir, operator, { context: config.context, seed: config.seed, every: g.every }),
    };
    await run.log('guidance', {
      model: `diffusion+${g.method}`,
      operator: operator.name,
      values: operator.size,
      noise: g.noise,
      every: g.every,
      ...(g.method === 'mmps'
        ? { solver: g.solver, iterations: g.iterations, covariance: g.covariance, ...(g.covariance === 'tweedie' && g.tweedieUpTo > 0 ? { tweedieUpTo: g.tweedieUpTo } : {}), ...(g.covariance === 'isotropic' || g.tweedieUpTo > 0 ? { priorVariance: g.priorVariance } : {}) }
        : { scale: g.scale }),
    });
  }
  /** States this shard scores: per trajectory, its horizon times the models (reconstruction, emulators, guided models, baselines). */
  const countStates = async (): Promise<number> => {
    let states = 0;
    const perRow = 1 + Object.keys(models.emulators).length + Object.keys(guided).length + baselines.length + vsAe.length;
    for await (const row of rows()) {
      const T = row.shape[0];
      states += perRow * (config.horizon > 0 ? Math.min(config.horizon, T - config.context) : T - config.context);
    }
    return states;
  };

  const chunks = pipe(
    rows(),
    rolloutLatents(models.emulators, { context: config.context, horizon: config.horizon, ensemble: config.ensemble, seed: config.seed, reconstruct: true, guided, workers: rolloutThreads }),
    decodeStates(models.ae),
    withTruth(truthDir, { context: config.context, baselines }),
  );
  const dir = shard.count > 1 ? run.path('results', shardTag(shard)) : run.path('results');
  const rolloutsDir = join(dir, 'rollouts');
  const kept = config.saveRollouts ? pipe(chunks, saveRollouts(rolloutsDir, { context: config.context })) : chunks;
  const saved = vsAe.length > 0 ? pipe(kept, againstReconstruction(vsAe)) : kept;
  let scored = 0;
  const total = await countStates();
  const source = pipe(saved, progress<RolloutChunk>({ label: 'eval states', total, intervalMs: 5000 }));
  const counted = pipe(source, map((c: RolloutChunk) => (scored++, c)));
  const title = `wellspring evaluation (${config.split} split, context ${config.context})`;
  const context = await evaluationContext(config, run, truthMeta);
  try {
    if (total === 0) {
      // An empty shard (more shards than trajectories) still leaves a results file for the merge step.
      const empty = summarize(await reduceMetrics([], { convention: config.convention as 'the_well' | 'lola' }), { title, bands, ...context });
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
      ...context,
    });
    await run.log('results', { dir, models: out.saved.result.models, states: scored, ...(config.saveRollouts ? { rollouts: rolloutsDir } : {}) });
    return { dir, result: out.saved.result };
  } finally {
    models.ae.dispose();
    for (const e of Object.values(models.emulators)) e.dispose();
  }
}

/**
 * The residual operator of the `residual` setting for data described by `meta` (the grid, dt, boundaries and
 * parameters of the truth's first file, `file`). "auto" falls back to none, with a note, for a system without one.
 */
function residualOf(setting: string, meta: WellMeta, file: string): { operator?: PdeResidual; note?: string } {
  if (setting === 'none') return {};
  if (setting !== 'auto' && !RESIDUAL_SYSTEMS.includes(setting as ResidualSystem)) {
    throw new ConfigError(`residual must be auto, none or one of ${RESIDUAL_SYSTEMS.join(', ')}; got "${setting}"`);
  }
  try {
    const operator = setting === 'auto' ? residualForWell(meta) : residualForWell(meta, setting as ResidualSystem);
    return { operator, note: `PDE residual: ${operator.name} (${operator.equations.join(', ')}), from ${file}` };
  } catch (err) {
    if (setting !== 'auto') throw new ConfigError(`residual ${setting}: ${(err as Error).message}`);
    return { note: `PDE residual: none (${(err as Error).message})` };
  }
}

/**
 * What the results carry besides the scores: the provenance of this evaluation and of every run it read (by
 * name: eval, autoencoder, cache, and each emulator), the training curves of the autoencoder and the emulators
 * (named as their models in the results), and the data's time step (from the truth's first file).
 */
async function evaluationContext(
  config: EvaluateConfig,
  run: RunDir,
  truth: Pick<WellMeta, 'time'>,
): Promise<{ provenance: Record<string, Provenance>; curves: TrainingCurve[]; dt?: number }> {
  const provenance: Record<string, Provenance> = { eval: run.provenance() };
  const curves: TrainingCurve[] = [];
  const runs: [string, string][] = [['autoencoder', config.autoencoder], ['cache', config.cache], ...Object.entries(config.emulators).filter(([, dir]) => dir)];
  for (const [name, dir] of runs) {
    const p = await readRunProvenance(dir);
    if (p) provenance[name] = p;
    if (name === 'cache') continue;
    const curve = await readTrainingCurve(dir, name);
    if (curve) curves.push(curve);
  }
  const { time } = truth;
  const dt = time.length > 1 ? time[1]! - time[0]! : undefined;
  return { provenance, curves, ...(dt !== undefined && dt > 0 ? { dt } : {}) };
}

/** Merges `<run>/results/shard-*` into `<run>/results` and renders the report. */
export async function mergeEvaluation(runDir: string, bandsText: string): Promise<string> {
  const base = join(runDir, 'results');
  const shards = (await readdir(base)).filter((d) => d.startsWith('shard-')).sort();
  if (shards.length === 0) throw new Error(`${base}: no shard-* result directories to merge`);
  const count = Number(/of-(\d+)/.exec(shards[0]!)![1]);
  if (shards.length !== count) throw new Error(`${base}: ${shards.length} of ${count} shard results present; run the missing shards first`);
  const saved = await Promise.all(shards.map((s) => readResults(join(base, s))));
  const first = saved[0]!;
  const merged = summarize(mergeResults(saved.map((s) => s.result)), { title: first.title, bands: parseBands(bandsText), provenance: first.provenance, curves: first.curves, dt: first.dt });
  await writeResults(base, merged);
  const { report } = await renderSavedReport(merged, base);
  return report;
}
