/**
 * Jobs `train-surrogate` and `train-diffusion`: train a latent emulator on the latent cache, the deterministic
 * surrogate (MSE) or the diffusion / flow-matching emulator (denoising loss), both a space-time ViT over windows
 * of L latent states with a random number of observed leading frames. Batches come from `emulatorEpochs` (a pure
 * function of (seed, epoch), so a resumed run sees the same batches as an uninterrupted one); loading the trained
 * run back is `loadEmulator` (src/models/emulators.ts, which also describes the run directory).
 */
import * as tf from '@tensorflow/tfjs';
import { map, pipe, skip, Rng } from '../../src/streams/index.js';
import { latentCacheFiles, openLatentCache, readLatentCache } from '../../src/formats/latent-cache/index.js';
import { createVit, presets, resolveCheckpointing, type VitConfig } from '../../src/models/nn/index.js';
import { Trainer, cosineSchedule, saveWeights, type ParallelGradients } from '../../src/models/train/index.js';
import { contextBatches, latentWindows, windowBatchTensors, type ContextBatch } from '../../src/models/diffusion/index.js';
import { selectBackend, describeBackend } from '../../src/models/backend/index.js';
import {
  DEFAULT_SAMPLING,
  EMULATOR_FILE,
  buildEmulator,
  emulatorEpochs,
  emulatorTrainingLoss,
  loadEmulator,
  toShardable,
  type EmulatorKind,
  type LoadedEmulator,
  type ShardedWindowBatch,
} from '../../src/models/emulators.js';
import { startParallel, trainingWorkers } from '../../src/models/worker-models.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { ConfigError, type SettingDescriptions } from '../cli/config.js';
import type { RunDir } from '../cli/run-dir.js';
import { dataIdentity } from '../../src/sinks/provenance.js';
import { join } from 'node:path';
import { OPTIMIZER_DEFAULTS, TRAIN_RUN_OPTIONS, TRAIN_SETTINGS_HELP, checkTrainConfig, optimizerFor, resumeTrainer, runTraining } from './training.js';
import type { Emulator } from '../../src/models/diffusion/emulator.js';

export type { EmulatorKind } from '../../src/models/emulators.js';

/**
 * The settings of `train-surrogate` and `train-diffusion`; what each means is in `trainEmulatorSettings` (shown
 * by --help). `formulation` and `sampling` are the diffusion emulator's alone (DIFFUSION_ONLY_SETTINGS).
 */
export const trainEmulatorDefaults = {
  cache: '',
  formulation: 'diffusion',
  model: { preset: 'vit-small', width: 256, depth: 6, heads: 4, window: 5, checkpointing: 'auto' },
  train: {
    steps: 2000,
    batchSize: 32,
    lr: 3e-4,
    warmup: 100,
    weightDecay: 0,
    clipNorm: 1,
    ema: 0,
    seed: 0,
    shuffleBuffer: 512,
    checkpointEvery: 250,
    logEvery: 0,
    workers: 0,
    ...OPTIMIZER_DEFAULTS,
  },
  sampling: { ...DEFAULT_SAMPLING },
  valid: { batches: 4, every: 0, select: 'last' },
};
export type TrainEmulatorConfig = typeof trainEmulatorDefaults;

/**
 * How an emulator training job reopens its run directory: the training jobs' rules, and `valid.every` /
 * `valid.select` (added since) at the values of runs recorded before them.
 */
export const TRAIN_EMULATOR_RUN_OPTIONS = {
  // Checkpointing changes memory and speed, not the math (to float32 rounding): a resumed run may switch it.
  mutable: [...TRAIN_RUN_OPTIONS.mutable, 'model.checkpointing'],
  added: { ...TRAIN_RUN_OPTIONS.added, 'valid.every': 0, 'valid.select': 'last' },
};

/** Checks the `valid` settings and `model.checkpointing`, before any work. */
function checkEmulatorSettings(config: TrainEmulatorConfig): void {
  if (!['auto', 'on', 'off'].includes(config.model.checkpointing)) {
    throw new ConfigError(`model.checkpointing must be "auto", "on" or "off", got "${config.model.checkpointing}"`);
  }
  const { batches, every, select } = config.valid;
  if (!Number.isInteger(batches) || batches < 1) throw new ConfigError(`valid.batches must be a positive integer, got ${batches}`);
  if (!Number.isInteger(every) || every < 0) throw new ConfigError(`valid.every must be a whole number of steps (0: only at the end), got ${every}`);
  if (select !== 'last' && select !== 'best') throw new ConfigError(`valid.select must be "last" or "best", got "${select}"`);
  if (select === 'best' && every === 0) throw new ConfigError('valid.select "best" chooses among the scores during training: set valid.every > 0 too');
  if (select === 'best' && config.train.ema > 0) {
    throw new ConfigError('valid.select "best" and train.ema both choose the weights to keep: use one of them (valid.select "last" with an EMA)');
  }
}

/** The settings that only the diffusion emulator has (the surrogate's command neither lists nor accepts them). */
export const DIFFUSION_ONLY_SETTINGS = ['formulation', 'sampling'] as const;

export const trainEmulatorSettings: SettingDescriptions<TrainEmulatorConfig> = {
  cache: 'cache run directory (reads <cache>/cache/train/*.arrow, validates on valid)',
  formulation: '"diffusion" (variance-exploding, EDM preconditioning) or "flow" (rectified flow)',
  model: {
    preset: 'network family (only "vit-small")',
    width: 'token width of the ViT',
    depth: 'transformer blocks',
    heads: 'attention heads per block',
    window: 'latent states per training window (context + predicted)',
    checkpointing: '"auto" (recompute the blocks in the backward pass only when the kept intermediates of one thread\'s share of the batch would pass 2 GB of the 4 GB wasm heap), "on" or "off"',
  },
  train: TRAIN_SETTINGS_HELP,
  sampling: {
    sampler: 'sampler at prediction time: "ab" (Adams-Bashforth), "euler", "heun" or "ddpm"',
    steps: 'denoising steps per sample',
    order: 'order of the Adams-Bashforth sampler',
  },
  valid: {
    batches: 'validation batches per score (fixed seed, so scores compare)',
    every: 'steps between validation scores during training (0: only at the end)',
    select: '"last": the final weights become the model; "best": the best-scoring weights among the scores during training (needs valid.every > 0; kept in checkpoints/best.safetensors)',
  },
};

/** The ViT of the settings; `threadBatch` (samples per training thread) decides `model.checkpointing: auto`. */
function vitConfigFor(config: TrainEmulatorConfig, kind: EmulatorKind, latent: [number, number, number], labels: number, threadBatch: number): VitConfig {
  if (config.model.preset !== 'vit-small') throw new ConfigError(`model.preset "${config.model.preset}": the only ViT preset is "vit-small"`);
  const [h, w, c] = latent;
  const tokens = [config.model.window, h, w] as const;
  return presets['vit-small']({
    channels: c,
    width: config.model.width,
    depth: config.model.depth,
    heads: config.model.heads,
    tokens,
    noise: kind === 'diffusion',
    labelFeatures: labels,
    seed: config.train.seed,
    checkpointing: resolveCheckpointing(config.model.checkpointing, { width: config.model.width, depth: config.model.depth, tokens }, threadBatch),
  });
}

/**
 * Trains a surrogate or diffusion emulator into `run`, resuming from its last checkpoint. Returns the loaded
 * emulator with its validation loss and the steps trained.
 */
export async function trainEmulator(
  kind: EmulatorKind,
  config: TrainEmulatorConfig,
  run: RunDir,
  signal?: AbortSignal,
): Promise<LoadedEmulator & { validLoss: number; steps: number }> {
  checkTrainConfig(config.train);
  checkEmulatorSettings(config);
  if (!config.cache) throw new ConfigError('cache is not set: give the cache run directory (--cache DIR)');
  const backend = await selectBackend();
  console.error(describeBackend(backend));
  const trainFiles = await latentCacheFiles(config.cache, 'train');
  await run.describe({ backend, data: await dataIdentity(join(config.cache, 'cache'), { stats: null }) });
  const info = await openLatentCache(trainFiles[0]!);
  const [T, h, w, c] = info.shape;
  if (T < config.model.window) throw new ConfigError(`model.window (${config.model.window}) is longer than the cached trajectories (${T} states)`);
  const workers = trainingWorkers(config.train.workers, backend);
  const vitConfig = vitConfigFor(config, kind, [h, w, c], info.labelNames.length, Math.ceil(config.train.batchSize / workers));
  const vit = createVit(vitConfig);
  await run.log('model', { kind, parameters: [...vit.params.values()].reduce((a, v) => a + v.size, 0), autoencoder: info.autoencoder, checkpointing: vitConfig.checkpointing });

  let parallel: ParallelGradients | undefined; // started once the checkpoint is restored (a bad one leaves no threads)
  let trainerRandom: () => number = Math.random;
  const loss = emulatorTrainingLoss(kind, vit, config.formulation, config.sampling, () => trainerRandom);
  const trainer = new Trainer<ShardedWindowBatch>({
    params: vit.params,
    gradients: workers > 1 ? (batch, ctx) => parallel!.compute(batch, ctx) : undefined,
    optimizer: optimizerFor(config.train, [0.9, 0.99]),
    schedule: cosineSchedule({ lr: config.train.lr, warmup: config.train.warmup, total: config.train.steps }),
    clipNorm: config.train.clipNorm,
    seed: config.train.seed,
    emaDecay: config.train.ema > 0 ? config.train.ema : undefined,
    loss: (batch, ctx) => {
      trainerRandom = ctx.random; // dropout masks from the checkpointed RNG
      return loss(batch, ctx);
    },
  });
  const checkpoint = await resumeTrainer(trainer, run);
  parallel = await startParallel(workers, vit.params, { kind, vit: vitConfig, formulation: config.formulation, sampling: config.sampling });
  await run.log('workers', { workers });
  const batches = pipe(
    emulatorEpochs(trainFiles, {
      autoencoder: info.autoencoder,
      window: config.model.window,
      batchSize: config.train.batchSize,
      seed: config.train.seed,
      shuffleBuffer: config.train.shuffleBuffer,
    }),
    skip(trainer.step), // the batches an earlier run already trained on
    map((b: ContextBatch) => toShardable(windowBatchTensors(b)), 'upload-batch'),
  );
  const validFiles = await latentCacheFiles(config.cache, 'valid');
  const inference = buildEmulator(kind, vit, config.formulation, config.sampling, null); // the training weights, no dropout
  const validation =
    config.valid.every > 0
      ? {
          every: config.valid.every,
          score: () => validationLoss(inference, info.autoencoder, config.model.window, validFiles, config),
          keepBest: config.valid.select === 'best' ? { path: run.path('checkpoints', 'best.safetensors'), params: vit.params } : undefined,
        }
      : undefined;
  const { selected } = await runTraining({ trainer, batches, steps: config.train.steps, run, checkpoint, checkpointEvery: config.train.checkpointEvery, logEvery: config.train.logEvery, label: `train-${kind} steps`, signal, parallel, validation });

  const weights = run.path(EMULATOR_FILE);
  await saveWeights(weights, vit.params, {
    kind,
    vit: JSON.stringify(vitConfig),
    formulation: config.formulation,
    sampling: JSON.stringify(config.sampling),
    window: String(config.model.window),
    autoencoder: info.autoencoder,
    labels: JSON.stringify(info.labelNames),
    steps: String(trainer.step),
    select: config.valid.select,
  });
  const loaded = await loadEmulator(run.dir, { autoencoder: info.autoencoder });
  const validLoss = await validationLoss(loaded.emulator, loaded.autoencoder, loaded.window, validFiles, config);
  const selectedStep = selected?.step ?? trainer.step;
  await writeFileAtomic(run.path('metrics.json'), JSON.stringify({ kind, steps: trainer.step, validLoss, select: config.valid.select, selectedStep }, null, 2));
  await run.log('validation', { validLoss, model: 'saved', selectedStep });
  vit.dispose();
  return { ...loaded, validLoss, steps: trainer.step };
}

/** Mean loss over a few validation batches (fixed seed and noise, so runs and steps compare). */
async function validationLoss(emulator: Emulator, autoencoder: string, window: number, files: string[], config: TrainEmulatorConfig): Promise<number> {
  const batches = pipe(
    readLatentCache(files, { autoencoder }),
    latentWindows({ window }),
    contextBatches({ batchSize: Math.min(config.train.batchSize, 16), seed: 12345, dropLast: false }),
  );
  const rng = new Rng(777);
  let total = 0;
  let n = 0;
  for await (const b of batches) {
    const tensors = windowBatchTensors(b);
    const value = tf.tidy(() => emulator.loss(tensors, rng));
    total += (await value.data())[0]!;
    tf.dispose([value, tensors.x]);
    if (tensors.mask) tensors.mask.dispose();
    if (tensors.labels) tensors.labels.dispose();
    if (++n >= config.valid.batches) break;
  }
  return n > 0 ? total / n : Number.NaN;
}
