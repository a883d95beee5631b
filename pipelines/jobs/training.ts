/**
 * What the training jobs share (a helper, not a job): their configuration check, and the training loop: resume
 * from the run's last checkpoint, run the trainer's stage over the batches until the step budget, log every tenth
 * step, checkpoint periodically and on any exit (an interrupted run keeps its progress: steps are atomic and
 * checkpoints are written atomically).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { abortable, pipe, progress } from '../../src/streams/index.js';
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

/** Trains until `steps` (or the signal), then saves a checkpoint and frees the trainer and its workers. */
export async function runTraining<B>(loop: TrainingLoop<B>): Promise<void> {
  const { trainer, run, checkpoint } = loop;
  const remaining = Math.max(0, loop.steps - trainer.step);
  const reports = pipe(loop.batches, trainer.stage(), progress<StepReport>({ label: loop.label, total: remaining }));
  const stream = loop.signal ? pipe(reports, abortable<StepReport>(loop.signal)) : reports;
  try {
    if (remaining > 0) {
      for await (const report of stream) {
        if (report.step % 10 === 0 || report.skipped) await run.log('step', { ...report });
        if (trainer.step % loop.checkpointEvery === 0) await trainer.save(checkpoint);
        if (trainer.step >= loop.steps) break;
      }
    }
  } finally {
    if (trainer.step > 0) await trainer.save(checkpoint);
    trainer.dispose();
    await loop.parallel?.close();
  }
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
