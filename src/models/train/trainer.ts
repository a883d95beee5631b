/**
 * The training step as a stage. A `Trainer` owns the named parameters' optimiser (AdamW), the learning-rate
 * schedule, gradient clipping, the non-finite-gradient guard, an optional EMA, a seeded RNG and the step counter;
 * `trainer.stage()` (or `trainSteps(trainer)`) turns a stream of batches into a stream of step reports, and
 * `trainer.save(path)` / `trainer.restore(path)` checkpoint all of it (resuming reproduces the uninterrupted run's
 * losses exactly on the same backend, given the same batches).
 */
import * as tf from '@tensorflow/tfjs';
import { named, type Stage } from '../../streams/core.js';
import { AdamW, Ema, clipFactor, globalNorm, type AdamWOptions, type NamedParameters, type NamedTensors } from './optim.js';
import { slotOf } from './layout.js';
import { createOptimizer, isOptimizer, type Optimizer, type OptimizerConfig } from './optimizer.js';
import { Rng } from '../../streams/random.js';
import { computeGradients } from './gradients.js';
import type { ComputedGradients, FlatGradients, LossFunction, StepContext } from './types.js';
import { restoreCheckpoint, saveCheckpoint, type TrainingState } from './checkpoint.js';
import { checkWebgpu } from '../backend/webgpu.js';

/** One line per batch. */
export interface StepReport {
  /** 0-based index of the batch. */
  step: number;
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate used. */
  lr: number;
  /** Wall time of the step (forward, backward, update), milliseconds. */
  ms: number;
  /** True when the update was skipped because the loss or a gradient was not finite. */
  skipped: boolean;
}

export interface TrainerOptions<B> {
  params: NamedParameters;
  loss: LossFunction<B>;
  /**
   * An optimiser (AdamW, SOAP, PSGD-Kron) or its configuration: `{ name: 'soap', lr: 1e-3 }`, or AdamW's options
   * without a name (default AdamW with lr 1e-4).
   */
  optimizer?: Optimizer | OptimizerConfig | AdamWOptions;
  /** Learning rate as a function of the step (default: the optimizer's constant lr). See `cosineSchedule`. */
  schedule?: (step: number) => number;
  /** Clip the global gradient norm to this value (default: no clipping). */
  clipNorm?: number;
  /** Abort (throw) after this many consecutive steps with non-finite loss or gradients (default 8). */
  maxNonFinite?: number;
  /** Keep an EMA of the weights with this decay (default none). */
  emaDecay?: number;
  /** Seed of the trainer's RNG (default 0). */
  seed?: number;
  /** Dispose the tensors found in each batch after its step (default true). */
  disposeBatch?: boolean;
  /**
   * Forward/backward at most this many samples at a time and accumulate the gradients (the batch must be a
   * tensor or a record of tensors). Bounds memory: tfjs holds a whole backward pass in memory. Default: no split.
   */
  microBatch?: number;
  /**
   * Where loss and gradients come from (default: `loss` on this thread). `ParallelGradients` computes them on
   * worker threads, data-parallel, and hands them back flat: the update, clipping and EMA then run as one fused
   * pass per parameter over flat buffers (`AdamW.applyFlat`, fused.ts; same bits as the tensor ops), and the
   * optimiser's moments and the EMA stay flat (checkpoints are the same files).
   */
  gradients?: (batch: B, context: StepContext) => Promise<ComputedGradients>;
}

/** Flat gradients as tensors by parameter name (parameters without a gradient get none), for tensor optimisers. */
function flatToTensors(flat: FlatGradients): NamedTensors {
  const out: NamedTensors = new Map();
  flat.layout.names.forEach((name, i) => {
    if (flat.present[i]) out.set(name, tf.tensor(slotOf(flat.layout, flat.values, i).slice(), flat.layout.shapes[i], 'float32'));
  });
  return out;
}

/** Thrown when too many consecutive steps had non-finite gradients. */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
}

export class Trainer<B> implements TrainingState {
  readonly params: NamedParameters;
  readonly optimizer: Optimizer;
  readonly ema?: Ema;
  readonly rng: Rng;
  step = 0;
  skipped = 0;
  /** Consecutive skipped steps (reset by every applied update). */
  skippedInARow = 0;
  private readonly options: TrainerOptions<B>;
  private readonly variables: tf.Variable[];
  private readonly nameOf = new Map<string, string>();

  constructor(options: TrainerOptions<B>) {
    this.options = options;
    this.params = options.params;
    this.optimizer = isOptimizer(options.optimizer) ? options.optimizer : createOptimizer(options.optimizer);
    this.rng = new Rng(options.seed ?? 0);
    if (options.emaDecay !== undefined) this.ema = new Ema(this.params, options.emaDecay);
    this.variables = [...this.params.values()].filter((v) => v.trainable);
    if (this.variables.length === 0) throw new Error('Trainer: no trainable parameters');
    for (const [name, v] of this.params) this.nameOf.set(v.name, name);
  }

  /** Learning rate at a step. */
  lr(step: number): number {
    return this.options.schedule ? this.options.schedule(step) : this.optimizer.lr;
  }

  /** Runs one training step on a batch. */
  async runStep(batch: B): Promise<StepReport> {
    const t0 = performance.now();
    const step = this.step;
    const lr = this.lr(step);
    const context: StepContext = { params: this.params, step, random: () => this.rng.uniform(), rng: this.rng };
    let grads: NamedTensors | undefined;
    try {
      const computed = this.options.gradients
        ? await this.options.gradients(batch, context)
        : await this.localGradients(batch, context);
      const loss = computed.loss;
      let gradNorm: number;
      if ('flat' in computed) {
        gradNorm = Math.fround(Math.sqrt(computed.flat.sumSquares)); // globalNorm's float32 sqrt
      } else {
        grads = computed.grads;
        const normTensor = globalNorm(grads.values());
        gradNorm = (await normTensor.data())[0];
        normTensor.dispose();
      }
      // A WebGPU device that failed during this step (or the last update) computed garbage: stop before applying it.
      checkWebgpu();
      const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
      if (finite) {
        const scale = this.options.clipNorm === undefined ? 1 : clipFactor(gradNorm, this.options.clipNorm);
        if ('flat' in computed && this.optimizer instanceof AdamW) {
          // One fused pass per parameter (AdamW, clipping and EMA) over the flat buffers, then into the parameters.
          this.optimizer.applyFlat(this.params, computed.flat, lr, scale, this.ema);
          computed.flat.commit();
        } else {
          // Other optimisers update tensors: flat gradients (from workers) become tensors first.
          grads ??= 'flat' in computed ? flatToTensors(computed.flat) : computed.grads;
          await this.optimizer.apply(this.params, grads!, lr, scale);
          this.ema?.update(this.params);
        }
        this.skippedInARow = 0;
      } else {
        this.skipped += 1;
        this.skippedInARow += 1;
        const limit = this.options.maxNonFinite ?? 8;
        if (this.skippedInARow >= limit) {
          throw new NonFiniteError(
            `training diverged: ${this.skippedInARow} consecutive steps (up to step ${step}) had a non-finite ` +
              `loss or gradient (last loss ${loss}, gradient norm ${gradNorm}); lower the learning rate or check the data`,
          );
        }
      }
      this.step += 1;
      return { step, loss, gradNorm, lr, ms: performance.now() - t0, skipped: !finite };
    } finally {
      if (grads) tf.dispose([...grads.values()]);
      if (this.options.disposeBatch ?? true) tf.dispose(batch as unknown as tf.TensorContainer);
    }
  }

  /** Loss and gradients of the batch on this thread's backend (in micro-batches when configured). */
  private localGradients(batch: B, context: StepContext): Promise<ComputedGradients> {
    return computeGradients(this.options.loss, batch, context, this.variables, this.nameOf, this.options.microBatch);
  }

  /**
   * The training-step stage: pulls one batch at a time, runs forward, backward and the update, and yields a
   * `StepReport`. Holds the parameters, optimiser moments and EMA (three to four copies of the weights) plus
   * one step's activations; nothing accumulates between steps (tensor count stays flat).
   */
  stage(): Stage<B, StepReport> {
    const run = (batch: B): Promise<StepReport> => this.runStep(batch);
    return named('train-step', async function* (batches) {
      for await (const batch of batches) yield await run(batch);
    });
  }

  /** Writes a checkpoint (weights, optimiser moments, EMA, step, RNG) atomically. */
  save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    return saveCheckpoint(path, this, metadata);
  }

  /** Restores a checkpoint written by `save` from a trainer of the same architecture. */
  async restore(path: string): Promise<Record<string, string>> {
    const meta = await restoreCheckpoint(path, this);
    this.skippedInARow = 0;
    return meta;
  }

  /** Frees optimiser moments and EMA (not the parameters, which belong to the network). */
  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
  }
}

/** The training-step stage of a trainer: `pipe(batches, trainSteps(trainer))`. */
export function trainSteps<B>(trainer: Trainer<B>): Stage<B, StepReport> {
  return trainer.stage();
}
