/**
 * Per-trajectory cache of the dataset generator, so that an interrupted run resumes at trajectory granularity:
 * each simulated trajectory is written atomically (temporary name, fsync, rename) to
 * `<out>/.wellspring/<file stem>/<i>.f32` as raw float32, fields in the system's field order; a later run reads
 * it instead of simulating again. The generator deletes a set's cache once its files are complete. Synchronous
 * I/O: this runs in worker threads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../streams/atomic.js';
import { siblingModule } from '../../streams/core.js';
import { runTask, SYSTEM_FIELDS, taskGrid, type SimulationTask, type TrajectoryFields } from './systems.js';

/** One unit of generator work: a task and where its cached result lives. */
export interface TrajectoryJob {
  task: SimulationTask;
  cache?: string;
}

/** What a job returns: the fields, and whether they came from the cache. */
export interface TrajectoryResult {
  fields: TrajectoryFields;
  cached: boolean;
}

/** The cache directory of a parameter set inside a dataset root. */
export function trajectoryCacheDir(out: string, stem: string): string {
  return join(out, '.wellspring', stem);
}

/** The cache file of trajectory `index` of a parameter set. */
export function trajectoryCachePath(out: string, stem: string, index: number): string {
  return join(trajectoryCacheDir(out, stem), `${index}.f32`);
}

function fieldSizes(task: SimulationTask): { name: string; size: number }[] {
  const [nx, ny] = taskGrid(task);
  return SYSTEM_FIELDS[task.system].map((f) => ({ name: f.name, size: task.snapshots * nx * ny * (f.order ? 2 : 1) }));
}

/** Reads a cached trajectory; null when absent or not of the expected size (then it is simulated again). */
export function readCachedTrajectory(path: string, task: SimulationTask): TrajectoryFields | null {
  if (!existsSync(path)) return null;
  const bytes = readFileSync(path);
  const sizes = fieldSizes(task);
  const total = sizes.reduce((a, f) => a + f.size, 0);
  if (bytes.byteLength !== total * 4) return null;
  const all = new Float32Array(total);
  new Uint8Array(all.buffer).set(bytes);
  const out: TrajectoryFields = {};
  let offset = 0;
  for (const f of sizes) {
    out[f.name] = all.slice(offset, offset + f.size);
    offset += f.size;
  }
  return out;
}

/** Writes a trajectory to the cache atomically (`writeFileAtomicSync`). */
export function writeCachedTrajectory(path: string, task: SimulationTask, fields: TrajectoryFields): void {
  const parts = fieldSizes(task).map((f) => {
    const a = fields[f.name];
    if (!a || a.length !== f.size) throw new Error(`trajectory cache: field ${f.name} has ${a?.length ?? 0} values, expected ${f.size}`);
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  });
  writeFileAtomicSync(path, Buffer.concat(parts));
}

/** Runs a job: from the cache when it holds the trajectory, else simulated (and cached when a path is given). */
export function runJob(job: TrajectoryJob, shouldStop?: () => boolean): TrajectoryResult {
  if (job.cache) {
    const cached = readCachedTrajectory(job.cache, job.task);
    if (cached) return { fields: cached, cached: true };
  }
  const fields = runTask(job.task, shouldStop);
  if (job.cache) writeCachedTrajectory(job.cache, job.task, fields);
  return { fields, cached: false };
}

/** The worker module that runs one `TrajectoryJob` (for `workerMap`): simulates or reuses a cached trajectory. */
export const SIMULATION_WORKER: URL = siblingModule(import.meta.url, 'worker');
