/**
 * Worker-thread entry point of the dataset generator: runs one job (from the trajectory cache, or simulated and
 * cached) and moves the trajectory's arrays back to the main thread without copying. When the pool's
 * `workerData.cancel` (a SharedArrayBuffer holding one Int32) becomes non-zero, a running simulation stops at
 * its next snapshot.
 */
import { workerData } from 'node:worker_threads';
import { transferResult } from '../../streams/transfer.js';
import { runJob, type TrajectoryJob, type TrajectoryResult } from './cache.js';

const data = workerData as { cancel?: SharedArrayBuffer } | null | undefined;
const cancel = data?.cancel ? new Int32Array(data.cancel) : null;
const shouldStop = cancel ? (): boolean => Atomics.load(cancel, 0) !== 0 : undefined;

export default function simulateJob(job: TrajectoryJob): TrajectoryResult {
  return transferResult(runJob(job, shouldStop));
}
