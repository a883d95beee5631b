/**
 * Worker-thread entry point of the dataset generator: runs one simulation task and moves the trajectory's
 * arrays back to the main thread without copying.
 */
import { transferResult } from '../transfer.js';
import { runTask, type SimulationTask, type TrajectoryFields } from './systems.js';

export default function simulateTask(task: SimulationTask): TrajectoryFields {
  return transferResult(runTask(task));
}
