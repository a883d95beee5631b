/**
 * The autoencoder stage of the workflow: train a DCAE on normalised physical frames, and load a trained one back
 * (with the normalisation it was trained under) for caching latents and decoding rollouts.
 *
 * A trained autoencoder run directory holds:
 * - `autoencoder.safetensors`: final weights; its `__metadata__` carries the DCAE config and dataset layout;
 * - `normalization.json`: the statistics (of log1p-transformed fields where configured) and transforms;
 * - `checkpoints/last.safetensors`: the full training state, for resuming;
 * - `metrics.json`: validation reconstruction scores and the mean-field baseline.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import {
  applyTransform,
  batch,
  channelGeometry,
  map,
  pipe,
  prefetch,
  randomTransform,
  Rng,
  type GridTransform,
} from '../src/streams/index.js';
import {
  computeWellStats,
  openWellDataset,
  seededPermutation,
  WellNormalizer,
  wellSplitDir,
  type ChannelLayout,
  type WellStats,
} from '../src/streams/well/index.js';
import { createDcae, presets, type Dcae, type DcaeConfig } from '../src/models/nn/index.js';
import { Trainer, cosineSchedule, loadWeights, saveWeights, type ParallelGradients } from '../src/models/train/index.js';
import { selectBackend, describeBackend } from '../src/models/backend/index.js';
import { writeFileAtomic } from '../src/sinks/files.js';
import { ConfigError, type ConfigObject } from './config.js';
import { dcaeLoss, startParallel, trainingWorkers } from './worker-models.js';
import { resumeTrainer, runTraining } from './training.js';
import type { RunDir } from './run-dir.js';

export const trainAeDefaults = {
  data: {
    /** Dataset root holding data/{train,valid,test} (and stats.yaml). */
    root: '',
    normalization: 'zscore',
    /** Fields log1p-transformed before normalising (positive fields spanning decades). */
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
    seed: 0,
    augment: true,
    checkpointEvery: 250,
    /** Worker threads computing gradients in parallel (0: one per core on wasm, 1 on TensorFlow). */
    workers: 0,
  },
  valid: {
    /** Validation frames scored at the end (evenly spaced over the valid split). */
    frames: 64,
  },
};
export type TrainAeConfig = typeof trainAeDefaults;

export interface NormalizationRecord {
  kind: 'zscore' | 'rms';
  transforms: Record<string, 'log1p'>;
  stats: WellStats;
}

/** What the autoencoder needs to know about the data it was trained on. */
export interface AutoencoderData {
  layout: ChannelLayout;
  spatialDims: string[];
  spatialShape: [number, number];
  periodic: [boolean, boolean];
}

export interface LoadedAutoencoder {
  dcae: Dcae;
  normalizer: WellNormalizer;
  normalization: NormalizationRecord;
  data: AutoencoderData;
  /** Identifies these weights (hash of the weights file), stamped into latent caches. */
  id: string;
  /** Latent shape (h, w, c) of one state. */
  latentShape: [number, number, number];
}

const PERIODIC = 2;

/** Opens the train split and derives the data description the autoencoder needs. */
async function describeData(root: string): Promise<{ data: AutoencoderData; trainDir: string; validDir: string }> {
  const trainDir = wellSplitDir(root, 'train');
  const validDir = wellSplitDir(root, 'valid');
  for (const dir of [trainDir, validDir]) {
    if (!existsSync(dir)) throw new Error(`dataset root ${root}: missing split directory ${dir} (expected <root>/data/{train,valid,test})`);
  }
  const ds = await openWellDataset(trainDir, { nIn: 1, nOut: 1 });
  const meta = ds.files[0]!;
  if (meta.nSpatialDims !== 2) throw new Error(`${meta.path}: the autoencoder handles 2D data, this file has ${meta.nSpatialDims} spatial dims`);
  const bc = meta.boundaryTable;
  return {
    trainDir,
    validDir,
    data: {
      layout: meta.layout,
      spatialDims: meta.spatialDims,
      spatialShape: [meta.spatialShape[0]!, meta.spatialShape[1]!],
      periodic: [bc[0] === PERIODIC && bc[1] === PERIODIC, bc[2] === PERIODIC && bc[3] === PERIODIC],
    },
  };
}

function dcaeConfigFor(config: TrainAeConfig, data: AutoencoderData): DcaeConfig {
  if (config.model.preset !== 'dcae-small') throw new Error(`model.preset "${config.model.preset}": the only DCAE preset is "dcae-small"`);
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

/** Checks training settings that the types cannot, before any work. */
export function checkTrainConfig(train: { steps: number; batchSize: number; warmup: number; lr: number; checkpointEvery: number }): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`train.${name} must be a positive integer, got ${v}`);
  };
  positive('steps', train.steps);
  positive('batchSize', train.batchSize);
  positive('checkpointEvery', train.checkpointEvery);
  if (!(train.lr > 0)) throw new ConfigError(`train.lr must be positive, got ${train.lr}`);
  if (!Number.isInteger(train.warmup) || train.warmup < 0 || train.warmup >= train.steps) {
    throw new ConfigError(`train.warmup (${train.warmup}) must be an integer in [0, train.steps = ${train.steps})`);
  }
}

/** A stable 32-bit mix of integers, for per-sample seeds that do not depend on iteration history. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  }
  return h;
}

/** Sample indices epoch after epoch (a fresh seeded permutation each epoch), from global position `from`. */
function* epochIndices(n: number, seed: number, from: number): Generator<number> {
  for (let epoch = Math.floor(from / n); ; epoch++) {
    const order = seededPermutation(n, mixSeed(seed, epoch));
    for (let i = epoch === Math.floor(from / n) ? from % n : 0; i < n; i++) yield order[i]!;
  }
}

/**
 * Trains the autoencoder into `run`. Resumes from `checkpoints/last.safetensors` when present. Returns the loaded
 * model. The data stream is a pure function of (seed, position), so a resumed run sees the same batches.
 */
export async function trainAutoencoder(config: TrainAeConfig, run: RunDir, signal?: AbortSignal): Promise<LoadedAutoencoder> {
  checkTrainConfig(config.train);
  const backend = await selectBackend();
  await run.log('backend', { backend: backend.name, gpu: backend.gpu });
  console.error(describeBackend(backend));
  if (!config.data.root) throw new Error('data.root is not set: give the dataset root (holding data/train, data/valid)');
  const { data, trainDir, validDir } = await describeData(config.data.root);

  // Normalisation statistics of the (transformed) train split, computed once per run.
  const transforms = Object.fromEntries(config.data.log1p.filter((f) => data.layout.fields.includes(f)).map((f) => [f, 'log1p' as const]));
  const normPath = run.path('normalization.json');
  let normalization: NormalizationRecord;
  if (existsSync(normPath)) {
    normalization = JSON.parse(await readFile(normPath, 'utf8')) as NormalizationRecord;
  } else {
    const { stats } = await computeWellStats(trainDir, { transforms });
    normalization = { kind: config.data.normalization as 'zscore' | 'rms', transforms, stats };
    await writeFileAtomic(normPath, JSON.stringify(normalization, null, 1));
  }
  const normalizer = new WellNormalizer(normalization.stats, { kind: normalization.kind, transforms });

  const dcaeConfig = dcaeConfigFor(config, data);
  const dcae = createDcae(dcaeConfig);
  const { batchSize, seed, steps } = config.train;
  const workers = trainingWorkers(config.train.workers, backend);
  let parallel: ParallelGradients | undefined; // started once the checkpoint is restored (a bad one leaves no threads)
  const trainer = new Trainer<tf.Tensor4D>({
    params: dcae.params,
    gradients: workers > 1 ? (x, ctx) => parallel!.compute(x, ctx) : undefined,
    optimizer: { lr: config.train.lr, weightDecay: config.train.weightDecay },
    schedule: cosineSchedule({ lr: config.train.lr, warmup: config.train.warmup, total: steps }),
    clipNorm: config.train.clipNorm,
    seed,
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
    ds.windows({ indices: epochIndices(ds.length, seed, start), prefetch: 8 }),
    map((sample, k) => {
      let frame = normalizer.normalize(sample.inputFields.data, sample.layout);
      if (config.train.augment) {
        const t: GridTransform = randomTransform(new Rng(mixSeed(seed, start + k, 0xa5)), { periodic: data.periodic, size: [H, W] });
        frame = applyTransform(frame, [1, H, W, C], t, geometry);
      }
      return frame;
    }, 'normalise-augment'),
    batch(batchSize),
    map((group: Float32Array[]) => {
      const flat = new Float32Array(group.length * H * W * C);
      group.forEach((f, i) => flat.set(f, i * H * W * C));
      return tf.tensor4d(flat, [group.length, H, W, C]);
    }, 'to-tensor'),
    prefetch(2),
  );
  await runTraining({ trainer, batches: frames, steps, run, checkpoint, checkpointEvery: config.train.checkpointEvery, label: 'train-ae steps', signal, parallel });

  const weights = run.path('autoencoder.safetensors');
  await saveWeights(weights, dcae.params, {
    dcae: JSON.stringify(dcaeConfig),
    data: JSON.stringify(data),
    steps: String(trainer.step),
  });
  const loaded = await finishLoad(dcae, normalizer, normalization, data, weights);
  const metrics = await validateAutoencoder(loaded, validDir, config.valid.frames);
  await writeFileAtomic(run.path('metrics.json'), JSON.stringify(metrics, null, 2));
  await run.log('validation', { ...metrics });
  return loaded;
}

async function finishLoad(dcae: Dcae, normalizer: WellNormalizer, normalization: NormalizationRecord, data: AutoencoderData, weights: string): Promise<LoadedAutoencoder> {
  const id = createHash('sha256').update(await readFile(weights)).digest('hex').slice(0, 16);
  return { dcae, normalizer, normalization, data, id, latentShape: dcae.latentShape(data.spatialShape) };
}

/** Loads a trained autoencoder from its run directory (fails naming the missing file). */
export async function loadAutoencoder(dir: string): Promise<LoadedAutoencoder> {
  const weights = `${dir}/autoencoder.safetensors`;
  const normPath = `${dir}/normalization.json`;
  for (const p of [weights, normPath]) {
    if (!existsSync(p)) throw new Error(`autoencoder run ${dir}: missing ${p} (train it first with wellspring train-ae)`);
  }
  await selectBackend();
  const { readSafetensors } = await import('../src/models/train/safetensors.js');
  const header = await readSafetensors(weights);
  const meta = header.metadata;
  if (!meta.dcae || !meta.data) throw new Error(`${weights}: no DCAE config in its metadata (not written by wellspring train-ae)`);
  const dcae = createDcae(JSON.parse(meta.dcae) as DcaeConfig);
  await loadWeights(weights, dcae.params);
  const normalization = JSON.parse(await readFile(normPath, 'utf8')) as NormalizationRecord;
  const normalizer = new WellNormalizer(normalization.stats, { kind: normalization.kind, transforms: normalization.transforms });
  return finishLoad(dcae, normalizer, normalization, JSON.parse(meta.data) as AutoencoderData, weights);
}

/**
 * Runs `fn` over `n` states stored back to back in `input` (each of shape `from`), `batchSize` at a time, and
 * gathers its outputs (each of shape `to`) into one array. Holds one batch of tensors at a time.
 */
function inBatches(
  fn: (x: tf.Tensor4D) => tf.Tensor4D,
  input: Float32Array,
  n: number,
  from: readonly [number, number, number],
  to: readonly [number, number, number],
  batchSize: number,
): Float32Array {
  const inSize = from[0] * from[1] * from[2];
  const outSize = to[0] * to[1] * to[2];
  const out = new Float32Array(n * outSize);
  for (let i = 0; i < n; i += batchSize) {
    const m = Math.min(batchSize, n - i);
    const y = tf.tidy(() => fn(tf.tensor4d(input.subarray(i * inSize, (i + m) * inSize), [m, ...from])));
    out.set(y.dataSync(), i * outSize);
    y.dispose();
  }
  return out;
}

function frameShape(ae: LoadedAutoencoder): [number, number, number] {
  return [...ae.data.spatialShape, ae.data.layout.names.length];
}

/** Encodes normalised frames (N, H, W, C) in batches; returns latents (N, h, w, c). */
export function encodeFrames(ae: LoadedAutoencoder, frames: Float32Array, n: number, batchSize = 16): Float32Array {
  return inBatches((x) => ae.dcae.encode(x), frames, n, frameShape(ae), ae.latentShape, batchSize);
}

/** Decodes latents (N, h, w, c) in batches; returns normalised frames (N, H, W, C). */
export function decodeLatents(ae: LoadedAutoencoder, latents: Float32Array, n: number, batchSize = 16): Float32Array {
  return inBatches((z) => ae.dcae.decode(z), latents, n, ae.latentShape, frameShape(ae), batchSize);
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

/** Scores reconstructions of `frames` validation frames against the train-mean baseline, in physical units. */
export async function validateAutoencoder(ae: LoadedAutoencoder, validDir: string, frames: number): Promise<ReconstructionMetrics> {
  const ds = await openWellDataset(validDir, { nIn: 1, nOut: 1 });
  const count = Math.min(frames, ds.length);
  const indices = Array.from({ length: count }, (_, i) => Math.floor((i * ds.length) / count));
  const [H, W] = ae.data.spatialShape;
  const names = ae.data.layout.names;
  const C = names.length;
  const N = H * W;
  const sums = { err: new Float64Array(C), base: new Float64Array(C) };
  // The baseline predicts, per channel, the physical value whose normalised value is 0 (the train mean).
  const meanField = ae.normalizer.denormalize(new Float32Array(C), ae.data.layout);
  for await (const sample of ds.windows({ indices })) {
    const truth = sample.inputFields.data;
    const z = encodeFrames(ae, ae.normalizer.normalize(truth, sample.layout), 1);
    const recon = ae.normalizer.denormalize(decodeLatents(ae, z, 1), sample.layout);
    for (let c = 0; c < C; c++) {
      let mean = 0;
      for (let p = 0; p < N; p++) mean += truth[p * C + c]!;
      mean /= N;
      let variance = 0;
      let mse = 0;
      let base = 0;
      for (let p = 0; p < N; p++) {
        const u = truth[p * C + c]!;
        variance += (u - mean) ** 2;
        mse += (u - recon[p * C + c]!) ** 2;
        base += (u - meanField[c]!) ** 2;
      }
      variance /= N - 1;
      sums.err[c]! += Math.sqrt(mse / N / (variance + 1e-7));
      sums.base[c]! += Math.sqrt(base / N / (variance + 1e-7));
    }
  }
  const perChannel = (s: Float64Array) => Object.fromEntries(names.map((n, c) => [n, s[c]! / count]));
  const mean = (s: Float64Array) => s.reduce((a, b) => a + b, 0) / (C * count);
  return { frames: count, vrmse: perChannel(sums.err), vrmseMean: mean(sums.err), baselineVrmse: perChannel(sums.base), baselineVrmseMean: mean(sums.base) };
}
