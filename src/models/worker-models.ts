/**
 * Model factories for data-parallel training: `ParallelGradients` imports this module in each worker thread and
 * calls `build(options)`, which builds the same networks and losses the training jobs build on the main thread
 * from the same serialisable configs, so parameter names and shapes agree. `startParallel` starts the workers.
 */
import type * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { createDcae, type Dcae, type DcaeConfig } from './nn/dcae.js';
import { createVit, type VitConfig } from './nn/vit.js';
import { vmseLoss } from './nn/dcae.js';
import { ParallelGradients, type ParallelModel } from './train/parallel.js';
import type { NamedParameters } from './train/optim.js';
import type { LossFunction, StepContext } from './train/types.js';
import type { BackendInfo } from './backend/select.js';
import { emulatorTrainingLoss, type EmulatorKind, type SamplingOptions, type ShardedWindowBatch } from './emulators.js';

export type WorkerModelOptions =
  | { kind: 'dcae'; config: DcaeConfig }
  | { kind: EmulatorKind; vit: VitConfig; formulation: string; sampling: SamplingOptions };

/** The autoencoder's training loss (VMSE of the reconstruction), dropout from the step's RNG. */
export function dcaeLoss(dcae: Dcae): LossFunction<tf.Tensor4D> {
  return (x, ctx) => vmseLoss(x, dcae.apply(x, { training: true, random: ctx.random }).y);
}

/** Builds the model a worker trains (called by the parallel-gradient worker with the options given to `startParallel`). */
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
 * runs one thread per instance, and 1 on TensorFlow, which already uses every core (or the GPU). Gradient workers
 * are for CPUs: on webgpu the pipelines train in one process (with larger batches), and asking for more is refused.
 */
export function trainingWorkers(requested: number, backend: BackendInfo): number {
  if (backend.name === 'webgpu' && requested > 1) {
    throw new Error(
      `train.workers=${requested}: gradient workers are for CPU backends; on webgpu training runs in one process ` +
        '(set train.workers=0 or 1, and a larger train.batchSize to use the GPU)',
    );
  }
  if (requested > 0) return requested;
  return backend.name === 'wasm' ? Math.max(1, Math.min(availableParallelism(), 8)) : 1;
}

/** Starts data-parallel gradients for `params` when `workers > 1` (else undefined: train on this thread). */
export async function startParallel(workers: number, params: NamedParameters, options: WorkerModelOptions): Promise<ParallelGradients | undefined> {
  if (workers <= 1) return undefined;
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return ParallelGradients.start({ module: new URL(`./worker-models${ext}`, import.meta.url), options, params, workers });
}
