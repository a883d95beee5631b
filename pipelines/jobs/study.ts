/**
 * Job `study`: the shape of the reference study's main table on built-in data. A composition of the other jobs:
 * simulate a dataset, train autoencoders at several compression rates (latent channel counts), cache each one's
 * latents, train a deterministic surrogate and a diffusion emulator on every cache for every seed, evaluate each
 * (compression, seed) with the baselines, and tabulate VRMSE and spread/skill by lead band, mean +- std over seeds,
 * per compression and model (src/sinks/metrics/study.ts), with a report (src/sinks/report/study.ts).
 *
 * Layout under the study's directory `run`:
 *
 *   study.json                       the resolved configuration (a rerun with another one is refused)
 *   data/                            generate
 *   latent-<c>/ae, latent-<c>/cache  train-ae and cache of the autoencoder with c latent channels
 *   latent-<c>/seed-<s>/{surrogate,diffusion,eval}
 *   steps/<step>.json                one marker per finished step (what a rerun skips)
 *   results/                         table.md, table.json, report.html
 *
 * Steps come in stages, each needing the previous ones: data, ae, cache, emulators, eval, table. Every step runs
 * its job in its own run directory, so an interrupted step resumes where it stopped and finished steps are
 * skipped. `shard` deals each stage's steps round-robin (step k of a stage to shard k mod n): a Slurm array runs
 * the whole study with `--shard`, each task waiting for the steps of earlier stages that other tasks run (polling
 * their markers), or one stage at a time with `stage` (then a missing earlier step is an error, not a wait).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { BASELINES } from '../../src/models/baselines.js';
import { formatStudyTable, readResults, studyTable, type StudyEvaluation, type StudyTable } from '../../src/sinks/metrics/index.js';
import { renderStudyReport } from '../../src/sinks/report/index.js';
import { generateDataset } from './generate.js';
import { trainAeDefaults, trainAutoencoder } from './train-ae.js';
import { cacheDefaults, cacheLatents } from './cache.js';
import { TRAIN_EMULATOR_RUN_OPTIONS, trainEmulator, trainEmulatorDefaults } from './train-emulator.js';
import { TRAIN_RUN_OPTIONS } from './training.js';
import { evaluate, evaluateDefaults, EVALUATE_MUTABLE } from './evaluate.js';
import { configDifferences, openRunDir } from '../cli/run-dir.js';
import { ConfigError, type ConfigObject } from '../cli/config.js';
import type { Shard } from '../cli/shard.js';

/**
 * The default preset: the demo's recipe (autoencoder lr 5e-4 for 1200 steps, emulators lr 2e-3, from the sweeps in
 * README's demo section) with the emulators at 1000 steps, sized to about an hour on 2 cores. Measured on the
 * development machine (2026-11-30, stage by stage): data 0.1 min, 3 autoencoders 9.2 min, caches 0.3 min,
 * 3 x 3 surrogates and diffusion emulators 46.6 min, 9 evaluations 4.1 min.
 */
export const studyDefaults = {
  /** euler or rayleigh-benard. */
  system: 'euler',
  /** Grid: euler N x N cells, rayleigh-benard 4N x N (N = resolution of the system run). */
  data: { resolution: { euler: 32, rayleighBenard: 16 }, trajectories: 40, steps: 41, seed: 0 },
  /** Latent channels of the autoencoders, one per compression rate (4x apart, as the reference's 80x/320x/1280x). */
  latentChannels: [16, 4, 1],
  /** Seeds of the emulators' training and of the evaluation's rollouts (the autoencoders use train seed 0). */
  seeds: [0, 1, 2],
  autoencoder: { steps: 1200, batchSize: 16, lr: 5e-4, channels: [16, 32, 64, 128] },
  cache: { trainCopies: 2 },
  surrogate: { steps: 1000, batchSize: 32, lr: 2e-3, width: 96, depth: 4, heads: 4 },
  diffusion: { steps: 1000, batchSize: 32, lr: 2e-3, width: 96, depth: 4, heads: 4, samplerSteps: 16 },
  eval: { ensemble: 8, context: 1, bands: '1-10,11-20,21-40' },
  /** Gradient worker threads of every training (0: one per core on wasm). */
  workers: 0,
};
export type StudyConfig = typeof studyDefaults;

/** A preset small enough for the test suite (under a minute on 2 cores): the table's structure, not its figures. */
const tinyPreset: StudyConfig = {
  system: 'euler',
  data: { resolution: { euler: 16, rayleighBenard: 8 }, trajectories: 10, steps: 12, seed: 1 },
  latentChannels: [4, 2, 1],
  seeds: [0, 1],
  autoencoder: { steps: 12, batchSize: 8, lr: 3e-3, channels: [8, 16, 32] },
  cache: { trainCopies: 1 },
  surrogate: { steps: 4, batchSize: 4, lr: 1e-3, width: 16, depth: 1, heads: 2 },
  diffusion: { steps: 4, batchSize: 4, lr: 1e-3, width: 16, depth: 1, heads: 2, samplerSteps: 2 },
  eval: { ensemble: 2, context: 1, bands: '1-4,5-11' },
  workers: 1,
};

export const STUDY_PRESETS: Record<string, StudyConfig> = { default: studyDefaults, tiny: tinyPreset };

/** The stages in dependency order. */
export const STUDY_STAGES = ['data', 'ae', 'cache', 'emulators', 'eval', 'table'] as const;
export type StudyStage = (typeof STUDY_STAGES)[number];

interface Step {
  id: string;
  stage: StudyStage;
  /** Steps that must be finished first. */
  needs: string[];
  /** Runs the step; returns what its marker records. */
  run(signal?: AbortSignal): Promise<Record<string, unknown>>;
}

export interface StudyResult {
  /** The Markdown table (VRMSE, then spread/skill), when this process wrote it. */
  table?: string;
  /** results/ directory, when this process wrote it. */
  results?: string;
  /** Steps this process ran, and those it found finished. */
  ran: string[];
  skipped: string[];
}

const SYSTEMS = ['euler', 'rayleigh-benard'];

function checkStudyConfig(config: StudyConfig): void {
  if (!SYSTEMS.includes(config.system)) throw new ConfigError(`system must be euler or rayleigh-benard, got "${config.system}"`);
  const positive = (v: number, key: string) => {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${key} must be a whole number >= 1, got ${v}`);
  };
  if (config.latentChannels.length === 0) throw new ConfigError('latentChannels is empty: give one latent channel count per compression rate');
  config.latentChannels.forEach((c, i) => positive(c, `latentChannels[${i}]`));
  if (new Set(config.latentChannels).size !== config.latentChannels.length) throw new ConfigError(`latentChannels [${config.latentChannels}] has repeats`);
  if (config.seeds.length === 0) throw new ConfigError('seeds is empty');
  config.seeds.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 0) throw new ConfigError(`seeds[${i}] must be a whole number >= 0, got ${s}`);
  });
  if (new Set(config.seeds).size !== config.seeds.length) throw new ConfigError(`seeds [${config.seeds}] has repeats`);
  positive(config.data.resolution.euler, 'data.resolution.euler');
  positive(config.data.resolution.rayleighBenard, 'data.resolution.rayleighBenard');
  positive(config.data.trajectories, 'data.trajectories');
  positive(config.data.steps, 'data.steps');
  if (config.data.steps <= config.eval.context) throw new ConfigError(`data.steps (${config.data.steps}) leaves nothing to predict after a context of ${config.eval.context}`);
}

/** The study's directory record: written once, compared on every later start. */
async function checkRecord(dir: string, config: StudyConfig): Promise<void> {
  const path = join(dir, 'study.json');
  if (existsSync(path)) {
    let previous: { config: ConfigObject };
    try {
      previous = JSON.parse(await readFile(path, 'utf8')) as { config: ConfigObject };
    } catch (err) {
      throw new ConfigError(`${path}: unreadable study record (${(err as Error).message}); use another run directory`);
    }
    // The seeds may change: each seed's steps have their own run directories, so a rerun with more seeds adds
    // theirs (and one with fewer tabulates those), reusing every finished step.
    const { seeds: before, ...rest } = previous.config as ConfigObject & { seeds?: unknown };
    const { seeds: now, ...current } = config as unknown as ConfigObject & { seeds: number[] };
    const changed = configDifferences(rest, current);
    if (changed.length > 0) throw new ConfigError(`${dir} holds a study of another configuration (${changed.join('; ')}): choose another run directory`);
    if (JSON.stringify(before) === JSON.stringify(now)) return;
  }
  await writeFileAtomic(path, `${JSON.stringify({ kind: 'study', config }, null, 2)}\n`);
}

/** The steps of a study (see the module header). */
function studySteps(config: StudyConfig, dir: string): Step[] {
  const at = (...parts: string[]) => join(dir, ...parts);
  const data = at('data');
  const ofLatent = (c: number, ...parts: string[]) => at(`latent-${c}`, ...parts);
  const steps: Step[] = [];
  const workers = config.workers;

  steps.push({
    id: 'data',
    stage: 'data',
    needs: [],
    run: async (signal) => {
      const resolution = config.system === 'euler' ? config.data.resolution.euler : config.data.resolution.rayleighBenard;
      const r = await generateDataset({
        system: config.system as 'euler' | 'rayleigh-benard',
        out: data,
        resolution,
        trajectories: config.data.trajectories,
        steps: config.data.steps,
        seed: config.data.seed,
        ...(config.system === 'euler' ? { gammas: [1.4] } : { rayleighs: [1e6], prandtls: [1] }),
        signal,
      });
      return { resolution, generated: r.generated, kept: r.kept };
    },
  });

  for (const c of config.latentChannels) {
    steps.push({
      id: `ae-${c}`,
      stage: 'ae',
      needs: ['data'],
      run: async (signal) => {
        const a = config.autoencoder;
        const aeConfig = {
          ...trainAeDefaults,
          data: { ...trainAeDefaults.data, root: data },
          model: { ...trainAeDefaults.model, channels: a.channels, latentChannels: c },
          train: { ...trainAeDefaults.train, steps: a.steps, batchSize: a.batchSize, lr: a.lr, warmup: Math.min(50, Math.floor(a.steps / 10)), workers },
        };
        const run = await openRunDir(ofLatent(c, 'ae'), 'train-ae', aeConfig, TRAIN_RUN_OPTIONS);
        const ae = await trainAutoencoder(aeConfig, run, signal);
        const [H, W, C] = ae.frameShape;
        const [h, w, lc] = ae.latentShape;
        ae.dispose();
        run.release();
        const metrics = JSON.parse(await readFile(ofLatent(c, 'ae', 'metrics.json'), 'utf8')) as { vrmseMean: number };
        return { compression: (H * W * C) / (h * w * lc), frameShape: [H, W, C], latentShape: [h, w, lc], validVrmse: metrics.vrmseMean };
      },
    });
  }
  for (const c of config.latentChannels) {
    steps.push({
      id: `cache-${c}`,
      stage: 'cache',
      needs: [`ae-${c}`],
      run: async (signal) => {
        const cacheConfig = { ...cacheDefaults, autoencoder: ofLatent(c, 'ae'), data: { root: data }, splits: { train: config.cache.trainCopies, valid: 1, test: 1 } };
        const run = await openRunDir(ofLatent(c, 'cache'), 'cache', cacheConfig);
        const r = await cacheLatents(cacheConfig, run, { index: 0, count: 1 }, signal);
        run.release();
        return { files: r.files.length };
      },
    });
  }
  for (const c of config.latentChannels) {
    for (const seed of config.seeds) {
      for (const kind of ['surrogate', 'diffusion'] as const) {
        steps.push({
          id: `${kind}-${c}-seed-${seed}`,
          stage: 'emulators',
          needs: [`cache-${c}`],
          run: async (signal) => {
            const s = config[kind];
            const emuConfig = {
              ...trainEmulatorDefaults,
              cache: ofLatent(c, 'cache'),
              model: { ...trainEmulatorDefaults.model, width: s.width, depth: s.depth, heads: s.heads },
              train: { ...trainEmulatorDefaults.train, steps: s.steps, batchSize: s.batchSize, lr: s.lr, warmup: Math.min(50, Math.floor(s.steps / 10)), seed, workers },
              sampling: kind === 'diffusion' ? { ...trainEmulatorDefaults.sampling, steps: config.diffusion.samplerSteps } : trainEmulatorDefaults.sampling,
            };
            const run = await openRunDir(ofLatent(c, `seed-${seed}`, kind), `train-${kind}`, emuConfig, TRAIN_EMULATOR_RUN_OPTIONS);
            const loaded = await trainEmulator(kind, emuConfig, run, signal);
            loaded.dispose();
            run.release();
            return {};
          },
        });
      }
    }
  }
  for (const c of config.latentChannels) {
    for (const seed of config.seeds) {
      steps.push({
        id: `eval-${c}-seed-${seed}`,
        stage: 'eval',
        needs: [`surrogate-${c}-seed-${seed}`, `diffusion-${c}-seed-${seed}`],
        run: async (signal) => {
          const evalConfig = {
            ...evaluateDefaults,
            autoencoder: ofLatent(c, 'ae'),
            cache: ofLatent(c, 'cache'),
            data: { root: data },
            emulators: { surrogate: ofLatent(c, `seed-${seed}`, 'surrogate'), diffusion: ofLatent(c, `seed-${seed}`, 'diffusion'), student: '' },
            ensemble: config.eval.ensemble,
            context: config.eval.context,
            bands: config.eval.bands,
            // the diffusion ensemble also against the autoencoder's reconstruction: its calibration in latent space
            againstReconstruction: ['diffusion'],
            seed,
          };
          const run = await openRunDir(ofLatent(c, `seed-${seed}`, 'eval'), 'eval', evalConfig, { mutable: EVALUATE_MUTABLE });
          const out = await evaluate(evalConfig, run, { index: 0, count: 1 }, signal);
          run.release();
          return { results: out.dir };
        },
      });
    }
  }
  const evals = steps.filter((s) => s.stage === 'eval').map((s) => s.id);
  steps.push({ id: 'table', stage: 'table', needs: evals, run: async () => ({ results: at('results') }) });
  return steps;
}

const markerPath = (dir: string, id: string) => join(dir, 'steps', `${id}.json`);

async function readMarker(dir: string, id: string): Promise<Record<string, unknown>> {
  const path = markerPath(dir, id);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path}: unreadable step record (${(err as Error).message}); delete it to rerun the step`);
  }
}

/** Writes the study table and report from the finished evaluations; returns the Markdown. */
async function writeTable(config: StudyConfig, dir: string): Promise<{ markdown: string; vrmse: StudyTable; spreadSkill: StudyTable }> {
  const evaluations: StudyEvaluation[] = [];
  const compressions: Record<number, number> = {};
  const aeVrmse: string[] = [];
  for (const c of config.latentChannels) {
    const ae = await readMarker(dir, `ae-${c}`);
    compressions[c] = ae.compression as number;
    aeVrmse.push(`${ae.compression as number}x ${(ae.validVrmse as number).toFixed(3)}`);
    for (const seed of config.seeds) {
      const marker = await readMarker(dir, `eval-${c}-seed-${seed}`);
      evaluations.push({ compression: compressions[c]!, seed, saved: await readResults(marker.results as string) });
    }
  }
  const vrmse = studyTable(evaluations, 'vrmse', { shared: BASELINES });
  const spreadSkill = studyTable(evaluations, 'spread_skill', { shared: BASELINES });
  const title = `wellspring study: ${config.system}, ${config.latentChannels.length} compression rates x ${config.seeds.length} seeds`;
  const notes = [
    `Data: ${config.system}, ${config.data.trajectories} trajectories of ${config.data.steps} states (seed ${config.data.seed}); context ${config.eval.context}, diffusion ensemble ${config.eval.ensemble}.`,
    `Budgets: autoencoders ${config.autoencoder.steps} steps (lr ${config.autoencoder.lr}); surrogate ${config.surrogate.steps} steps, diffusion ${config.diffusion.steps} steps (width ${config.diffusion.width}, depth ${config.diffusion.depth}); seeds ${config.seeds.join(', ')}.`,
    `Autoencoder validation VRMSE by compression: ${aeVrmse.join(', ')}.`,
    'diffusion-vs-ae: the diffusion ensemble scored against the autoencoder\'s reconstruction of the truth instead of the truth (its error and calibration in latent space: the spread of decoded members cannot cover the reconstruction error that the plain skill includes).',
  ];
  const markdown = [
    formatStudyTable(vrmse, `VRMSE (all fields pooled, physical units), mean ± std over seeds ${config.seeds.join(', ')}:`),
    '',
    formatStudyTable(spreadSkill, 'Spread / skill (1 = calibrated), mean ± std over seeds:'),
    '',
    ...notes,
  ].join('\n');
  const results = join(dir, 'results');
  await writeFileAtomic(join(results, 'table.md'), `${markdown}\n`);
  await writeFileAtomic(join(results, 'table.json'), JSON.stringify({ schema: 'wellspring-study/1', config, vrmse, spreadSkill }, null, 2));
  await writeFileAtomic(join(results, 'report.html'), await renderStudyReport({ title, notes, vrmse, spreadSkill }));
  return { markdown, vrmse, spreadSkill };
}

export interface RunStudyOptions {
  shard?: Shard;
  /** Run only this stage's steps (its dependencies must be finished). Default: every stage in order. */
  stage?: StudyStage;
  signal?: AbortSignal;
  /** Seconds between checks for steps another shard runs (default 10). */
  pollSeconds?: number;
}

/** Runs (this shard's share of) the study in `dir`; see the module header. */
export async function runStudy(config: StudyConfig, dir: string, options: RunStudyOptions = {}): Promise<StudyResult> {
  checkStudyConfig(config);
  const shard = options.shard ?? { index: 0, count: 1 };
  if (options.stage !== undefined && !STUDY_STAGES.includes(options.stage)) throw new ConfigError(`stage must be one of ${STUDY_STAGES.join(', ')}, got "${options.stage}"`);
  await checkRecord(dir, config);
  const steps = studySteps(config, dir);
  const byId = new Map(steps.map((s) => [s.id, s]));
  const done = (id: string) => existsSync(markerPath(dir, id));
  const result: StudyResult = { ran: [], skipped: [] };
  for (const stage of STUDY_STAGES) {
    if (options.stage !== undefined && stage !== options.stage) continue;
    const mine = steps.filter((s) => s.stage === stage).filter((_, k) => k % shard.count === shard.index);
    for (const step of mine) {
      if (done(step.id) && step.id !== 'table') {
        result.skipped.push(step.id);
        continue;
      }
      let missing = step.needs.filter((id) => !done(id));
      if (missing.length > 0 && (options.stage !== undefined || shard.count === 1)) {
        const stages = [...new Set(missing.map((id) => byId.get(id)!.stage))];
        throw new Error(`study ${dir}: step ${step.id} needs ${missing.join(', ')}, not finished: run stage ${stages.join(', ')} first (--stage ${stages[0]})`);
      }
      let lastNote = 0;
      while (missing.length > 0) {
        options.signal?.throwIfAborted();
        if (performance.now() - lastNote > 60_000) {
          console.error(`study: ${step.id} waits for ${missing.join(', ')} (other shards)`);
          lastNote = performance.now();
        }
        await sleep((options.pollSeconds ?? 10) * 1000, undefined, { signal: options.signal });
        missing = step.needs.filter((id) => !done(id));
      }
      if (step.id === 'table') {
        // Cheap, so always rendered again from the finished evaluations.
        const { markdown } = await writeTable(config, dir);
        result.table = markdown;
        result.results = join(dir, 'results');
        if (!done(step.id)) result.ran.push(step.id);
        await writeFileAtomic(markerPath(dir, step.id), JSON.stringify({ step: step.id, finished: new Date().toISOString() }));
        continue;
      }
      console.error(`\n== study step ${step.id}`);
      const t0 = performance.now();
      const record = await step.run(options.signal);
      const minutes = (performance.now() - t0) / 60_000;
      await writeFileAtomic(markerPath(dir, step.id), JSON.stringify({ step: step.id, finished: new Date().toISOString(), minutes, ...record }, null, 2));
      console.error(`== study step ${step.id} done in ${minutes.toFixed(1)} min`);
      result.ran.push(step.id);
    }
  }
  return result;
}
