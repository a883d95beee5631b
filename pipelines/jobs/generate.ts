/**
 * The dataset generator: simulates trajectories of a built-in system in worker threads (one trajectory per
 * task, across the cores) and writes them as a Well dataset root, `<out>/data/{train,valid,test}/<file>.hdf5`
 * plus `<out>/stats.yaml`, with one file per parameter set and split, named as The Well names them.
 *
 * Deterministic: each trajectory's seed derives from the global seed, its parameter set and its index, and
 * results are written in index order whatever the thread count. Resumable: a parameter set whose three split
 * files and record (`<out>/.wellspring/<file>.json`, holding the generation settings and the train moments) are
 * present is kept and skipped; within an unfinished set, every trajectory already simulated is read back from
 * the trajectory cache (`<out>/.wellspring/<file>/`, see cache.ts) instead of being simulated again. Files are
 * written under a temporary name and renamed when complete, and stale temporaries of an interrupted run are
 * removed. Progress (count, rate, ETA) is reported per parameter set.
 */
import { mkdir, readFile, readdir, rm, access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pipe } from '../../src/streams/core.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { map } from '../../src/streams/basic.js';
import { abortable, progress, type ProgressOptions } from '../../src/streams/progress.js';
import { workerMap } from '../../src/streams/workers.js';
import { mergeMomentSets, type MomentSet } from '../../src/formats/well/moments.js';
import { formatStatsYaml, statsFromMoments, type WellStats } from '../../src/formats/well/stats.js';
import { writeWellDataset, WELL_SPLITS, type WellSplit, type WellTrajectory } from '../../src/formats/well/writer.js';
import type { EulerBoundary } from '../../src/physics/euler.js';
import { EULER_GAMMA_PRESETS } from '../../src/physics/quadrants.js';
import { simulationTasks } from '../../src/physics/simulate/source.js';
import { SIMULATION_WORKER, trajectoryCacheDir, trajectoryCachePath, type TrajectoryJob, type TrajectoryResult } from '../../src/physics/simulate/cache.js';
import {
  SYSTEM_FIELDS,
  taskFileStem,
  taskGrid,
  taskSpec,
  type SimulationTask,
  type SystemName,
  type TaskTemplate,
  type TrajectoryFields,
} from '../../src/physics/simulate/systems.js';

export interface GenerateDatasetOptions {
  system: SystemName;
  /** Dataset root: gets `data/{train,valid,test}/` and `stats.yaml`. */
  out: string;
  /**
   * Euler: N x N cells. Rayleigh-Benard: N cells across the layer, 4N along it (The Well: 128). Darcy: N x N
   * nodes of [0,1]^2, boundary nodes included (N - 2 unknowns per axis).
   */
  resolution: number;
  /** Trajectories per parameter set, dealt 0.8/0.1/0.1 to train/valid/test. */
  trajectories: number;
  /**
   * Snapshots per trajectory, including t = 0 (default: The Well's 101 for Euler, 200 for Rayleigh-Benard).
   * Darcy is steady: 1 by default; more stores copies of the one state.
   */
  steps?: number;
  /** Time between snapshots (default 0.015 Euler, 0.25 Rayleigh-Benard; not for Darcy). */
  dt?: number;
  seed?: number;
  /** Euler: one parameter set per gamma (default [1.4]). */
  gammas?: number[];
  /** Euler boundary (default periodic). */
  boundary?: EulerBoundary;
  /** Rayleigh-Benard: one parameter set per (Rayleigh, Prandtl) pair of these lists (default 1e6 and 1). */
  rayleighs?: number[];
  prandtls?: number[];
  /** Darcy: one parameter set per (alpha, tau) pair of these lists (default 2 and 3). */
  alphas?: number[];
  taus?: number[];
  /** Worker threads (default: the number of cores). */
  threads?: number;
  /** gzip level of the HDF5 datasets (default none). */
  compression?: number;
  fractions?: Partial<Record<WellSplit, number>>;
  /** Progress reports (default: a line on stderr; false for none). */
  progress?: ProgressOptions['report'];
  signal?: AbortSignal;
}

export interface GenerateDatasetResult {
  root: string;
  /** File stems written by this call, and those kept from an earlier run. */
  generated: string[];
  kept: string[];
  /** Trajectories simulated by this call, and those read from the cache of an interrupted run. */
  simulated: number;
  fromCache: number;
  stats: WellStats;
  seconds: number;
}

/** What a parameter set's record holds: the settings it was generated with and its train moments. */
interface SetRecord {
  settings: { template: TaskTemplate; trajectories: number; seed: number; fractions: Record<WellSplit, number> };
  moments: MomentSet;
}

/** The parameter sets (task templates without seeds) of a generation request. */
export function parameterSets(options: GenerateDatasetOptions): TaskTemplate[] {
  const { resolution } = options;
  if (!Number.isInteger(resolution) || resolution < 2) throw new RangeError(`resolution must be an integer >= 2, got ${resolution}`);
  if (!Number.isInteger(options.trajectories) || options.trajectories < 1)
    throw new RangeError(`trajectories must be a positive integer, got ${options.trajectories}`);
  if (options.system === 'euler') {
    const snapshots = options.steps ?? 101;
    const dt = options.dt ?? 0.015;
    const boundary = options.boundary ?? 'periodic';
    if (boundary !== 'periodic' && boundary !== 'open') throw new RangeError(`boundary must be periodic or open, got ${String(boundary)}`);
    const gammas = options.gammas ?? [1.4];
    for (const g of gammas) if (!(g > 1)) throw new RangeError(`gamma must be > 1, got ${g}`);
    return gammas.map((gamma) => ({ system: 'euler' as const, resolution, gamma, boundary, snapshots, dt }));
  }
  if (options.system === 'rayleigh-benard') {
    if ((resolution & (resolution - 1)) !== 0)
      throw new RangeError(`Rayleigh-Benard resolution must be a power of two (4N cells along x use an FFT), got ${resolution}`);
    const snapshots = options.steps ?? 200;
    const dt = options.dt ?? 0.25;
    const sets: TaskTemplate[] = [];
    for (const rayleigh of options.rayleighs ?? [1e6])
      for (const prandtl of options.prandtls ?? [1]) {
        if (!(rayleigh > 0) || !(prandtl > 0)) throw new RangeError(`Rayleigh and Prandtl must be positive, got ${rayleigh}, ${prandtl}`);
        sets.push({ system: 'rayleigh-benard' as const, resolution, rayleigh, prandtl, snapshots, dt });
      }
    return sets;
  }
  if (options.system === 'darcy') {
    if (resolution < 3) throw new RangeError(`Darcy resolution must be >= 3 nodes (boundary included), got ${resolution}`);
    if (options.dt !== undefined) throw new RangeError('dt does not apply to darcy (a steady problem)');
    const snapshots = options.steps ?? 1;
    if (!Number.isInteger(snapshots) || snapshots < 1) throw new RangeError(`steps must be a positive integer, got ${snapshots}`);
    const sets: TaskTemplate[] = [];
    for (const alpha of options.alphas ?? [2])
      for (const tau of options.taus ?? [3]) {
        if (!(alpha > 0) || !(tau > 0)) throw new RangeError(`alpha and tau must be positive, got ${alpha}, ${tau}`);
        sets.push({ system: 'darcy' as const, resolution, alpha, tau, snapshots });
      }
    return sets;
  }
  throw new RangeError(`unknown system "${String(options.system)}": expected euler, rayleigh-benard or darcy`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Cuts a trajectory's (T, ...) arrays into frames for the writer (views, no copies). */
function toWellTrajectory(fields: TrajectoryFields, steps: number): WellTrajectory {
  return {
    frames: (function* () {
      for (let t = 0; t < steps; t++) {
        const frame: Record<string, Float32Array> = {};
        for (const [name, data] of Object.entries(fields)) {
          const size = data.length / steps;
          frame[name] = data.subarray(t * size, (t + 1) * size);
        }
        yield { fields: frame };
      }
    })(),
  };
}

/**
 * Generates (or completes) a dataset. Resolves when every parameter set's files and stats.yaml are in place.
 *
 * ```ts
 * await generateDataset({ system: 'euler', out: 'data/euler', resolution: 64, trajectories: 48, steps: 101, seed: 0 });
 * ```
 */
export async function generateDataset(options: GenerateDatasetOptions): Promise<GenerateDatasetResult> {
  const start = performance.now();
  const sets = parameterSets(options);
  const seed = options.seed ?? 0;
  const threads = options.threads ?? availableParallelism();
  const fractions: Record<WellSplit, number> = { train: 0.8, valid: 0.1, test: 0.1, ...options.fractions };
  const recordDir = join(options.out, '.wellspring');
  await mkdir(recordDir, { recursive: true });
  const generated: string[] = [];
  const kept: string[] = [];
  let simulated = 0;
  let fromCache = 0;
  const pooled: MomentSet = { fields: {}, deltas: {} };

  for (const template of sets) {
    options.signal?.throwIfAborted();
    const stem = taskFileStem({ ...template, seed: 0 } as SimulationTask);
    const fileName = `${stem}.hdf5`;
    const recordPath = join(recordDir, `${stem}.json`);
    const settings: SetRecord['settings'] = { template, trajectories: options.trajectories, seed, fractions };
    const files = WELL_SPLITS.map((s) => join(options.out, 'data', s, fileName));

    if (await exists(recordPath)) {
      const record = JSON.parse(await readFile(recordPath, 'utf8')) as SetRecord;
      if (JSON.stringify(record.settings) !== JSON.stringify(settings)) {
        throw new Error(
          `${options.out} already holds ${fileName} generated with other settings (${recordPath}: ` +
            `${JSON.stringify(record.settings)}; now ${JSON.stringify(settings)}): use another --out or delete it`,
        );
      }
      if ((await Promise.all(files.map(exists))).every(Boolean)) {
        mergeMomentSets(pooled, record.moments);
        kept.push(stem);
        continue;
      }
      await rm(recordPath);
    }
    // remove temporaries left by an interrupted run of this set
    for (const split of WELL_SPLITS) {
      const dir = join(options.out, 'data', split);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names) if (name.startsWith(`.${fileName}.tmp-`)) await rm(join(dir, name), { force: true });
    }

    const tasks = simulationTasks(template, options.trajectories, seed);
    const spec = taskSpec(tasks[0]);
    // trajectory cache of an interrupted run: usable only if made with the same settings
    const cacheDir = trajectoryCacheDir(options.out, stem);
    const cacheSettings = join(cacheDir, 'settings.json');
    if (await exists(cacheSettings)) {
      const previous = await readFile(cacheSettings, 'utf8');
      if (previous !== JSON.stringify(settings)) {
        throw new Error(
          `${options.out} holds an interrupted run of ${fileName} with other settings (${cacheSettings}: ${previous}; ` +
            `now ${JSON.stringify(settings)}): use another --out or delete it`,
        );
      }
    } else {
      await writeFileAtomic(cacheSettings, JSON.stringify(settings));
    }
    const jobs: TrajectoryJob[] = tasks.map((task, i) => ({ task, cache: trajectoryCachePath(options.out, stem, i) }));
    const steps = template.snapshots;
    // cancellation: the pull in flight rejects at once, and running workers stop at their next snapshot
    const cancel = new SharedArrayBuffer(4);
    const onAbort = (): void => void Atomics.store(new Int32Array(cancel), 0, 1);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const simulated$ = pipe(
      jobs,
      workerMap<TrajectoryJob, TrajectoryResult>({
        filename: SIMULATION_WORKER,
        threads: Math.min(threads, tasks.length),
        concurrency: Math.min(threads, tasks.length) + 1,
        workerData: { cancel },
        name: `simulate ${stem}`,
      }),
    );
    const trajectories = pipe(
      options.signal ? pipe(simulated$, abortable<TrajectoryResult>(options.signal)) : simulated$,
      progress<TrajectoryResult>({ label: `${stem}: trajectories`, total: tasks.length, report: options.progress }),
      map((result: TrajectoryResult) => {
        if (result.cached) fromCache++;
        else simulated++;
        return toWellTrajectory(result.fields, steps);
      }),
    );
    let result;
    try {
      result = await writeWellDataset(trajectories, options.out, spec, {
        fileName,
        fractions,
        compression: options.compression,
        signal: options.signal,
        writeStats: false, // written once, last, from every set in the root (below)
      });
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const moments = result.files.train?.moments ?? { fields: {}, deltas: {} };
    await writeFileAtomic(recordPath, JSON.stringify({ settings, moments } satisfies SetRecord));
    await rm(cacheDir, { recursive: true, force: true });
    mergeMomentSets(pooled, moments);
    generated.push(stem);
  }

  // stats.yaml, written last: the train splits of every parameter set in this root, those of earlier runs with
  // other sets included (each set's record keeps its train moments), as long as its files are still there.
  for (const name of (await readdir(recordDir)).filter((f) => f.endsWith('.json')).sort()) {
    const stem = name.slice(0, -'.json'.length);
    if (generated.includes(stem) || kept.includes(stem)) continue;
    if (!(await exists(join(options.out, 'data', 'train', `${stem}.hdf5`)))) continue;
    let record: SetRecord;
    try {
      record = JSON.parse(await readFile(join(recordDir, name), 'utf8')) as SetRecord;
    } catch (err) {
      throw new Error(`${join(recordDir, name)}: unreadable set record (${(err as Error).message}); delete it and regenerate that set`);
    }
    if (record.settings.template.system !== sets[0].system) continue;
    mergeMomentSets(pooled, record.moments);
    kept.push(stem);
  }
  const first = sets[0];
  const orders = Object.fromEntries(SYSTEM_FIELDS[first.system].map((f) => [f.name, f.order]));
  const stats = statsFromMoments(pooled, orders, taskGrid({ ...first, seed: 0 } as SimulationTask).length);
  const statsPath = join(options.out, 'stats.yaml');
  await writeFileAtomic(statsPath, formatStatsYaml(stats));
  return { root: options.out, generated, kept, simulated, fromCache, stats, seconds: (performance.now() - start) / 1000 };
}

/** The Well's ten gamma values (the `--gamma all` preset). */
export const ALL_GAMMAS: readonly number[] = EULER_GAMMA_PRESETS.map((p) => p.gamma);
