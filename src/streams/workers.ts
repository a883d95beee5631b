/**
 * Running a stage's work in worker threads: an ordered, bounded map over a piscina pool.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { named, type Stage } from './core.js';
import { concurrentMap } from './concurrency.js';
import { transferablesOf } from './transfer.js';

export interface WorkerMapOptions {
  /**
   * The worker module (path or file URL). Its default export (or the export named by `exportName`) is called
   * with each item and returns the result (or a promise). Return `transferResult(value)` to move typed arrays
   * back instead of copying them.
   */
  filename: string | URL;
  /** Name of the function exported by the worker module (default: the default export). */
  exportName?: string;
  /** Worker threads (default: the number of cores). */
  threads?: number;
  /** Items in flight across the pool (default 2 per thread, so a thread never waits for its next task). */
  concurrency?: number;
  /**
   * Move the typed arrays found in each item to the worker instead of copying them (default true). The caller's
   * arrays are detached (length 0) afterwards: do not reuse them.
   */
  transfer?: boolean;
  /** Data every worker receives as `workerData` (from `piscina` or `node:worker_threads`). */
  workerData?: unknown;
  /** The stage's name in errors (default `workerMap`). */
  name?: string;
}

/**
 * Sends each item to a pool of worker threads and yields the results in input order. The pool starts when the
 * stream is first pulled and is destroyed (all threads ended) when the stream ends, fails or is left early.
 * Pulls at most `concurrency` items beyond those yielded; holds those items and their results. A worker that
 * throws or crashes rejects the consumer with an error naming this stage, after which the pool is torn down.
 */
export function workerMap<A, B>(options: WorkerMapOptions): Stage<A, B> {
  const threads = options.threads ?? availableParallelism();
  const concurrency = options.concurrency ?? 2 * threads;
  const name = options.name ?? 'workerMap';
  const filename = options.filename instanceof URL ? options.filename.href : options.filename;
  return named(name, async function* (source) {
    const pool = new Piscina({
      filename,
      name: options.exportName ?? 'default',
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000, // the default (0) ends idle threads and restarts them for the next item
      workerData: options.workerData,
    });
    try {
      const run = (item: A): Promise<B> =>
        pool.run(item, options.transfer === false ? {} : { transferList: transferablesOf(item) }) as Promise<B>;
      yield* concurrentMap(run, { concurrency, name })(source);
    } finally {
      await pool.destroy();
    }
  });
}
