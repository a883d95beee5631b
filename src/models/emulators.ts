/**
 * Trained latent emulators as library objects: build a surrogate or a diffusion / flow emulator on a ViT, its
 * training loss, and load a trained one from its run directory.
 *
 * An emulator run directory (written by `wellspring train-surrogate` / `train-diffusion`) holds
 * `emulator.safetensors`: the weights, with metadata `kind` (surrogate | diffusion), `vit` (the ViT config),
 * `formulation` (diffusion | flow), `sampling` (the sampler used at prediction time), `window`, `labels` (label
 * names), `autoencoder` (the id of the autoencoder whose latents it learned) and `steps`; plus `checkpoints/`
 * and `metrics.json`.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { readSafetensors, weightsId } from '../formats/safetensors.js';
import { createVit, type Vit, type VitConfig } from './nn/vit.js';
import { loadWeights } from './train/checkpoint.js';
import type { LossFunction } from './train/types.js';
import { diffusionEmulator, surrogateEmulator, vitBackbone, type Emulator } from './diffusion/emulator.js';
import { studentEmulator } from './diffusion/distill.js';
import { formulation as makeFormulation, type FormulationName } from './diffusion/formulation.js';
import { SAMPLER_NAMES, type SamplerName } from './diffusion/samplers.js';
import type { WindowBatch } from './diffusion/denoiser.js';
import { emulatorBatches, type ContextBatch } from './diffusion/windows.js';
import { readLatentCache } from '../formats/latent-cache/reader.js';
import { ensureBackend } from './backend/select.js';

/** The deterministic surrogate, the diffusion (or flow) emulator, or its one-step distilled student. */
export type EmulatorKind = 'surrogate' | 'diffusion' | 'student';

/** The sampler a diffusion emulator predicts with. */
export interface SamplingOptions {
  sampler: string;
  steps: number;
  order: number;
}

/** Adams-Bashforth of order 3 in 16 steps, the reference study's choice. */
export const DEFAULT_SAMPLING: SamplingOptions = { sampler: 'ab', steps: 16, order: 3 };

export const EMULATOR_FILE = 'emulator.safetensors';

/**
 * What an emulator is, apart from its weights, in a structured-cloneable form: enough to build the same network
 * and emulator again (in a worker thread: src/models/worker-models.ts).
 */
export interface EmulatorSpec {
  kind: EmulatorKind;
  vit: VitConfig;
  /** 'diffusion' or 'flow' ('' for a surrogate). */
  formulation: string;
  sampling: SamplingOptions;
}

/** A trained emulator, ready to roll out. */
export interface LoadedEmulator {
  /** The run directory it was loaded from. */
  dir: string;
  kind: EmulatorKind;
  /** 'diffusion' or 'flow' for a diffusion emulator or a student (its teacher's); '' for a surrogate. */
  formulation: string;
  /** Identifies these weights (hash of emulator.safetensors); distillation pairs record their teacher's. */
  id: string;
  emulator: Emulator;
  vit: Vit;
  /** How to build it again (with `vit.params` as weights): rollout worker threads do. */
  spec: EmulatorSpec;
  /** States per emulator call. */
  window: number;
  /** Autoencoder id of the latents it was trained on. */
  autoencoder: string;
  labelNames: string[];
  /** Latent shape (h, w, c) of one state (null when the ViT was built without a fixed token grid). */
  latentShape: [number, number, number] | null;
  dispose(): void;
}

/**
 * An emulator on a ViT: the surrogate, or the diffusion / flow emulator with its sampler. `training` turns on
 * dropout drawn from `training.random` (null: inference).
 */
export function buildEmulator(
  kind: EmulatorKind,
  vit: Vit,
  formulation: string,
  sampling: SamplingOptions,
  training: { random: () => number } | null,
): Emulator {
  const backbone = vitBackbone(vit, training ? { training: true, random: training.random } : {});
  if (kind === 'surrogate') return surrogateEmulator(backbone);
  if (formulation !== 'diffusion' && formulation !== 'flow') throw new Error(`formulation must be "diffusion" or "flow", got "${formulation}"`);
  if (kind === 'student') return studentEmulator(backbone, makeFormulation(formulation));
  return diffusionEmulator(backbone, {
    formulation: formulation as FormulationName,
    sampling: { sampler: sampling.sampler as SamplerName, steps: sampling.steps, order: sampling.order },
  });
}

/** The batch as data-parallel workers can shard it: named tensors sharing their first axis (labels when present). */
export type ShardedWindowBatch = { x: tf.Tensor5D; mask: tf.Tensor2D; labels?: tf.Tensor2D };

export function toShardable(b: WindowBatch): ShardedWindowBatch {
  return b.labels ? { x: b.x, mask: b.mask!, labels: b.labels } : { x: b.x, mask: b.mask! };
}

/** An emulator's training loss over a shardable batch, noise from the step's RNG and dropout from `random()`. */
export function emulatorTrainingLoss(
  kind: EmulatorKind,
  vit: Vit,
  formulation: string,
  sampling: SamplingOptions,
  random: () => () => number,
): LossFunction<ShardedWindowBatch> {
  const emulator = buildEmulator(kind, vit, formulation, sampling, { random: () => random()() });
  return (batch, ctx) => emulator.loss({ x: batch.x, mask: batch.mask, labels: batch.labels ?? null }, ctx.rng);
}

export interface LoadEmulatorOptions {
  /**
   * The autoencoder whose latents the emulator will see (its id, or an object with `id` and `dir`): loading
   * fails when the emulator was trained on another autoencoder's latents.
   */
  autoencoder?: string | { id: string; dir?: string };
  /** Expected label names (those of the latent cache it will read): loading fails on a mismatch. */
  labelNames?: readonly string[];
  /**
   * Predict with these sampler settings instead of those recorded at training (a diffusion emulator only: a
   * surrogate or a one-step student has no sampler, and refuses it). Unset entries keep the recorded ones.
   */
  sampling?: Partial<SamplingOptions>;
}

function parseMeta<T>(path: string, meta: Record<string, string>, key: string, fallback?: T): T {
  const text = meta[key];
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`${path}: metadata has no "${key}" entry (not written by wellspring train-surrogate / train-diffusion)`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path}: metadata "${key}" is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Loads a trained emulator (inference mode) from its run directory. Fails naming the directory and the file when
 * it is missing, incomplete, of another kind (an autoencoder run), or trained on another autoencoder's latents.
 */
export async function loadEmulator(dir: string, options: LoadEmulatorOptions = {}): Promise<LoadedEmulator> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`emulator run ${dir}: no such directory`);
  const weights = join(dir, EMULATOR_FILE);
  if (!existsSync(weights)) {
    const other = existsSync(join(dir, 'autoencoder.safetensors'))
      ? ' (it holds autoencoder.safetensors: this is an autoencoder run, not an emulator run)'
      : ' (train it with wellspring train-surrogate or train-diffusion)';
    throw new Error(`emulator run ${dir}: missing ${weights}${other}`);
  }
  await ensureBackend();
  const meta = (await readSafetensors(weights)).metadata;
  const kind = meta.kind;
  if (kind !== 'surrogate' && kind !== 'diffusion' && kind !== 'student') {
    throw new Error(`${weights}: metadata "kind" is ${JSON.stringify(kind)}, expected "surrogate", "diffusion" or "student"`);
  }
  const override = Object.fromEntries(Object.entries(options.sampling ?? {}).filter(([, v]) => v !== undefined)) as Partial<SamplingOptions>;
  if (Object.keys(override).length > 0 && kind !== 'diffusion') {
    throw new Error(`emulator run ${dir}: sampler settings given, but a ${kind} has no sampler (only a diffusion emulator has one)`);
  }
  if (override.sampler !== undefined && !(SAMPLER_NAMES as readonly string[]).includes(override.sampler)) {
    throw new Error(`emulator run ${dir}: unknown sampler ${JSON.stringify(override.sampler)} (expected ${SAMPLER_NAMES.join(', ')})`);
  }
  for (const key of ['steps', 'order'] as const) {
    const v = override[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      throw new Error(`emulator run ${dir}: sampling.${key} must be an integer >= 1, got ${v}`);
    }
  }
  const autoencoder = meta.autoencoder ?? '';
  if (options.autoencoder !== undefined) {
    const expected = typeof options.autoencoder === 'string' ? { id: options.autoencoder } : options.autoencoder;
    if (autoencoder !== expected.id) {
      const where = 'dir' in expected && expected.dir ? ` (${expected.dir})` : '';
      throw new Error(`emulator run ${dir}: ${weights} was trained on latents of autoencoder ${autoencoder || '(none recorded)'}, not ${expected.id}${where}`);
    }
  }
  const labelNames = parseMeta<string[]>(weights, meta, 'labels', []);
  if (options.labelNames && options.labelNames.join() !== labelNames.join()) {
    throw new Error(`emulator run ${dir}: ${weights} expects labels [${labelNames}], the data has [${options.labelNames}]`);
  }
  const vitConfig = parseMeta<VitConfig>(weights, meta, 'vit');
  const vit = createVit(vitConfig);
  try {
    await loadWeights(weights, vit.params);
  } catch (err) {
    vit.dispose();
    throw err;
  }
  const sampling = { ...DEFAULT_SAMPLING, ...parseMeta<Partial<SamplingOptions>>(weights, meta, 'sampling', {}), ...override };
  const formulation = kind === 'surrogate' ? '' : (meta.formulation ?? 'diffusion');
  return {
    dir,
    kind,
    formulation,
    id: await weightsId(weights),
    vit,
    emulator: buildEmulator(kind, vit, formulation, sampling, null),
    spec: { kind, vit: vitConfig, formulation, sampling },
    window: Number(meta.window ?? 5),
    autoencoder,
    labelNames,
    latentShape: vitConfig.tokens ? [vitConfig.tokens[1], vitConfig.tokens[2], vitConfig.channels] : null,
    dispose: () => vit.dispose(),
  };
}

export interface EmulatorEpochsOptions {
  /** Refuse cache files made by another autoencoder. */
  autoencoder: string;
  /** States per training window. */
  window: number;
  batchSize: number;
  /** Run seed (each epoch's shuffle and context draws derive from it, see `emulatorBatches`). */
  seed: number;
  /** Windows held by the shuffle buffer. */
  shuffleBuffer: number;
}

/**
 * Source: training batches (typed arrays) from latent-cache files, epoch after epoch without end; epoch e is
 * `emulatorBatches({ seed, epoch: e })` over a fresh read of the files, so batch k is the same in a resumed run.
 * Holds one epoch's shuffle buffer and one batch; fails when an epoch yields no complete batch.
 */
export async function* emulatorEpochs(files: readonly string[], options: EmulatorEpochsOptions): AsyncGenerator<ContextBatch> {
  const { batchSize, seed, shuffleBuffer, window, autoencoder } = options;
  for (let epoch = 0; ; epoch++) {
    let produced = 0;
    const rows = readLatentCache([...files], { autoencoder });
    for await (const b of emulatorBatches({ window, batchSize, seed, epoch, shuffleBuffer })(rows)) {
      produced++;
      yield b;
    }
    if (produced === 0) throw new Error(`latent cache ${files.join(', ')}: no complete batch of ${batchSize} windows of ${window} states`);
  }
}
