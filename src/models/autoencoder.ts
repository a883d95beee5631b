/**
 * A trained autoencoder run, as a library object: load it from its run directory, encode normalised frames to
 * latents and decode them back to physical units, and the stage that encodes Well trajectories into latent-cache
 * rows.
 *
 * An autoencoder run directory (written by `wellspring train-ae`) holds:
 * - `autoencoder.safetensors`: final weights; its `__metadata__` carries the DCAE config (`dcae`) and the data
 *   layout (`data`);
 * - `normalization.json`: the statistics (of log1p-transformed fields where configured) and transforms;
 * - `checkpoints/last.safetensors`: the full training state, for resuming; `metrics.json`: validation scores.
 *
 * The autoencoder's id is a hash of its weights file: latent caches and emulators carry it, so that latents of
 * one autoencoder are never decoded by another.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { named, type Stage } from '../streams/core.js';
import { Rng, copySeed } from '../streams/random.js';
import { applyTransform, channelGeometry, describeTransform, IDENTITY_TRANSFORM, randomTransform, type ChannelGeometry, type GridTransform } from '../streams/augment.js';
import { WellNormalizer } from '../formats/well/normalize.js';
import { DEFAULT_LOG_LABELS, wellLabels } from '../formats/well/labels.js';
import type { ChannelLayout, WellMeta } from '../formats/well/meta.js';
import type { WellStats } from '../formats/well/stats.js';
import type { ChannelCoefficients } from '../formats/well/normalize-core.js';
import type { WellTrajectoryStream } from '../formats/well/dataset.js';
import type { CachedTrajectory } from '../formats/latent-cache/schema.js';
import { readSafetensors, weightsId } from '../formats/safetensors.js';
import { createDcae, type Dcae, type DcaeConfig } from './nn/dcae.js';
import { loadWeights } from './train/checkpoint.js';
import { ensureBackend } from './backend/select.js';

/** The normalisation an autoencoder was trained under (`normalization.json`). */
export interface NormalizationRecord {
  kind: 'zscore' | 'rms';
  transforms: Record<string, 'log1p'>;
  stats: WellStats;
}

/** What the autoencoder knows about the data it was trained on. */
export interface AutoencoderData {
  layout: ChannelLayout;
  spatialDims: string[];
  spatialShape: [number, number];
  periodic: [boolean, boolean];
}

/** A trained autoencoder with its normalisation: everything needed to go between physical frames and latents. */
export interface LoadedAutoencoder {
  /** The run directory it was loaded from ('' when built in memory). */
  dir: string;
  dcae: Dcae;
  normalizer: WellNormalizer;
  normalization: NormalizationRecord;
  data: AutoencoderData;
  /** Identifies these weights (hash of the weights file), stamped into latent caches. */
  id: string;
  /** Latent shape (h, w, c) of one state. */
  latentShape: [number, number, number];
  /** Frame shape (H, W, C) of one physical state. */
  frameShape: [number, number, number];
  /** Frees the network's weights. */
  dispose(): void;
}

/** The weights file and normalisation record of an autoencoder run directory. */
export const AUTOENCODER_FILES = { weights: 'autoencoder.safetensors', normalization: 'normalization.json' } as const;

const PERIODIC = 2;

/** The data description of a 2D Well file, as the autoencoder records it. */
export function autoencoderDataOf(meta: WellMeta): AutoencoderData {
  if (meta.nSpatialDims !== 2) throw new Error(`${meta.path}: the autoencoder handles 2D data, this file has ${meta.nSpatialDims} spatial dims`);
  const bc = meta.boundaryTable;
  return {
    layout: meta.layout,
    spatialDims: meta.spatialDims,
    spatialShape: [meta.spatialShape[0]!, meta.spatialShape[1]!],
    periodic: [bc[0] === PERIODIC && bc[1] === PERIODIC, bc[2] === PERIODIC && bc[3] === PERIODIC],
  };
}

/** The id of an autoencoder: the first 16 hex digits of the SHA-256 of its weights file. */
export function autoencoderId(weightsPath: string): Promise<string> {
  return weightsId(weightsPath);
}

/** Wraps a DCAE and its normalisation (already in memory) as a loaded autoencoder; `id` as `autoencoderId`. */
export function autoencoderFrom(dcae: Dcae, normalization: NormalizationRecord, data: AutoencoderData, id: string, dir = ''): LoadedAutoencoder {
  const normalizer = new WellNormalizer(normalization.stats, { kind: normalization.kind, transforms: normalization.transforms });
  return {
    dir,
    dcae,
    normalizer,
    normalization,
    data,
    id,
    latentShape: dcae.latentShape(data.spatialShape),
    frameShape: [...data.spatialShape, data.layout.names.length],
    dispose: () => dcae.dispose(),
  };
}

function parseJsonFile<T>(path: string, text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path}: ${what} is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Loads a trained autoencoder from its run directory. Fails naming the directory and the file when the directory
 * is missing, incomplete, or holds another kind of run (an emulator run, say).
 */
export async function loadAutoencoder(dir: string): Promise<LoadedAutoencoder> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`autoencoder run ${dir}: no such directory`);
  const weights = join(dir, AUTOENCODER_FILES.weights);
  const normPath = join(dir, AUTOENCODER_FILES.normalization);
  if (!existsSync(weights)) {
    const other = existsSync(join(dir, 'emulator.safetensors')) ? ' (it holds emulator.safetensors: this is an emulator run, not an autoencoder run)' : ' (train it first with wellspring train-ae)';
    throw new Error(`autoencoder run ${dir}: missing ${weights}${other}`);
  }
  if (!existsSync(normPath)) throw new Error(`autoencoder run ${dir}: missing ${normPath} (the normalisation the autoencoder was trained under)`);
  await ensureBackend();
  const meta = (await readSafetensors(weights)).metadata;
  if (!meta.dcae || !meta.data) throw new Error(`${weights}: no DCAE config in its metadata (expected keys "dcae" and "data", as written by wellspring train-ae)`);
  const dcae = createDcae(parseJsonFile<DcaeConfig>(weights, meta.dcae, 'metadata "dcae"'));
  try {
    await loadWeights(weights, dcae.params);
  } catch (err) {
    dcae.dispose();
    throw err;
  }
  const normalization = parseJsonFile<NormalizationRecord>(normPath, await readFile(normPath, 'utf8'), 'the normalisation record');
  if (!normalization.stats || (normalization.kind !== 'zscore' && normalization.kind !== 'rms')) {
    dcae.dispose();
    throw new Error(`${normPath}: expected {kind: "zscore"|"rms", transforms, stats}`);
  }
  return autoencoderFrom(dcae, normalization, parseJsonFile<AutoencoderData>(weights, meta.data, 'metadata "data"'), await autoencoderId(weights), dir);
}

/**
 * Runs `fn` over `n` states stored back to back in `input` (each of shape `from`), `batchSize` at a time, and
 * gathers its outputs (each of shape `to`) into one array. Holds one batch of tensors at a time. Reads results
 * asynchronously: GPU backends (webgpu) cannot read synchronously in Node.
 */
async function inBatches(
  fn: (x: tf.Tensor4D) => tf.Tensor4D,
  input: Float32Array,
  n: number,
  from: readonly [number, number, number],
  to: readonly [number, number, number],
  batchSize: number,
): Promise<Float32Array> {
  const inSize = from[0] * from[1] * from[2];
  const outSize = to[0] * to[1] * to[2];
  if (input.length !== n * inSize) throw new Error(`expected ${n} states of shape [${from}] (${n * inSize} values), got ${input.length} values`);
  const out = new Float32Array(n * outSize);
  for (let i = 0; i < n; i += batchSize) {
    const m = Math.min(batchSize, n - i);
    const y = tf.tidy(() => fn(tf.tensor4d(input.subarray(i * inSize, (i + m) * inSize), [m, ...from])));
    out.set((await y.data()) as Float32Array, i * outSize);
    y.dispose();
  }
  return out;
}

/** Encodes `n` normalised frames (N, H, W, C) in batches; returns latents (N, h, w, c). */
export function encodeFrames(ae: LoadedAutoencoder, frames: Float32Array, n: number, batchSize = 16): Promise<Float32Array> {
  return inBatches((x) => ae.dcae.encode(x), frames, n, ae.frameShape, ae.latentShape, batchSize);
}

/** Decodes `n` latents (N, h, w, c) in batches; returns normalised frames (N, H, W, C). */
export function decodeLatents(ae: LoadedAutoencoder, latents: Float32Array, n: number, batchSize = 16): Promise<Float32Array> {
  return inBatches((z) => ae.dcae.decode(z), latents, n, ae.latentShape, ae.frameShape, batchSize);
}

/** Decodes `n` latents and undoes the normalisation: physical frames (N, H, W, C). */
export async function decodeToPhysical(ae: LoadedAutoencoder, latents: Float32Array, n: number, batchSize = 16): Promise<Float32Array> {
  return ae.normalizer.denormalize(await decodeLatents(ae, latents, n, batchSize), ae.data.layout);
}

/**
 * The decoder as a differentiable tfjs function from latents (N, h, w, c) to physical states (N, H, W, C): decode,
 * then undo the normalisation with tf ops (y * scale + shift per channel, then expm1 on log1p-transformed fields;
 * the normaliser's own float32 coefficients, so it matches `decodeToPhysical`). Used where gradients must flow
 * through the decoder: physics penalties, guidance.
 */
export function physicalDecoder(ae: Pick<LoadedAutoencoder, 'dcae' | 'normalizer' | 'data'>): (latents: tf.Tensor4D) => tf.Tensor4D {
  const coefficients = ae.normalizer.coefficients(ae.data.layout);
  const C = coefficients.scale.length;
  const denormalize = denormalizeChannels(coefficients);
  return (latents) =>
    tf.tidy(() => {
      const frames = ae.dcae.decode(latents);
      if (frames.shape[3] !== C) throw new Error(`physicalDecoder: the decoder gives ${frames.shape[3]} channels, the normalisation has ${C}`);
      return denormalize(frames) as tf.Tensor4D;
    });
}

/**
 * Undoes a per-channel normalisation of channel-last tensors with tf ops (differentiable): physical =
 * y * scale + shift, then expm1 on the channels marked log1p (none when `log1p` is left out).
 */
export function denormalizeChannels(coefficients: Omit<ChannelCoefficients, 'log1p'> & { log1p?: ChannelCoefficients['log1p'] }): (x: tf.Tensor) => tf.Tensor {
  const scale = Float32Array.from(coefficients.scale);
  const shift = Float32Array.from(coefficients.shift);
  if (scale.length !== shift.length) throw new Error(`denormalizeChannels: ${scale.length} scales but ${shift.length} shifts`);
  const log1p = Float32Array.from(Array.from(coefficients.log1p ?? [], (v) => (v ? 1 : 0)));
  const anyLog = log1p.some((v) => v === 1);
  return (x) =>
    tf.tidy(() => {
      const C = x.shape[x.rank - 1];
      if (C !== scale.length) throw new Error(`denormalizeChannels: the states have ${C} channels, the normalisation ${scale.length}`);
      const physical = tf.add(tf.mul(x, tf.tensor1d(scale)), tf.tensor1d(shift));
      if (!anyLog) return physical;
      const m = tf.tensor1d(log1p);
      return tf.add(tf.mul(m, tf.expm1(physical)), tf.mul(tf.sub(1, m), physical));
    });
}


/** Normalises and encodes `n` physical frames (N, H, W, C): latents (N, h, w, c). */
export function encodePhysical(ae: LoadedAutoencoder, frames: Float32Array, n: number, batchSize = 16): Promise<Float32Array> {
  return encodeFrames(ae, ae.normalizer.normalize(frames, ae.data.layout), n, batchSize);
}

/**
 * Augments physical frames (N, H, W, C), then normalises them as the autoencoder's inputs: the order training
 * and caching both use. The symmetry acts in physical units, so a flip negates a velocity or momentum component
 * about zero (normalising first would mirror it about its dataset mean, mapping u to 2 mean - u) and a
 * transposition swaps components before each is normalised with its own statistics. The identity transform
 * only normalises.
 */
export function augmentNormalize(
  normalizer: WellNormalizer,
  layout: ChannelLayout,
  frames: Float32Array,
  shape: readonly [number, number, number, number],
  transform: GridTransform,
  geometry: ChannelGeometry = channelGeometry(layout),
): Float32Array {
  const identity = !transform.flip[0] && !transform.flip[1] && !transform.transpose && transform.roll[0] === 0 && transform.roll[1] === 0;
  return normalizer.normalize(identity ? frames : applyTransform(frames, shape, transform, geometry), layout);
}

export interface EncodeTrajectoriesOptions {
  /** Copies of each trajectory: the first plain, the others with seeded random symmetries (default 1). */
  repeat?: number;
  /** Seed of the augmentations (default 0); copy transforms depend on (seed, trajectory) only. */
  seed?: number;
  /** Frames read and encoded per call (default 16). */
  batchSize?: number;
  /** Simulation parameters given as log10 in the labels (default `DEFAULT_LOG_LABELS`, as `wellLabels`). */
  logLabels?: readonly string[];
}

/** The transforms of the `repeat` copies of one trajectory: identity first, then seeded random symmetries. */
function copiesOf(ae: LoadedAutoencoder, repeat: number, seed: number): GridTransform[] {
  const random = new Rng(seed);
  return Array.from({ length: repeat }, (_, r) =>
    r === 0 ? IDENTITY_TRANSFORM : randomTransform(random, { periodic: ae.data.periodic, size: ae.data.spatialShape }),
  );
}

/**
 * Stage: Well trajectories (from `wellTrajectories`, physical units, not normalised at read time) in, latent-cache
 * rows out: each trajectory is copied `repeat` times (augmented copies after the plain one, transformed in
 * physical units), normalised (`augmentNormalize`) and encoded block by block. Pulls one trajectory at a time and yields its copies once it is encoded; holds that
 * trajectory's latents for every copy plus one block of frames.
 */
export function encodeTrajectories(ae: LoadedAutoencoder, options: EncodeTrajectoriesOptions = {}): Stage<WellTrajectoryStream, CachedTrajectory> {
  const { repeat = 1, seed = 0, batchSize = 16, logLabels = DEFAULT_LOG_LABELS } = options;
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`encodeTrajectories: repeat must be an integer >= 1, got ${repeat}`);
  const [H, W] = ae.data.spatialShape;
  const C = ae.data.layout.names.length;
  const [h, w, c] = ae.latentShape;
  const geometry = channelGeometry(ae.data.layout);
  const frameSize = H * W * C;
  const latentSize = h * w * c;
  return named('encode', async function* (source) {
    for await (const traj of source) {
      const where = `${traj.origin.file} trajectory ${traj.origin.trajectory}`;
      if (traj.layout.names.join() !== ae.data.layout.names.join()) {
        throw new Error(`${where}: channels [${traj.layout.names}] differ from the autoencoder's [${ae.data.layout.names}]`);
      }
      if (traj.normalization) throw new Error(`${where}: read with normalisation; encodeTrajectories normalises itself (open the file without "normalize")`);
      const labels = wellLabels(traj.meta, logLabels);
      const T = traj.nFrames;
      const copies = copiesOf(ae, repeat, copySeed(seed, traj.origin.trajectory));
      const latents = copies.map(() => new Float32Array(T * latentSize));
      let block: Float32Array[] = [];
      let done = 0;
      const flush = async () => {
        const n = block.length;
        const physical = new Float32Array(n * frameSize);
        block.forEach((f, i) => physical.set(f, i * frameSize));
        for (const [r, transform] of copies.entries()) {
          const inputs = augmentNormalize(ae.normalizer, traj.layout, physical, [n, H, W, C], transform, geometry);
          latents[r]!.set(await encodeFrames(ae, inputs, n, batchSize), done * latentSize);
        }
        done += n;
        block = [];
      };
      for await (const frame of traj.frames) {
        block.push(frame.channels);
        if (block.length === batchSize) await flush();
      }
      if (block.length > 0) await flush();
      for (let r = 0; r < copies.length; r++) {
        yield {
          latents: latents[r]!,
          shape: [T, h, w, c] as [number, number, number, number],
          labels: labels.values,
          origin: {
            file: basename(traj.origin.file),
            trajectory: traj.origin.trajectory,
            augmentation: r,
            transform: describeTransform(copies[r]!, ae.data.spatialDims as [string, string]),
          },
        };
      }
    }
  });
}
