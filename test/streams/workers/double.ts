// Worker for tests: doubles a Float32Array (in place, then moves it back) and reports whether it arrived
// transferred (its buffer is owned by this thread) by echoing the byte length.
import { transferResult } from '../../../src/streams/transfer.js';
import { setTimeout as sleep } from 'node:timers/promises';

export default async function double(task: { index: number; data: Float32Array; delayMs?: number; fail?: boolean; crash?: boolean }) {
  if (task.delayMs) await sleep(task.delayMs);
  if (task.fail) throw new Error(`bad item ${task.index}`);
  if (task.crash) process.exit(3);
  for (let i = 0; i < task.data.length; i++) task.data[i] = (task.data[i] as number) * 2;
  return transferResult({ index: task.index, data: task.data });
}
