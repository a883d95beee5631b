/**
 * Client side of the HDF5 worker threads. `H5Worker` is one worker with request/response bookkeeping; `H5Pool`
 * spreads requests over a few of them (least busy first). A worker that dies (wasm abort, uncaught error,
 * exit) rejects every request it had in flight with an error naming what it was doing and the file, and the
 * pool replaces it on the next request: nothing hangs. Idle workers are unref'd, so an idle pool never keeps
 * the process alive; a worker with requests in flight is ref'd, so awaiting it does.
 *
 * Requests are typed by the operation map of `protocol.ts`: `call('readWindow', plan, label)` checks `plan`
 * against the operation's argument type and resolves to its result type.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { siblingModule } from '../../streams/core.js';
import type { H5Args, H5OpName, H5Request, H5Response, H5Result } from './protocol.js';

interface Pending {
  /** Settles the caller's promise with the answer's value (whose type the request's operation fixed). */
  resolve(value: H5Result<H5OpName>): void;
  reject(err: Error): void;
  label: string;
}

/** The error a caller sees when the worker serving its request died. */
export class WorkerCrashError extends Error {
  override readonly name = 'WorkerCrashError';
}

export class H5Worker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private deadReason: string | null = null;

  constructor() {
    this.worker = new Worker(siblingModule(import.meta.url, 'h5worker'));
    this.worker.unref();
    this.worker.on('message', (msg: H5Response | { ready: true }) => {
      if (!('id' in msg)) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      this.updateRef();
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(msg.message));
    });
    this.worker.on('error', (err) => this.die(`crashed: ${err.message}`));
    this.worker.on('exit', (code) => this.die(`exited with code ${code}`));
  }

  /** Requests in flight. */
  get load(): number {
    return this.pending.size;
  }

  get alive(): boolean {
    return this.deadReason === null;
  }

  /**
   * Runs operation `op` (see `H5Ops`) in the worker. `label` says what is being done, with the file path
   * (`reading /a/b.hdf5`): it is what a crash error names. Typed arrays in `transfer` are moved, not copied.
   */
  call<K extends H5OpName>(op: K, args: H5Args<K>, label: string, transfer: ArrayBuffer[] = []): Promise<H5Result<K>> {
    if (this.deadReason !== null) {
      return Promise.reject(new WorkerCrashError(`HDF5 worker ${this.deadReason}; cannot start ${label}`));
    }
    const id = this.nextId++;
    const request = { id, op, args } as H5Request<K>;
    return new Promise<H5Result<K>>((resolve, reject) => {
      // the worker answers request `id` with the result of `op`, so its value is an H5Result<K>
      this.pending.set(id, { resolve: resolve as (value: H5Result<H5OpName>) => void, reject, label });
      this.updateRef();
      this.worker.postMessage(request, transfer);
    });
  }

  async terminate(): Promise<void> {
    if (this.deadReason === null) this.deadReason = 'was terminated';
    await this.worker.terminate();
    this.failAll();
  }

  private die(reason: string): void {
    if (this.deadReason === null) this.deadReason = reason;
    this.failAll();
  }

  private failAll(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new WorkerCrashError(`HDF5 worker ${this.deadReason} while ${p.label}`));
    }
  }

  private updateRef(): void {
    if (this.pending.size > 0) this.worker.ref();
    else this.worker.unref();
  }
}

/** A few HDF5 workers; each request goes to the least busy live one. */
export class H5Pool {
  private workers: H5Worker[] = [];

  constructor(readonly size: number = defaultPoolSize()) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`H5Pool size must be a positive integer, got ${size}`);
  }

  /** Runs operation `op` (see `H5Ops`) in the least busy worker; as `H5Worker.call`. */
  call<K extends H5OpName>(op: K, args: H5Args<K>, label: string, transfer: ArrayBuffer[] = []): Promise<H5Result<K>> {
    this.workers = this.workers.filter((w) => w.alive);
    let worker: H5Worker | undefined;
    if (this.workers.length < this.size) {
      const idle = this.workers.find((w) => w.load === 0);
      worker = idle ?? new H5Worker();
      if (!idle) this.workers.push(worker);
    } else {
      worker = this.workers.reduce((a, b) => (b.load < a.load ? b : a));
    }
    return worker.call(op, args, label, transfer);
  }

  /**
   * One live worker of the pool, always the same while it lives (created if needed): for stateful work such
   * as a writer, whose open file lives in one worker.
   */
  pinned(): H5Worker {
    this.workers = this.workers.filter((w) => w.alive);
    if (this.workers.length === 0) this.workers.push(new H5Worker());
    return this.workers[0]!;
  }

  /** Asks every worker to run `op` (e.g. close a file everywhere). */
  async broadcast<K extends H5OpName>(op: K, args: H5Args<K>, label: string): Promise<void> {
    await Promise.all(this.workers.filter((w) => w.alive).map((w) => w.call(op, args, label)));
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

function defaultPoolSize(): number {
  const env = Number(process.env.WELLSPRING_H5_WORKERS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, Math.min(2, availableParallelism()));
}

let shared: H5Pool | null = null;

/**
 * The worker that Well writers use by default: the shared pool's pinned worker (a writer's state lives in one
 * worker, so writes are not spread over the pool; reads may still go to it). Recreated if it died.
 */
export function wellWriterWorker(): H5Worker {
  return wellPool().pinned();
}

/** The process-wide reader pool (created on first use; its idle workers do not keep the process alive). */
export function wellPool(): H5Pool {
  shared ??= new H5Pool();
  return shared;
}

/** Terminates the shared pool's workers (new ones are made on next use). */
export async function closeWellPool(): Promise<void> {
  const p = shared;
  shared = null;
  await p?.close();
}
