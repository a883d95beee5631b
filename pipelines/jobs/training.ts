/**
 * What the training jobs share (a helper, not a job): their configuration check, and the training loop: resume
 * from the run's last checkpoint, run the trainer's stage over the batches until the step budget, log every tenth
 * step, checkpoint periodically and on any exit (an interrupted run keeps its progress: steps are atomic and
 * checkpoints are written atomically).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { AbortedError, abortable, pipe, progress } from '../../src/streams/index.js';
import type { ParallelGradients, StepReport, Trainer } from '../../src/models/train/index.js';
import type { RunDir } from '../cli/run-dir.js';
import { ConfigError } from '../cli/config.js';

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
  /** Progress label, e.g. `train-ae steps`. */
  label: string;
  signal?: AbortSignal;
  /** Closed with the trainer. */
  parallel?: ParallelGradients;
}

/**
 * Trains until `steps` (or the signal), then saves a checkpoint and frees the trainer and its workers. The signal
 * is honoured between steps only: a step in flight finishes (its update applied in full) before the checkpoint
 * is written, so a checkpoint is always one consistent state; then the loop throws `AbortedError`. Waiting for
 * a batch is interrupted at once (no step is in flight then).
 */
export async function runTraining<B>(loop: TrainingLoop<B>): Promise<void> {
  const { trainer, run, checkpoint, signal } = loop;
  const remaining = Math.max(0, loop.steps - trainer.step);
  const batches = signal ? pipe(loop.batches, abortable<B>(signal)) : loop.batches;
  const reports = pipe(batches, trainer.stage(), progress<StepReport>({ label: loop.label, total: remaining }));
  let stopped = false;
  try {
    if (remaining > 0 && !signal?.aborted) {
      try {
        for await (const report of reports) {
          if (report.step % 10 === 0 || report.skipped) await run.log('step', { ...report });
          if (trainer.step % loop.checkpointEvery === 0) await trainer.save(checkpoint);
          if (trainer.step >= loop.steps) break;
          // Let signal handlers run (they are macrotasks; a step can otherwise chain microtasks only).
          await new Promise((resolve) => setImmediate(resolve));
          if (signal?.aborted) {
            stopped = true;
            break;
          }
        }
      } catch (err) {
        // The signal fired while waiting for a batch (no step in flight): stop like between steps.
        if (!isAbort(err)) throw err;
        stopped = true;
      }
    }
  } finally {
    if (trainer.step > 0) await trainer.save(checkpoint);
    trainer.dispose();
    await loop.parallel?.close();
  }
  if (stopped || (signal?.aborted && trainer.step < loop.steps)) {
    await run.log('interrupted', { step: trainer.step });
    throw new AbortedError(signal!.reason);
  }
}

/** True for an AbortedError, also when a stage wrapped it (StageError's cause). */
function isAbort(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof AbortedError) return true;
  return false;
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
