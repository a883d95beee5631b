/**
 * Job `train-ae`: train a DCAE on normalised physical frames of a Well dataset's train split, then score its
 * reconstructions on the valid split. Loading the trained run back, encoding and decoding are library functions
 * (src/models/autoencoder.ts); this job composes them with the dataset reader and the trainer.
 *
 * The run directory it writes is described in src/models/autoencoder.ts.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import {
  IDENTITY_TRANSFORM,
  batch,
  channelGeometry,
  epochOrder,
  map,
  mixSeed,
  pipe,
  prefetch,
  randomTransform,
  Rng,
  type GridTransform,
} from '../../src/streams/index.js';
import { computeWellStats, openWellDataset, WellNormalizer, wellSplitDir } from '../../src/formats/well/index.js';
import { createDcae, presets, type Dcae, type DcaeConfig } from '../../src/models/nn/index.js';
import { Trainer, cosineSchedule, saveWeights, type ParallelGradients } from '../../src/models/train/index.js';
import { selectBackend, describeBackend } from '../../src/models/backend/index.js';
import {
  AUTOENCODER_FILES,
  autoencoderDataOf,
  autoencoderFrom,
  autoencoderId,
  augmentNormalize,
  encodePhysical,
  decodeToPhysical,
  type AutoencoderData,
  type LoadedAutoencoder,
  type NormalizationRecord,
} from '../../src/models/autoencoder.js';
import { dcaeLoss, startParallel, trainingWorkers } from '../../src/models/worker-models.js';
import { METRICS, scoreFrame } from '../../src/sinks/metrics/index.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { dataIdentity } from '../../src/sinks/provenance.js';
import { ConfigError, type ConfigObject, type SettingDescriptions } from '../cli/config.js';
import { OPTIMIZER_DEFAULTS, TRAIN_SETTINGS_HELP, checkTrainConfig, optimizerFor, resumeTrainer, runTraining } from './training.js';
import type { RunDir } from '../cli/run-dir.js';

/** The settings of `train-ae`; what each means is in `trainAeSettings` (shown by --help). */
export const trainAeDefaults = {
  data: {
    root: '',
    normalization: 'zscore',
    log1p: ['density', 'pressure', 'energy'],
  },
  model: {
    preset: 'dcae-small',
    latentChannels: 16,
    channels: [32, 64, 128, 256],
    blocks: 1,
    dropout: 0.05,
  },
  train: {
    steps: 2000,
    batchSize: 16,
    lr: 1e-3,
    warmup: 100,
    weightDecay: 0,
    clipNorm: 1,
    ema: 0,
    seed: 0,
    augment: true,
    checkpointEvery: 250,
    logEvery: 0,
    workers: 0,
    ...OPTIMIZER_DEFAULTS,
  },
  valid: {
    frames: 64,
  },
};
export type TrainAeConfig = typeof trainAeDefaults;

export const trainAeSettings: SettingDescriptions<TrainAeConfig> = {
  data: {
    root: 'dataset root holding data/{train,valid,test} (and stats.yaml)',
    normalization: '"zscore" (mean, std) or "rms" per channel, computed on the train split',
    log1p: 'fields log1p-transformed before normalising (positive fields spanning decades)',
  },
  model: {
    preset: 'network family (only "dcae-small")',
    latentChannels: 'channels of the latent state',
    channels: 'channels per resolution level (each level halves the grid)',
    blocks: 'residual blocks per level',
    dropout: 'dropout probability in the residual blocks',
  },
  train: TRAIN_SETTINGS_HELP,
  valid: {
    frames: 'validation frames scored at the end (evenly spaced over the valid split)',
  },
};

/** Opens the train split and derives the data description the autoencoder needs. */
async function describeData(root: string): Promise<{ data: AutoencoderData; trainDir: string; validDir: string }> {
  const trainDir = wellSplitDir(root, 'train');
  const validDir = wellSplitDir(root, 'valid');
  for (const dir of [trainDir, validDir]) {
    if (!existsSync(dir)) throw new Error(`dataset root ${root}: missing split directory ${dir} (expected <root>/data/{train,valid,test})`);
  }
  const ds = await openWellDataset(trainDir, { nIn: 1, nOut: 1 });
  return { trainDir, validDir, data: autoencoderDataOf(ds.files[0]!) };
}

function dcaeConfigFor(config: TrainAeConfig, data: AutoencoderData): DcaeConfig {
  if (config.model.preset !== 'dcae-small') throw new ConfigError(`model.preset "${config.model.preset}": the only DCAE preset is "dcae-small"`);
  return presets['dcae-small']({
    inChannels: data.layout.names.length,
    latentChannels: config.model.latentChannels,
    channels: config.model.channels,
    blocks: config.model.blocks,
    dropout: config.model.dropout,
    periodic: data.periodic,
    inputSize: data.spatialShape,
    seed: config.train.seed,
  });
}

/**
 * Trains the autoencoder into `run`. Resumes from `checkpoints/last.safetensors` when present. Returns the loaded
 * model with its validation scores. The data stream is a pure function of (seed, position), so a resumed run sees the same batches.
 */
export async function trainAutoencoder(config: TrainAeConfig, run: RunDir, signal?: AbortSignal): Promise<LoadedAutoencoder & { validation: ReconstructionMetrics }> {
  checkTrainConfig(config.train);
  if (!config.data.root) throw new ConfigError('data.root is not set: give the dataset root (holding data/train, data/valid)');
  const { data, trainDir, validDir } = await describeData(config.data.root);
  const dcaeConfig = dcaeConfigFor(config, data);
  // Everything is validated: from here on the run directory is written.
  const backend = await selectBackend();
  await run.log('backend', { backend: backend.name, gpu: backend.gpu, ...(backend.adapter ? { adapter: backend.adapter } : {}) });
  await run.describe({ backend, data: await dataIdentity(config.data.root) });
  console.error(describeBackend(backend));

  // Normalisation statistics of the (transformed) train split, computed once per run.
  const transforms = Object.fromEntries(config.data.log1p.filter((f) => data.layout.fields.includes(f)).map((f) => [f, 'log1p' as const]));
  const normPath = run.path(AUTOENCODER_FILES.normalization);
  let normalization: NormalizationRecord;
  if (existsSync(normPath)) {
    try {
      normalization = JSON.parse(await readFile(normPath, 'utf8')) as NormalizationRecord;
    } catch (err) {
      throw new Error(`${normPath}: unreadable normalisation record of this run (${(err as Error).message}); delete it to recompute the statistics`);
    }
  } else {
    const { stats } = await computeWellStats(trainDir, { transforms });
    normalization = { kind: config.data.normalization as 'zscore' | 'rms', transforms, stats };
    await writeFileAtomic(normPath, JSON.stringify(normalization, null, 1));
  }
  const normalizer = new WellNormalizer(normalization.stats, { kind: normalization.kind, transforms });

  const dcae = createDcae(dcaeConfig);
  const { batchSize, seed, steps } = config.train;
  const workers = trainingWorkers(config.train.workers, backend);
  let parallel: ParallelGradients | undefined; // started once the checkpoint is restored (a bad one leaves no threads)
  const trainer = new Trainer<tf.Tensor4D>({
    params: dcae.params,
    gradients: workers > 1 ? (x, ctx) => parallel!.compute(x, ctx) : undefined,
    optimizer: optimizerFor(config.train),
    schedule: cosineSchedule({ lr: config.train.lr, warmup: config.train.warmup, total: steps }),
    clipNorm: config.train.clipNorm,
    seed,
    emaDecay: config.train.ema > 0 ? config.train.ema : undefined,
    loss: dcaeLoss(dcae),
  });
  const checkpoint = await resumeTrainer(trainer, run);
  parallel = await startParallel(workers, dcae.params, { kind: 'dcae', config: dcaeConfig });
  await run.log('workers', { workers });

  const ds = await openWellDataset(trainDir, { nIn: 1, nOut: 1 });
  const [H, W] = data.spatialShape;
  const C = data.layout.names.length;
  const geometry = channelGeometry(data.layout);
  const start = trainer.step * batchSize;
  const frames = pipe(
    ds.windows({ indices: epochOrder(ds.length, seed, start), prefetch: 8 }),
    map((sample, k) => {
      // Augmented in physical units, then normalised (a flip mirrors a velocity about zero, not about its mean).
      const t: GridTransform = config.train.augment
        ? randomTransform(new Rng(mixSeed(seed, start + k, 0xa5)), { periodic: data.periodic, size: [H, W] })
        : IDENTITY_TRANSFORM;
      return augmentNormalize(normalizer, sample.layout, sample.inputFields.data, [1, H, W, C], t, geometry);
    }, 'augment-normalise'),
    batch(batchSize),
    map((group: Float32Array[]) => {
      const flat = new Float32Array(group.length * H * W * C);
      group.forEach((f, i) => flat.set(f, i * H * W * C));
      return tf.tensor4d(flat, [group.length, H, W, C]);
    }, 'to-tensor'),
    prefetch(2),
  );
  await runTraining({ trainer, batches: frames, steps, run, checkpoint, checkpointEvery: config.train.checkpointEvery, logEvery: config.train.logEvery, label: 'train-ae steps', signal, parallel });

  const weights = run.path(AUTOENCODER_FILES.weights);
  await saveWeights(weights, dcae.params, {
    dcae: JSON.stringify(dcaeConfig),
    data: JSON.stringify(data),
    steps: String(trainer.step),
  });
  const loaded = autoencoderFrom(dcae, normalization, data, await autoencoderId(weights), run.dir);
  const metrics = await validateAutoencoder(loaded, validDir, config.valid.frames);
  await writeFileAtomic(run.path('metrics.json'), JSON.stringify(metrics, null, 2));
  await run.log('validation', { ...metrics });
  return { ...loaded, validation: metrics };
}

export interface ReconstructionMetrics extends ConfigObject {
  frames: number;
  /** VRMSE (The Well's convention) in physical units, per channel and mean, of the reconstruction. */
  vrmse: Record<string, number>;
  vrmseMean: number;
  /** The same for predicting the train split's mean field (the identity-mean baseline). */
  baselineVrmse: Record<string, number>;
  baselineVrmseMean: number;
}

/** One channel of channel-last frames (N, C) as float64. */
function channel(data: Float32Array, c: number, C: number): Float64Array {
  const out = new Float64Array(data.length / C);
  for (let p = 0; p < out.length; p++) out[p] = data[p * C + c]!;
  return out;
}

const VRMSE = METRICS.indexOf('vrmse');

/**
 * Scores reconstructions of `frames` validation frames (evenly spaced over the split) against the train-mean
 * baseline, in physical units, with the metric sinks' VRMSE (The Well's convention).
 */
export async function validateAutoencoder(ae: LoadedAutoencoder, validDir: string, frames: number): Promise<ReconstructionMetrics> {
  const ds = await openWellDataset(validDir, { nIn: 1, nOut: 1 });
  const count = Math.min(frames, ds.length);
  const indices = Array.from({ length: count }, (_, i) => Math.floor((i * ds.length) / count));
  const names = ae.data.layout.names;
  const C = names.length;
  const shape = ae.data.spatialShape;
  const sums = { err: new Float64Array(C), base: new Float64Array(C) };
  // The baseline predicts, per channel, the physical value whose normalised value is 0 (the train mean).
  const meanField = ae.normalizer.denormalize(new Float32Array(C), ae.data.layout);
  for await (const sample of ds.windows({ indices })) {
    const truth = sample.inputFields.data;
    const recon = await decodeToPhysical(ae, await encodePhysical(ae, truth, 1), 1);
    for (let c = 0; c < C; c++) {
      const u = channel(truth, c, C);
      const score = (prediction: Float64Array) => scoreFrame(u, [prediction], shape, { skipW1: true }).values[VRMSE]!;
      sums.err[c]! += score(channel(recon, c, C));
      sums.base[c]! += score(new Float64Array(u.length).fill(meanField[c]!));
    }
  }
  const perChannel = (s: Float64Array) => Object.fromEntries(names.map((n, c) => [n, s[c]! / count]));
  const mean = (s: Float64Array) => s.reduce((a, b) => a + b, 0) / (C * count);
  return { frames: count, vrmse: perChannel(sums.err), vrmseMean: mean(sums.err), baselineVrmse: perChannel(sums.base), baselineVrmseMean: mean(sums.base) };
}
