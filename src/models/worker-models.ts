/**
 * What worker threads build: for data-parallel training, `ParallelGradients` imports this module in each worker
 * thread and calls `build(options)`, which builds the same networks and losses the training jobs build on the
 * main thread from the same serialisable configs, so parameter names and shapes agree (`startParallel` starts
 * the workers); for parallel rollouts, each rollout worker (rollout-worker.ts) builds its emulator with
 * `buildRolloutEmulator(spec)` from a loaded emulator's spec.
 */
import type * as tf from '@tensorflow/tfjs';
import { availableParallelism } from 'node:os';
import { createDcae, type Dcae, type DcaeConfig } from './nn/dcae.js';
import { createVit } from './nn/vit.js';
import { vmseLoss } from './nn/dcae.js';
import { ParallelGradients, type ParallelModel } from './train/parallel.js';
import type { NamedParameters } from './train/optim.js';
import type { LossFunction, StepContext } from './train/types.js';
import type { BackendInfo } from './backend/select.js';
import { buildEmulator, emulatorTrainingLoss, type EmulatorSpec, type ShardedWindowBatch } from './emulators.js';
import type { Emulator } from './diffusion/emulator.js';

export type WorkerModelOptions = { kind: 'dcae'; config: DcaeConfig } | EmulatorSpec;

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

/** An emulator for inference built from its spec (weights freshly initialised: the caller assigns them). */
export function buildRolloutEmulator(spec: EmulatorSpec): { params: NamedParameters; emulator: Emulator; dispose(): void } {
  const vit = createVit(spec.vit);
  return { params: vit.params, emulator: buildEmulator(spec.kind, vit, spec.formulation, spec.sampling, null), dispose: () => vit.dispose() };
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
  return requested > 0 ? requested : cpuWorkers(backend);
}

/**
 * Rollout worker threads (src/models/rollout-workers.ts): `requested` when positive; else (0 = auto) one per core
 * on the wasm backend, which runs one thread per instance, and 1 (the main thread, no worker) on TensorFlow, which
 * already uses every core, or on WebGPU, whose GPU the workers (on wasm) would not use.
 */
export function rolloutWorkers(requested: number, backend: BackendInfo): number {
  if (!Number.isInteger(requested) || requested < 0) throw new Error(`rollout workers must be an integer >= 0 (0: auto), got ${requested}`);
  return requested > 0 ? requested : cpuWorkers(backend);
}

/** One worker per core (at most 8) on wasm, 1 on the other backends. */
function cpuWorkers(backend: BackendInfo): number {
  return backend.name === 'wasm' ? Math.max(1, Math.min(availableParallelism(), 8)) : 1;
}

/** Starts data-parallel gradients for `params` when `workers > 1` (else undefined: train on this thread). */
export async function startParallel(workers: number, params: NamedParameters, options: WorkerModelOptions): Promise<ParallelGradients | undefined> {
  if (workers <= 1) return undefined;
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return ParallelGradients.start({ module: new URL(`./worker-models${ext}`, import.meta.url), options, params, workers });
}
