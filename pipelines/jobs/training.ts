/**
 * What the training jobs share (a helper, not a job): their configuration check, and the training loop: resume
 * from the run's last checkpoint, run the trainer's stage over the batches until the step budget, log the step
 * scalars (loss, gradient norm, learning rate, step time, skipped steps so far) every `train.logEvery` steps to
 * log.jsonl (`step` events) and to TensorBoard event files under `<run>/tensorboard/`, show the loss on the
 * progress line, checkpoint periodically and on any exit (an interrupted run keeps its progress: steps are atomic
 * and checkpoints are written atomically),
 * except after a WebGPU device failure, whose tensors cannot be trusted: the run then stops with the device's
 * message and a rerun resumes from the last periodic checkpoint. With a `validation`, the weights are scored every
 * `every` steps and at the last (`validation` events, `valid/loss` in TensorBoard); with `keepBest`, the
 * best-scoring weights so far are kept in their own weights file (atomically, with their step and score) and
 * become the network's when the run completes; a resumed run goes on from the best score recorded there.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { AbortedError, abortable, pipe, progress } from '../../src/streams/index.js';
import { TensorBoardWriter } from '../../src/formats/tensorboard.js';
import { OPTIMIZER_NAMES, loadWeights, saveWeights, type NamedParameters, type OptimizerConfig, type ParallelGradients, type StepReport, type Trainer } from '../../src/models/train/index.js';
import { readSafetensors } from '../../src/formats/safetensors.js';
import type { RunDir } from '../cli/run-dir.js';
import { ConfigError } from '../cli/config.js';
import { WebgpuDeviceError } from '../../src/models/backend/index.js';

/** Restores `trainer` from `<run>/checkpoints/last.safetensors` when it exists; returns that path. */
export async function resumeTrainer<B>(trainer: Trainer<B>, run: RunDir): Promise<string> {
  await mkdir(run.path('checkpoints'), { recursive: true });
  const checkpoint = run.path('checkpoints', 'last.safetensors');
  if (existsSync(checkpoint)) {
    await trainer.restore(checkpoint);
    await run.log('restored', { step: trainer.step });
  }
  return checkpoint;
}

export interface TrainingLoop<B> {
  trainer: Trainer<B>;
  /** Batches from the trainer's current step on (a resumed run must not replay the batches already seen). */
  batches: AsyncIterable<B>;
  /** Total steps (the run stops when the trainer reaches it). */
  steps: number;
  run: RunDir;
  checkpoint: string;
  checkpointEvery: number;
  /** Log the step scalars every this many steps (0: every step up to 5000 steps, else about 5000 points in all). */
  logEvery: number;
  /** Progress label, e.g. `train-ae steps`. */
  label: string;
  signal?: AbortSignal;
  /** Closed with the trainer. */
  parallel?: ParallelGradients;
  /** Scoring during training, and optionally keeping the best weights (see TrainingValidation). */
  validation?: TrainingValidation;
}

/** Validation during training (see the header). */
export interface TrainingValidation {
  /** Steps between scores (the last step is always scored). */
  every: number;
  /** The current weights' validation score, lower is better. */
  score(): Promise<number>;
  /** Keep the best-scoring weights in this weights file and load them into `params` when the run completes. */
  keepBest?: { path: string; params: NamedParameters };
}

/** The best score so far of a `keepBest` file written by an earlier (interrupted) run, if any. */
async function bestSoFar(path: string | undefined): Promise<{ step: number; score: number } | undefined> {
  if (!path || !existsSync(path)) return undefined;
  const { metadata } = await readSafetensors(path);
  const step = Number(metadata.step);
  const score = Number(metadata.validLoss);
  if (!Number.isInteger(step) || !Number.isFinite(score)) {
    throw new Error(`${path}: the best weights so far lack their step and score (metadata step "${metadata.step}", validLoss "${metadata.validLoss}"); remove the file to start the selection afresh`);
  }
  return { step, score };
}

/**
 * Trains until `steps` (or the signal), then saves a checkpoint and frees the trainer and its workers. With an EMA
 * of the weights (`train.ema`), a run that reached `steps` leaves the averaged weights in the network's parameters. The signal
 * is honoured between steps only: a step in flight finishes (its update applied in full) before the checkpoint
 * is written, so a checkpoint is always one consistent state; then the loop throws `AbortedError`. Waiting for
 * a batch is interrupted at once (no step is in flight then). With `keepBest`, returns the selected step and score
 * (none when no score was finite: the last weights stay).
 */
export async function runTraining<B>(loop: TrainingLoop<B>): Promise<{ selected?: { step: number; score: number } }> {
  const { trainer, run, checkpoint, signal, validation } = loop;
  let best = await bestSoFar(validation?.keepBest?.path);
  let board: TensorBoardWriter | undefined;
  const validate = async (): Promise<void> => {
    if (!validation) return;
    const step = trainer.step;
    const score = await validation.score();
    const keep = validation.keepBest;
    const improved = keep !== undefined && Number.isFinite(score) && (!best || score < best.score);
    if (improved) {
      await saveWeights(keep.path, keep.params, { step: String(step), validLoss: String(score) });
      best = { step, score };
    }
    await run.log('validation', { step, validLoss: score, ...(keep ? { best: best ?? null } : {}) });
    await board?.add(step, { 'valid/loss': score });
  };
  const remaining = Math.max(0, loop.steps - trainer.step);
  const every = logInterval(loop.logEvery, loop.steps);
  const batches = signal ? pipe(loop.batches, abortable<B>(signal)) : loop.batches;
  const detail = (r: unknown) => `loss ${(r as StepReport).loss.toPrecision(4)}`;
  const reports = pipe(batches, trainer.stage(), progress<StepReport>({ label: loop.label, total: remaining, detail }));
  let stopped = false;
  let deviceFailed = false;
  try {
    if (remaining > 0 && !signal?.aborted) {
      board = await TensorBoardWriter.open(run.path('tensorboard'), run.kind);
      try {
        for await (const report of reports) {
          const last = report.step + 1 >= loop.steps;
          if (report.step % every === 0 || report.skipped || last) {
            await run.log('step', { ...report, skippedTotal: trainer.skipped });
            await board.add(report.step, {
              'train/loss': report.loss,
              'train/grad_norm': report.gradNorm,
              'train/lr': report.lr,
              'train/step_ms': report.ms,
              'train/skipped_steps': trainer.skipped,
            });
          }
          if (trainer.step % loop.checkpointEvery === 0) await trainer.save(checkpoint);
          if (validation && (trainer.step % validation.every === 0 || trainer.step >= loop.steps)) await validate();
          if (trainer.step >= loop.steps) break;
          // Let signal handlers run (they are macrotasks; a step can otherwise chain microtasks only).
          await new Promise((resolve) => setImmediate(resolve));
          if (signal?.aborted) {
            stopped = true;
            break;
          }
        }
      } catch (err) {
        if (causedBy(err, WebgpuDeviceError)) {
          deviceFailed = true;
          await run.log('device-error', { step: trainer.step, message: (err as Error).message });
        }
        // The signal fired while waiting for a batch (no step in flight): stop like between steps.
        if (!causedBy(err, AbortedError)) throw err;
        stopped = true;
      }
    }
  } finally {
    await board?.close();
    if (trainer.step > 0 && !deviceFailed) await trainer.save(checkpoint);
    // The averaged weights become the network's (the checkpoint above keeps the last weights and the average apart,
    // so a longer rerun resumes both).
    if (trainer.ema && trainer.step >= loop.steps && !deviceFailed) trainer.ema.copyTo(trainer.params);
    // The selected weights become the network's (the checkpoint above keeps the last ones, to resume from).
    const keep = validation?.keepBest;
    if (keep && best && trainer.step >= loop.steps && !deviceFailed) {
      await loadWeights(keep.path, keep.params);
      await run.log('selected', { step: best.step, validLoss: best.score, of: trainer.step });
    }
    trainer.dispose();
    await loop.parallel?.close();
  }
  if (stopped || (signal?.aborted && trainer.step < loop.steps)) {
    await run.log('interrupted', { step: trainer.step });
    throw new AbortedError(signal!.reason);
  }
  return validation?.keepBest && best ? { selected: best } : {};
}

/** The logging interval of `train.logEvery` (0: every step up to 5000 steps, else about 5000 points in all). */
export function logInterval(logEvery: number, steps: number): number {
  return logEvery > 0 ? logEvery : Math.max(1, Math.ceil(steps / 5000));
}

/** True for an error of class `kind`, also when a stage wrapped it (StageError's cause). */
function causedBy(err: unknown, kind: abstract new (...args: never[]) => Error): boolean {
  for (let e: unknown = err; e instanceof Error; e = (e as Error).cause) if (e instanceof kind) return true;
  return false;
}

/**
 * The optimiser settings of the training jobs (`train.optimizer` and each preconditioned optimiser's
 * hyper-parameters, the reference's defaults), spread into their `train` defaults.
 */
export const OPTIMIZER_DEFAULTS = {
  optimizer: 'adamw',
  soap: { frequency: 16, shampooBeta: 0.99, maxDim: 4096 },
  psgd: { frequency: 64, decay: 0.999, precondLr: 0.1, maxDim: 4096 },
};

/**
 * Settings the training jobs gained after runs were recorded, at the values that reproduce those runs (no EMA,
 * AdamW): a run directory recorded without them resumes (run-dir.ts `added`).
 */
export const TRAIN_ADDED_SETTINGS = {
  'train.ema': 0,
  'train.optimizer': OPTIMIZER_DEFAULTS.optimizer,
  'train.soap': OPTIMIZER_DEFAULTS.soap,
  'train.psgd': OPTIMIZER_DEFAULTS.psgd,
};

/** How a training job reopens its run directory: `train.steps` and `train.logEvery` may change; settings added since. */
export const TRAIN_RUN_OPTIONS = { mutable: ['train.steps', 'train.logEvery'], added: TRAIN_ADDED_SETTINGS };

/** The optimiser a training job's `train` settings name, with its hyper-parameters. */
export function optimizerFor(
  train: { optimizer: string; lr: number; weightDecay: number; seed: number } & typeof OPTIMIZER_DEFAULTS,
  betas?: [number, number],
): OptimizerConfig {
  const common = { lr: train.lr, weightDecay: train.weightDecay };
  switch (train.optimizer) {
    case 'adamw':
      return { name: 'adamw', ...common, ...(betas ? { betas } : {}) };
    case 'soap':
      return { name: 'soap', ...common, ...train.soap };
    case 'psgd-kron':
      return { name: 'psgd-kron', ...common, ...train.psgd, seed: train.seed };
    default:
      throw new ConfigError(`train.optimizer: unknown optimiser "${train.optimizer}" (known: ${OPTIMIZER_NAMES.join(', ')})`);
  }
}

/** Descriptions of the training settings the training jobs share (each job adds its own). */
export const TRAIN_SETTINGS_HELP = {
  steps: 'optimiser steps in all (may be raised when resuming, to train longer)',
  batchSize: 'samples per step',
  lr: 'peak learning rate, after a linear warm-up, then cosine decay to 0 at steps',
  warmup: 'steps of linear learning-rate warm-up',
  weightDecay: 'decoupled weight decay',
  optimizer: `optimiser: ${OPTIMIZER_NAMES.map((n) => `"${n}"`).join(', ')} (SOAP: Adam in Shampoo's eigenbasis; PSGD-Kron: Kronecker-factored whitening preconditioner)`,
  soap: {
    frequency: 'SOAP: steps between refreshes of the eigenbases (power iteration + QR)',
    shampooBeta: 'SOAP: decay of the Kronecker factors of the gradient second moment',
    maxDim: 'SOAP: dimensions larger than this are not rotated (Adam along them)',
  },
  psgd: {
    frequency: 'PSGD-Kron: the preconditioner refit probability decays to 1/frequency',
    decay: 'PSGD-Kron: per-step decay of the refit probability (from 1)',
    precondLr: 'PSGD-Kron: step size of the preconditioner fit',
    maxDim: 'PSGD-Kron: dimensions larger than this get a diagonal factor',
  },
  clipNorm: 'clip the global gradient norm to this value',
  ema: 'decay of an exponential moving average of the weights, saved as the trained model in place of the last weights (0: none)',
  seed: 'seed of initialisation, data order, augmentation and dropout',
  augment: 'random symmetries of the grid (flips, rotations, periodic shifts) on training frames',
  shuffleBuffer: 'windows held in the shuffle buffer',
  checkpointEvery: 'steps between checkpoints (one is also written on any exit)',
  logEvery: 'steps between logged scalars (log.jsonl, TensorBoard); 0: every step up to 5000 steps, else ~5000 points',
  workers: 'worker threads computing gradients in parallel (0: one per core on wasm, 1 on TensorFlow)',
} as const;

/** Checks training settings that the types cannot, before any work. */
export function checkTrainConfig(train: { steps: number; batchSize: number; warmup: number; lr: number; checkpointEvery: number; logEvery: number; ema?: number; optimizer?: string; soap?: typeof OPTIMIZER_DEFAULTS.soap; psgd?: typeof OPTIMIZER_DEFAULTS.psgd }): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`train.${name} must be a positive integer, got ${v}`);
  };
  positive('steps', train.steps);
  positive('batchSize', train.batchSize);
  if (!Number.isInteger(train.logEvery) || train.logEvery < 0) throw new ConfigError(`train.logEvery must be a whole number of steps (0: automatic), got ${train.logEvery}`);
  positive('checkpointEvery', train.checkpointEvery);
  if (!(train.lr > 0)) throw new ConfigError(`train.lr must be positive, got ${train.lr}`);
  if (train.ema !== undefined && !(train.ema >= 0 && train.ema < 1)) throw new ConfigError(`train.ema must lie in [0, 1) (0: no average), got ${train.ema}`);
  if (!Number.isInteger(train.warmup) || train.warmup < 0 || train.warmup >= train.steps) {
    throw new ConfigError(`train.warmup (${train.warmup}) must be an integer in [0, train.steps = ${train.steps})`);
  }
  if (train.optimizer !== undefined && !(OPTIMIZER_NAMES as readonly string[]).includes(train.optimizer)) {
    throw new ConfigError(`train.optimizer: unknown optimiser "${train.optimizer}" (known: ${OPTIMIZER_NAMES.join(', ')})`);
  }
  if (train.soap) {
    positive('soap.frequency', train.soap.frequency);
    positive('soap.maxDim', train.soap.maxDim);
    if (!(train.soap.shampooBeta >= 0 && train.soap.shampooBeta < 1)) throw new ConfigError(`train.soap.shampooBeta must lie in [0, 1), got ${train.soap.shampooBeta}`);
  }
  if (train.psgd) {
    positive('psgd.maxDim', train.psgd.maxDim);
    if (!(train.psgd.frequency >= 1)) throw new ConfigError(`train.psgd.frequency must be at least 1, got ${train.psgd.frequency}`);
    if (!(train.psgd.decay > 0 && train.psgd.decay <= 1)) throw new ConfigError(`train.psgd.decay must lie in (0, 1], got ${train.psgd.decay}`);
    if (!(train.psgd.precondLr > 0)) throw new ConfigError(`train.psgd.precondLr must be positive, got ${train.psgd.precondLr}`);
  }
}
