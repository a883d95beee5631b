/**
 * Training the latent emulators on the latent cache: the deterministic surrogate (MSE) and the diffusion or
 * flow-matching emulator (denoising loss), both a space-time ViT over windows of L latent states with a random
 * number of observed leading frames. The data stream is a pure function of (seed, epoch), so a resumed run sees
 * the same batches as an uninterrupted one.
 *
 * An emulator run directory holds `emulator.safetensors` (weights; metadata: ViT config, kind, formulation,
 * sampler, label names, latent shape and the autoencoder id of the cache it learned from), `checkpoints/` and
 * `metrics.json` (validation loss).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { map, pipe, shuffle, skip } from '../src/streams/index.js';
import { openLatentCache, readLatentCache } from '../src/streams/latent-cache.js';
import { createVit, presets, type Vit, type VitConfig } from '../src/models/nn/index.js';
import { Trainer, cosineSchedule, loadWeights, saveWeights, type ParallelGradients } from '../src/models/train/index.js';
import {
  contextBatches,
  latentWindows,
  windowBatchTensors,
  type Emulator,
  type ContextBatch,
  type LatentTrajectory,
} from '../src/models/diffusion/index.js';
import { selectBackend, describeBackend } from '../src/models/backend/index.js';
import { readSafetensors } from '../src/models/train/safetensors.js';
import { writeFileAtomic } from '../src/sinks/files.js';
import { ConfigError } from './config.js';
import { checkTrainConfig, mixSeed } from './autoencoder.js';
import type { RunDir } from './run-dir.js';
import { resumeTrainer, runTraining } from './training.js';
import { buildEmulator, emulatorTrainingLoss, startParallel, toShardable, trainingWorkers, type ShardedWindowBatch } from './worker-models.js';

export type EmulatorKind = 'surrogate' | 'diffusion';

export const trainEmulatorDefaults = {
  /** Run directory of the cache pipeline (reads `<cache>/cache/train/*.arrow`, validates on `valid`). */
  cache: '',
  /** For diffusion: 'diffusion' (variance-exploding, EDM preconditioning) or 'flow' (rectified flow). */
  formulation: 'diffusion',
  model: { preset: 'vit-small', width: 256, depth: 6, heads: 4, window: 5 },
  train: {
    steps: 2000,
    batchSize: 32,
    lr: 3e-4,
    warmup: 100,
    weightDecay: 0,
    clipNorm: 1,
    seed: 0,
    shuffleBuffer: 512,
    checkpointEvery: 250,
    /** Worker threads computing gradients in parallel (0: one per core on wasm, 1 on TensorFlow). */
    workers: 0,
  },
  /** Sampler used by the diffusion emulator at prediction time. */
  sampling: { sampler: 'ab', steps: 16, order: 3 },
  valid: { batches: 4 },
};
export type TrainEmulatorConfig = typeof trainEmulatorDefaults;

export interface LoadedEmulator {
  kind: EmulatorKind;
  emulator: Emulator;
  vit: Vit;
  window: number;
  /** Autoencoder id of the latents it was trained on. */
  autoencoder: string;
  labelNames: string[];
}

async function cacheFiles(cacheRun: string, split: string): Promise<string[]> {
  const dir = join(cacheRun, 'cache', split);
  if (!existsSync(dir)) throw new Error(`latent cache ${cacheRun}: no ${split} split at ${dir} (run wellspring cache first)`);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.arrow') && !f.includes('.shard-')).sort();
  if (files.length === 0) throw new Error(`latent cache ${dir}: no .arrow files (merge shards with wellspring cache --merge)`);
  return files.map((f) => join(dir, f));
}

function vitConfigFor(config: TrainEmulatorConfig, kind: EmulatorKind, latent: [number, number, number], labels: number): VitConfig {
  if (config.model.preset !== 'vit-small') throw new ConfigError(`model.preset "${config.model.preset}": the only ViT preset is "vit-small"`);
  const [h, w, c] = latent;
  return presets['vit-small']({
    channels: c,
    width: config.model.width,
    depth: config.model.depth,
    heads: config.model.heads,
    tokens: [config.model.window, h, w],
    noise: kind === 'diffusion',
    labelFeatures: labels,
    seed: config.train.seed,
  });
}

/** Window batches as typed arrays, epoch after epoch, each epoch's shuffle and context draws seeded by (seed, epoch). */
async function* epochBatches(files: string[], autoencoder: string, config: TrainEmulatorConfig) {
  const { batchSize, seed, shuffleBuffer } = config.train;
  for (let epoch = 0; ; epoch++) {
    let produced = 0;
    const rows = readLatentCache(files, { autoencoder });
    const batches = pipe(
      rows as AsyncIterable<LatentTrajectory>,
      latentWindows({ window: config.model.window }),
      shuffle(Math.max(1, shuffleBuffer), mixSeed(seed, epoch)),
      contextBatches({ batchSize, seed: mixSeed(seed ^ 0x51ed, epoch) }),
    );
    for await (const b of batches) {
      produced++;
      yield b;
    }
    if (produced === 0) throw new Error(`latent cache ${files.join(', ')}: no complete batch of ${batchSize} windows of ${config.model.window} states`);
  }
}

/** Trains a surrogate or diffusion emulator into `run`, resuming from its last checkpoint. */
export async function trainEmulator(kind: EmulatorKind, config: TrainEmulatorConfig, run: RunDir, signal?: AbortSignal): Promise<LoadedEmulator> {
  checkTrainConfig(config.train);
  if (!config.cache) throw new ConfigError('cache is not set: give the cache run directory (--cache DIR)');
  const backend = await selectBackend();
  console.error(describeBackend(backend));
  const trainFiles = await cacheFiles(config.cache, 'train');
  const info = await openLatentCache(trainFiles[0]!);
  const [T, h, w, c] = info.shape;
  if (T < config.model.window) throw new ConfigError(`model.window (${config.model.window}) is longer than the cached trajectories (${T} states)`);
  const vitConfig = vitConfigFor(config, kind, [h, w, c], info.labelNames.length);
  const vit = createVit(vitConfig);
  await run.log('model', { kind, parameters: [...vit.params.values()].reduce((a, v) => a + v.size, 0), autoencoder: info.autoencoder });

  const workers = trainingWorkers(config.train.workers, backend);
  let parallel: ParallelGradients | undefined; // started once the checkpoint is restored (a bad one leaves no threads)
  let trainerRandom: () => number = Math.random;
  const loss = emulatorTrainingLoss(kind, vit, config.formulation, config.sampling, () => trainerRandom);
  const trainer = new Trainer<ShardedWindowBatch>({
    params: vit.params,
    gradients: workers > 1 ? (batch, ctx) => parallel!.compute(batch, ctx) : undefined,
    optimizer: { lr: config.train.lr, betas: [0.9, 0.99], weightDecay: config.train.weightDecay },
    schedule: cosineSchedule({ lr: config.train.lr, warmup: config.train.warmup, total: config.train.steps }),
    clipNorm: config.train.clipNorm,
    seed: config.train.seed,
    loss: (batch, ctx) => {
      trainerRandom = ctx.random; // dropout masks from the checkpointed RNG
      return loss(batch, ctx);
    },
  });
  const checkpoint = await resumeTrainer(trainer, run);
  parallel = await startParallel(workers, vit.params, { kind, vit: vitConfig, formulation: config.formulation, sampling: config.sampling });
  await run.log('workers', { workers });
  const batches = pipe(
    epochBatches(trainFiles, info.autoencoder, config),
    skip(trainer.step), // the batches an earlier run already trained on
    map((b: ContextBatch) => toShardable(windowBatchTensors(b)), 'upload-batch'),
  );
  await runTraining({ trainer, batches, steps: config.train.steps, run, checkpoint, checkpointEvery: config.train.checkpointEvery, label: `train-${kind} steps`, signal, parallel });

  const weights = run.path('emulator.safetensors');
  await saveWeights(weights, vit.params, {
    kind,
    vit: JSON.stringify(vitConfig),
    formulation: config.formulation,
    sampling: JSON.stringify(config.sampling),
    window: String(config.model.window),
    autoencoder: info.autoencoder,
    labels: JSON.stringify(info.labelNames),
    steps: String(trainer.step),
  });
  const loaded = await loadEmulator(run.dir);
  const validLoss = await validationLoss(loaded, await cacheFiles(config.cache, 'valid'), config);
  await writeFileAtomic(run.path('metrics.json'), JSON.stringify({ kind, steps: trainer.step, validLoss }, null, 2));
  await run.log('validation', { validLoss });
  vit.dispose();
  return loaded;
}

/** Mean loss over a few validation batches (fixed seed, so runs compare). */
async function validationLoss(loaded: LoadedEmulator, files: string[], config: TrainEmulatorConfig): Promise<number> {
  const batches = pipe(
    readLatentCache(files, { autoencoder: loaded.autoencoder }) as AsyncIterable<LatentTrajectory>,
    latentWindows({ window: loaded.window }),
    contextBatches({ batchSize: Math.min(config.train.batchSize, 16), seed: 12345, dropLast: false }),
  );
  const { Rng } = await import('../src/streams/random.js');
  const rng = new Rng(777);
  let total = 0;
  let n = 0;
  for await (const b of batches) {
    const tensors = windowBatchTensors(b);
    const value = tf.tidy(() => loaded.emulator.loss(tensors, rng));
    total += (await value.data())[0]!;
    tf.dispose([value, tensors.x]);
    if (tensors.mask) tensors.mask.dispose();
    if (tensors.labels) tensors.labels.dispose();
    if (++n >= config.valid.batches) break;
  }
  return n > 0 ? total / n : Number.NaN;
}

/** Loads a trained emulator (inference mode) from its run directory. */
export async function loadEmulator(dir: string): Promise<LoadedEmulator> {
  const weights = join(dir, 'emulator.safetensors');
  if (!existsSync(weights)) throw new Error(`emulator run ${dir}: missing ${weights} (train it with wellspring train-surrogate or train-diffusion)`);
  await selectBackend();
  const meta = (await readSafetensors(weights)).metadata;
  if (!meta.vit || !meta.kind) throw new Error(`${weights}: no ViT config in its metadata (not written by wellspring)`);
  const kind = meta.kind as EmulatorKind;
  const vit = createVit(JSON.parse(meta.vit) as VitConfig);
  await loadWeights(weights, vit.params);
  const sampling = JSON.parse(meta.sampling ?? '{}') as TrainEmulatorConfig['sampling'];
  return {
    kind,
    vit,
    emulator: buildEmulator(kind, vit, meta.formulation ?? 'diffusion', { ...trainEmulatorDefaults.sampling, ...sampling }, null),
    window: Number(meta.window ?? 5),
    autoencoder: meta.autoencoder ?? '',
    labelNames: JSON.parse(meta.labels ?? '[]') as string[],
  };
}
