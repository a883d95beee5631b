/**
 * Emulating cached test trajectories with trained models, as stages that end in the metric sinks:
 *
 *   readLatentCache(files) -> rolloutLatents(models, options) -> decodeStates(ae) -> withTruth(splitDir) -> reportSink
 *
 * - `rolloutLatents` pulls one cached trajectory at a time and yields latent states model by model: optionally
 *   the autoencoder's own latents of the predicted span first (model "autoencoder": the reconstruction floor any
 *   latent emulator sits on), then each emulator's autoregressive rollout from the first `context` states, state
 *   by state as each window is generated. The ensembles of diffusion emulators and students run on worker
 *   threads (`workers`, default one per core on the wasm backend; ./rollout-workers.ts), each model's pool
 *   started at its first trajectory and ended with the stream; the states are those of a main-thread rollout.
 * - `decodeStates` decodes each state's members and undoes the normalisation (physical units).
 * - `withTruth` pairs every state with the simulated truth, read from the Well file the trajectory came from, as a
 *   `RolloutChunk` for the metric sinks, and optionally adds the baselines (./baselines.ts: persistence and the
 *   spatial-mean field, computed from the truth in physical space) as extra models, lead by lead.
 *
 * Guided models (data assimilation, `options.guided`): a diffusion emulator rolled out with guidance on
 * observations of the truth (`truthObservations`: the operator applied to the simulated states, plus seeded
 * noise), yielded under their own names after the plain models, so reports show them side by side.
 *
 * Memory: one cached trajectory's latents, one rollout window per emulator, and the truth frames of the current
 * trajectory (read once, shared by every model).
 */
import { join } from 'node:path';
import { named, type Stage } from '../streams/core.js';
import { Rng, observationSeed, rolloutSeed } from '../streams/random.js';
import { observe, type ObservationOperator } from '../physics/observe.js';
import { openWellDataset, type WellDataset } from '../formats/well/dataset.js';
import type { CachedTrajectory, CacheOrigin } from '../formats/latent-cache/schema.js';
import type { RolloutChunk } from '../sinks/metrics/types.js';
import { rollout, type LeadObservation, type RolloutGuidance } from './diffusion/rollout.js';
import type { Guidance, LatentDecoder } from './diffusion/guidance.js';
import { decodeToPhysical, type LoadedAutoencoder } from './autoencoder.js';
import type { LoadedEmulator } from './emulators.js';
import { RolloutWorkers } from './rollout-workers.js';
import { rolloutWorkers } from './worker-models.js';
import { ensureBackend } from './backend/select.js';
import { baselinePrediction, checkBaselines, type BaselineName } from './baselines.js';

/** One predicted latent state of one model: M members (M, h, w, c). */
export interface LatentStep {
  model: string;
  /** `<file>#<trajectory>`. */
  trajectory: string;
  origin: CacheOrigin;
  /** 1 for the first state after the context. */
  lead: number;
  /** Members' latents, back to back. */
  latents: Float32Array;
  members: number;
}

/** One predicted state of one model in physical units: M frames (H, W, C). */
export interface PhysicalStep {
  model: string;
  trajectory: string;
  origin: CacheOrigin;
  lead: number;
  fields: readonly string[];
  spatialShape: readonly number[];
  /** Members, each (H, W, C). */
  ensemble: Float32Array[];
}

export interface RolloutLatentsOptions {
  /** States given as context (then carried over between emulator calls); default 1. */
  context?: number;
  /** States rolled out (default 0: to the end of each trajectory). */
  horizon?: number;
  /** Members of stochastic (diffusion) emulators; a surrogate always has one. Default 16. */
  ensemble?: number;
  /** Run seed: trajectory t is rolled out with `rolloutSeed(seed, t)`. Default 0. */
  seed?: number;
  /** Also yield the autoencoder's reconstruction of the predicted span, as model "autoencoder". Default false. */
  reconstruct?: boolean;
  /** Guided models by name, rolled out after the plain ones (see the module header). */
  guided?: Record<string, GuidedModel>;
  /**
   * Worker threads for the ensembles of diffusion emulators and students (./rollout-workers.ts): 0 (default) one
   * per core on the wasm backend and none elsewhere, 1 none (the main thread), n > 1 that many (at most one per
   * member). The surrogate (one member) and guided models run on the main thread. The states do not depend on it.
   */
  workers?: number;
}

/** A diffusion emulator rolled out with guidance on observations of each trajectory. */
export interface GuidedModel {
  /** The diffusion (or flow) emulator it guides. */
  emulator: LoadedEmulator;
  guidance: Guidance;
  operator: ObservationOperator;
  /** Latents to physical states, differentiable (`physicalDecoder(ae)`). */
  decoder: LatentDecoder;
  /** The observations of one trajectory over leads 1..horizon (e.g. `truthObservations(...)`). */
  observations(row: CachedTrajectory, horizon: number): AsyncIterable<LeadObservation>;
}

/** The model name of the autoencoder's reconstruction in evaluation streams. */
export const RECONSTRUCTION = 'autoencoder';

/**
 * Stage: cached trajectories in, latent states of every model out (see the module header). `emulators` maps the
 * names shown in results to loaded emulators. Checks each trajectory against the models: latent shape, label
 * count, and a context shorter than each emulator's window.
 */
export function rolloutLatents(emulators: Record<string, LoadedEmulator>, options: RolloutLatentsOptions = {}): Stage<CachedTrajectory, LatentStep> {
  const { context = 1, horizon: requested = 0, ensemble = 16, seed = 0, reconstruct = false, guided = {}, workers = 0 } = options;
  if (!Number.isInteger(context) || context < 1) throw new Error(`rolloutLatents: context must be an integer >= 1, got ${context}`);
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`rolloutLatents: workers must be an integer >= 0 (0: auto), got ${workers}`);
  const models: [string, LoadedEmulator, GuidedModel | undefined][] = [
    ...Object.entries(emulators).map(([name, e]): [string, LoadedEmulator, undefined] => [name, e, undefined]),
    ...Object.entries(guided).map(([name, g]): [string, LoadedEmulator, GuidedModel] => [name, g.emulator, g]),
  ];
  for (const [name, e, g] of models) {
    if (context >= e.window) throw new Error(`rolloutLatents: context (${context}) must be smaller than the ${name} window (${e.window}, ${e.dir})`);
    if (g && e.kind !== 'diffusion') {
      throw new Error(`rolloutLatents: the guided model ${name} needs a diffusion emulator; ${e.dir} is a ${e.kind}, which has no denoiser to guide`);
    }
  }
  return named('rollout', async function* (source) {
    const threads = Math.min(rolloutWorkers(workers, await ensureBackend()), ensemble);
    const pools = new Map<string, Promise<RolloutWorkers>>();
    const pool = (name: string, loaded: LoadedEmulator): Promise<RolloutWorkers> => {
      let p = pools.get(name);
      if (!p) pools.set(name, (p = RolloutWorkers.start(loaded, { workers: threads })));
      return p;
    };
    try {
      for await (const row of source) {
        const [T, h, w, c] = row.shape;
        const id = `${row.origin.file}#${row.origin.trajectory}`;
        const horizon = requested > 0 ? Math.min(requested, T - context) : T - context;
        if (horizon < 1) throw new Error(`${id}: context (${context}) leaves no state to predict in a trajectory of ${T} states`);
        const latentSize = h * w * c;
        if (reconstruct) {
          for (let k = 0; k < horizon; k++) {
            const at = (context + k) * latentSize;
            yield { model: RECONSTRUCTION, trajectory: id, origin: row.origin, lead: k + 1, latents: row.latents.subarray(at, at + latentSize), members: 1 };
          }
        }
        for (const [name, loaded, g] of models) {
          if (loaded.latentShape && loaded.latentShape.join() !== [h, w, c].join()) {
            throw new Error(`${id}: latents of shape [${h},${w},${c}], the ${name} emulator (${loaded.dir}) expects [${loaded.latentShape}]`);
          }
          if (loaded.labelNames.length !== row.labels.length) {
            throw new Error(`${id}: ${row.labels.length} labels, the ${name} emulator (${loaded.dir}) expects ${loaded.labelNames.length} ([${loaded.labelNames}])`);
          }
          const members = loaded.kind === 'surrogate' ? 1 : ensemble;
          const guidance: RolloutGuidance | undefined = g && {
            guidance: g.guidance,
            operator: g.operator,
            decoder: g.decoder,
            observations: g.observations(row, horizon),
          };
          const start = { states: row.latents.subarray(0, context * latentSize), shape: [context, h, w, c] as const, labels: row.labels.length > 0 ? row.labels : null, id };
          const settings = { horizon, window: loaded.window, context, ensemble: members, seed: rolloutSeed(seed, row.origin.trajectory) };
          const states = !g && members > 1 && threads > 1
            ? (await pool(name, loaded)).rollout(start, settings)
            : rollout(loaded.emulator, start, { ...settings, guidance });
          for await (const state of states) {
            yield { model: name, trajectory: id, origin: row.origin, lead: state.lead, latents: state.states, members };
          }
        }
      }
    } finally {
      const started = await Promise.allSettled(pools.values());
      await Promise.all(started.map((p) => (p.status === 'fulfilled' ? p.value.close() : undefined)));
    }
  });
}

export interface TruthObservationsOptions {
  /** States given as context: lead k is frame context + k - 1 of the trajectory (default 1). */
  context?: number;
  /** Run seed: the noise of trajectory t is drawn from `observationSeed(seed, t)` (default 0). */
  seed?: number;
  /** Observe every n-th lead, from lead 1 (default 1: every lead). */
  every?: number;
}

/**
 * Observations of the simulated truth for guided rollouts: for each trajectory, the frames of its Well file in
 * `splitDir` from `context` on, observed by `operator` with its noise (seeded per trajectory), at leads
 * 1, 1 + every, ... up to the horizon. Reads frame by frame as the rollout pulls; holds one frame.
 */
export function truthObservations(
  splitDir: string,
  operator: ObservationOperator,
  options: TruthObservationsOptions = {},
): (row: CachedTrajectory, horizon: number) => AsyncIterable<LeadObservation> {
  const { context = 1, seed = 0, every = 1 } = options;
  if (!Number.isInteger(every) || every < 1) throw new Error(`truthObservations: every must be a positive integer, got ${every}`);
  return (row, horizon) => ({
    async *[Symbol.asyncIterator]() {
      const file = join(splitDir, row.origin.file);
      const ds = await openWellDataset(file, { nIn: 1, nOut: 1 });
      const it = ds.trajectories({ trajectories: [{ fileIndex: 0, trajectory: row.origin.trajectory }], start: context })[Symbol.asyncIterator]();
      const first = await it.next();
      await it.return?.();
      if (first.done) throw new Error(`${file}: no trajectory ${row.origin.trajectory}`);
      const rng = new Rng(observationSeed(seed, row.origin.trajectory));
      let lead = 0;
      for await (const frame of first.value.frames) {
        lead++;
        if (lead > horizon) break;
        if ((lead - 1) % every !== 0) continue;
        yield { lead, values: observe(operator, frame.channels, 1, rng), fields: operator.fields };
      }
    },
  });
}

/**
 * Stage: latent steps in, physical steps out: each step's members are decoded (in batches of `batchSize`) and
 * returned to physical units. Holds one step.
 */
export function decodeStates(ae: LoadedAutoencoder, options: { batchSize?: number } = {}): Stage<LatentStep, PhysicalStep> {
  const batchSize = options.batchSize ?? 16;
  const fields = ae.data.layout.names;
  const spatialShape = ae.data.spatialShape;
  const frame = ae.frameShape[0] * ae.frameShape[1] * ae.frameShape[2];
  return named('decode', async function* (source) {
    for await (const step of source) {
      const physical = await decodeToPhysical(ae, step.latents, step.members, batchSize);
      const ensemble = Array.from({ length: step.members }, (_, m) => physical.subarray(m * frame, (m + 1) * frame));
      yield { model: step.model, trajectory: step.trajectory, origin: step.origin, lead: step.lead, fields, spatialShape, ensemble };
    }
  });
}

export interface WithTruthOptions {
  /** States given as context (default 1): the truth of lead k is frame `context + k - 1`. */
  context?: number;
  /**
   * Reference predictors scored as extra models (see ./baselines.ts): each lead's truth frame, when first read,
   * also yields one chunk per baseline, named as the baseline. Default none.
   */
  baselines?: readonly BaselineName[];
}

/**
 * Stage: physical steps in, `RolloutChunk`s (one state, with its truth, the true state before it and its origin)
 * out. The truth of lead k is frame `context + k - 1` of the trajectory in `<splitDir>/<origin.file>` (cached
 * trajectories start at frame 0), read when the trajectory is first seen and extended as later leads ask;
 * `previous` is the truth of lead k - 1 (for lead 1, the last context state). Holds the current trajectory's
 * truth frames, its last context frame and the open file's index only. With `baselines`, the baselines' chunks
 * of a lead follow the chunk that first asked for that lead's truth, so every lead some model reaches is scored
 * once per baseline and trajectory.
 */
export function withTruth(splitDir: string, options: WithTruthOptions = {}): Stage<PhysicalStep, RolloutChunk> {
  const context = options.context ?? 1;
  const baselines = checkBaselines(options.baselines ?? [], 'withTruth baselines');
  return named('truth', async function* (source) {
    let current = '';
    let opened: { file: string; ds: WellDataset } | undefined; // consecutive trajectories share their file's index
    let truth: Float32Array[] = [];
    let lastContext: Float32Array | undefined;
    let frames: AsyncIterator<{ channels: Float32Array }> | undefined;
    const close = async () => {
      await frames?.return?.();
      frames = undefined;
    };
    try {
      for await (const step of source) {
        if (step.trajectory !== current) {
          await close();
          current = step.trajectory;
          truth = [];
          const file = join(splitDir, step.origin.file);
          if (opened?.file !== file) opened = { file, ds: await openWellDataset(file, { nIn: 1, nOut: 1 }) };
          // from the last context state on: the previous state of lead 1, and what persistence repeats
          const it = opened.ds.trajectories({ trajectories: [{ fileIndex: 0, trajectory: step.origin.trajectory }], start: context - 1 })[Symbol.asyncIterator]();
          const first = await it.next();
          if (first.done) throw new Error(`${file}: no trajectory ${step.origin.trajectory}`);
          frames = first.value.frames[Symbol.asyncIterator]();
          await it.return?.();
          const next = await frames.next();
          if (next.done) throw new Error(`${file}: trajectory ${step.origin.trajectory} has no state ${context - 1} (the last context state)`);
          lastContext = next.value.channels.slice();
        }
        const firstNew = truth.length + 1;
        while (truth.length < step.lead) {
          const next = await frames!.next();
          if (next.done) throw new Error(`${step.trajectory}: lead ${step.lead} is past the end of the truth (${truth.length} states after the context of ${context})`);
          truth.push(next.value.channels.slice());
        }
        const chunk = (model: string, lead: number, ensemble: readonly Float32Array[]): RolloutChunk => ({
          model,
          trajectory: step.trajectory,
          fields: step.fields,
          spatialShape: step.spatialShape,
          lead,
          truth: truth[lead - 1]!,
          previous: lead === 1 ? lastContext! : truth[lead - 2]!,
          ensemble,
          origin: { file: step.origin.file, trajectory: step.origin.trajectory, start: 0, frame: context + lead - 1 },
        });
        yield chunk(step.model, step.lead, step.ensemble);
        for (let lead = firstNew; lead <= truth.length; lead++) {
          for (const name of baselines) yield chunk(name, lead, [baselinePrediction(name, lastContext!, truth[lead - 1]!, step.fields.length)]);
        }
      }
    } finally {
      await close();
    }
  });
}

/** The suffix of a model scored against the autoencoder's reconstruction (`againstReconstruction`). */
export const VS_RECONSTRUCTION = '-vs-ae';

/**
 * Stage: `RolloutChunk`s in (from `withTruth`), the same chunks out, and after each chunk of a model in `models`
 * a copy of it named `<model>-vs-ae` whose truth is the autoencoder's reconstruction (model "autoencoder") of the
 * same trajectory and leads instead of the simulation. A latent emulator can at best reproduce the encoded
 * truth, so these scores separate its own error and calibration from the autoencoder's: the spread of decoded
 * members cannot show the reconstruction error that the plain skill includes. `previous` is the reconstruction
 * of the lead before (for lead 1, the true last context state). Needs the reconstruction of a trajectory before
 * its models' chunks (as `rolloutLatents` with `reconstruct` yields it) and fails clearly otherwise. Holds the
 * current trajectory's reconstruction frames.
 */
export function againstReconstruction(models: readonly string[]): Stage<RolloutChunk, RolloutChunk> {
  const wanted = new Set(models);
  if (wanted.has(RECONSTRUCTION)) throw new Error(`againstReconstruction: the reconstruction (${RECONSTRUCTION}) cannot be scored against itself`);
  return named('against-reconstruction', async function* (source) {
    let current: string | number | undefined;
    let frames: (Float32Array | Float64Array)[] = [];
    for await (const chunk of source) {
      if (chunk.trajectory !== current) {
        current = chunk.trajectory;
        frames = [];
      }
      yield chunk;
      const model = chunk.model ?? 'model';
      const size = chunk.spatialShape.reduce((a, b) => a * b, 1) * chunk.fields.length;
      const count = chunk.truth.length / size;
      if (model === RECONSTRUCTION) {
        for (let f = 0; f < count; f++) frames[chunk.lead - 1 + f] = chunk.ensemble[0]!.subarray(f * size, (f + 1) * size);
        continue;
      }
      if (!wanted.has(model)) continue;
      const truth = new Float32Array(chunk.truth.length);
      for (let f = 0; f < count; f++) {
        const recon = frames[chunk.lead - 1 + f];
        if (!recon) {
          throw new Error(`againstReconstruction: ${chunk.trajectory}: no reconstruction of lead ${chunk.lead + f} before the ${model} chunk (roll out with reconstruct: true)`);
        }
        truth.set(recon, f * size);
      }
      const previous = chunk.lead === 1 ? chunk.previous : frames[chunk.lead - 2];
      yield { ...chunk, model: `${model}${VS_RECONSTRUCTION}`, truth, ...(previous ? { previous } : {}) };
    }
  });
}
