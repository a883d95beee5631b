/**
 * Model factories for data-parallel training (`ParallelGradients` imports this module in each worker thread and
 * calls `build(options)`): the same networks and losses the pipelines build on the main thread, from the same
 * serialisable configs, so parameter names and shapes agree.
 */
import * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { createDcae, createVit, vmseLoss, type DcaeConfig, type VitConfig } from '../src/models/nn/index.js';
import { diffusionEmulator, surrogateEmulator, vitBackbone, type Emulator, type FormulationName, type SamplerName, type WindowBatch } from '../src/models/diffusion/index.js';
import { ConfigError } from './config.js';
import { ParallelGradients, type NamedParameters, type ParallelModel, type LossFunction, type StepContext } from '../src/models/train/index.js';
import type { BackendInfo } from '../src/models/backend/index.js';

export type WorkerModelOptions =
  | { kind: 'dcae'; config: DcaeConfig }
  | { kind: 'surrogate' | 'diffusion'; vit: VitConfig; formulation: string; sampling: { sampler: string; steps: number; order: number } };

/** The autoencoder's training loss (VMSE of the reconstruction), dropout from the step's RNG. */
export function dcaeLoss(dcae: ReturnType<typeof createDcae>): LossFunction<tf.Tensor4D> {
  return (x, ctx) => vmseLoss(x, dcae.apply(x, { training: true, random: ctx.random }).y);
}

/** The batch as the workers can shard it: named tensors sharing their first axis (labels only when present). */
export type ShardedWindowBatch = { x: tf.Tensor5D; mask: tf.Tensor2D; labels?: tf.Tensor2D };

export function toShardable(b: WindowBatch): ShardedWindowBatch {
  return b.labels ? { x: b.x, mask: b.mask!, labels: b.labels } : { x: b.x, mask: b.mask! };
}

/**
 * An emulator on a ViT: the surrogate, or the diffusion / flow emulator with its sampler. `training` turns on
 * dropout drawn from `training.random` (null: inference).
 */
export function buildEmulator(
  kind: 'surrogate' | 'diffusion',
  vit: ReturnType<typeof createVit>,
  formulation: string,
  sampling: { sampler: string; steps: number; order: number },
  training: { random: () => number } | null,
): Emulator {
  const backbone = vitBackbone(vit, training ? { training: true, random: training.random } : {});
  if (kind === 'surrogate') return surrogateEmulator(backbone);
  if (formulation !== 'diffusion' && formulation !== 'flow') throw new ConfigError(`formulation must be "diffusion" or "flow", got "${formulation}"`);
  return diffusionEmulator(backbone, {
    formulation: formulation as FormulationName,
    sampling: { sampler: sampling.sampler as SamplerName, steps: sampling.steps, order: sampling.order },
  });
}

/** An emulator's training loss over a shardable batch, noise and dropout from the step's RNG. */
export function emulatorTrainingLoss(
  kind: 'surrogate' | 'diffusion',
  vit: ReturnType<typeof createVit>,
  formulation: string,
  sampling: { sampler: string; steps: number; order: number },
  random: () => () => number,
): LossFunction<ShardedWindowBatch> {
  const emulator = buildEmulator(kind, vit, formulation, sampling, { random: () => random()() });
  return (batch, ctx) => emulator.loss({ x: batch.x, mask: batch.mask, labels: batch.labels ?? null }, ctx.rng);
}

export function build(options: WorkerModelOptions): ParallelModel<tf.Tensor4D> | ParallelModel<ShardedWindowBatch> {
  if (options.kind === 'dcae') {
    const dcae = createDcae(options.config);
    return { params: dcae.params, loss: dcaeLoss(dcae) };
  }
  const vit = createVit(options.vit);
  let current: () => number = Math.random;
  const loss = emulatorTrainingLoss(options.kind, vit, options.formulation, options.sampling, () => current);
  return {
    params: vit.params,
    loss: (batch: ShardedWindowBatch, ctx: StepContext) => {
      current = ctx.random;
      return loss(batch, ctx);
    },
  };
}

/**
 * Worker threads to train with: `requested` when positive; else (0 = auto) one per core on the wasm backend, which
 * runs one thread per instance, and 1 on TensorFlow, which already uses every core (or the GPU).
 */
export function trainingWorkers(requested: number, backend: BackendInfo): number {
  if (requested > 0) return requested;
  return backend.name === 'wasm' ? Math.max(1, Math.min(availableParallelism(), 8)) : 1;
}

/** Starts data-parallel gradients for `params` when `workers > 1` (else undefined: train on this thread). */
export async function startParallel(workers: number, params: NamedParameters, options: WorkerModelOptions): Promise<ParallelGradients | undefined> {
  if (workers <= 1) return undefined;
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return ParallelGradients.start({ module: new URL(`./worker-models${ext}`, import.meta.url), options, params, workers });
}
