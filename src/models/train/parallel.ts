/**
 * Data-parallel gradients over worker threads. Under Node the wasm backend runs one thread per instance, so a
 * machine's other cores sit idle during training; `ParallelGradients` starts N workers, each with its own wasm
 * backend and its own copy of the network (built by the same model module, so names and shapes agree), splits each
 * batch along its first axis into N shards, and averages the shards' gradients (weighted by shard size, which is
 * exact for losses that are means over the batch).
 *
 * Weights go to the workers and gradients come back through SharedArrayBuffers (one float32 region for the
 * weights, one per worker for its gradients); messages carry only the shards, the loss and which parameters got a
 * gradient. The weights region is the flat master copy between steps: `compute` copies into it only parameters
 * whose tensor changed since it was last written (a restored checkpoint, an outside assign), sums the workers'
 * gradients into one flat buffer and takes its squared norm (fused.ts), and hands both back flat
 * (`FlatGradients`); the trainer's fused step updates the region in place and `commit` writes it into the
 * parameters. The optimiser, clipping, EMA, RNG and checkpoints stay in the main thread's `Trainer`:
 *
 * ```ts
 * const parallel = await ParallelGradients.start({ module: new URL('./my-model.js', import.meta.url), params, workers: 2 });
 * const trainer = new Trainer({ params, loss, gradients: parallel.compute });
 * for await (const r of pipe(batches, trainer.stage())) ...
 * await parallel.close();
 * ```
 * The model module exports `build(options)` (or the `exportName` given) returning `{ params, loss }` like the
 * main thread's; `options` must be structured-cloneable. Batches are a tensor or a record of tensors sharing their
 * first dimension. Each worker's dropout/noise RNG is seeded per step from the trainer's RNG, so runs are
 * reproducible for a given worker count.
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import { siblingModule } from '../../streams/core.js';
import type { NamedParameters } from './optim.js';
import { layoutOf, slotOf, type ParameterLayout } from './layout.js';
import { accumulateGradient, squaredNorm } from './fused.js';
import type { FlatComputedGradients, LossFunction, StepContext } from './types.js';

export { layoutOf, type ParameterLayout } from './layout.js';

/** A batch the workers can shard: one tensor, or named tensors with the same first dimension. */
export type ShardableBatch = tf.Tensor | Record<string, tf.Tensor>;

/** What a model module's `build(options)` returns (in each worker). */
export interface ParallelModel<B extends ShardableBatch> {
  params: NamedParameters;
  loss: LossFunction<B>;
}

/** A shard as sent to a worker. */
export type WireShard = { data: Float32Array | Int32Array; shape: number[]; dtype: 'float32' | 'int32' } | { [name: string]: WireShard };

export type ToWorker =
  | { type: 'step'; shard: WireShard; step: number; seed: number }
  | { type: 'close' };
/** Where a worker's step went (milliseconds): reading the weights in, forward and backward, writing the gradients out. */
export interface WorkerTimings {
  pull: number;
  compute: number;
  push: number;
}
export type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; loss: number; present: number[]; timings: WorkerTimings }
  | { type: 'error'; message: string };

export interface ParallelOptions {
  /** The model module (file URL or path) the workers import. */
  module: string | URL;
  /** Name of its factory export (default `build`). */
  exportName?: string;
  /** Passed to the factory (structured-cloneable). */
  options?: unknown;
  /** The main thread's parameters (the master copy the trainer updates). */
  params: NamedParameters;
  /** Worker threads (default 2). */
  workers?: number;
  /** Each worker runs its shard in chunks of at most this many samples (see `TrainerOptions.microBatch`). */
  microBatch?: number;
}

interface Pending<Out> {
  resolve: (msg: Out) => void;
  reject: (err: Error) => void;
}

/**
 * A worker thread that answers one request at a time, with its failures as errors naming it (`<label> <index>`):
 * a reply `{ type: 'error', message }` rejects the request, and a crash or exit rejects the request in flight and
 * every later one. Shared by the training workers (here) and the rollout workers (../rollout-workers.ts).
 */
export class WorkerHandle<In, Out extends { type: string }> {
  private pending: Pending<Out> | undefined;
  private failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly worker: Worker,
    readonly label = 'training worker',
  ) {
    worker.on('message', (msg: Out) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.type === 'error') p.reject(new Error(`${label} ${index}: ${(msg as { message?: string }).message}`));
      else p.resolve(msg);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(err);
    };
    worker.on('error', (err) => fail(new Error(`${label} ${index} crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => fail(new Error(`${label} ${index} exited (code ${code})`)));
  }

  /** Waits for the next message (used for 'ready'), optionally sending one first. */
  request(message?: In, transfer: ArrayBuffer[] = []): Promise<Out> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error(`${this.label} ${this.index}: request while busy`));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      if (message) this.worker.postMessage(message, transfer);
    });
  }
}

/**
 * Starts `count` worker threads running `module` (a file URL), worker i with `workerData(i)`, and waits for each
 * one's first message (its `ready`); if one fails to start, all are terminated and its error is thrown.
 */
export async function startWorkerThreads<In, Out extends { type: string }>(
  count: number,
  module: URL,
  workerData: (index: number) => unknown,
  label: string,
): Promise<WorkerHandle<In, Out>[]> {
  const handles = Array.from({ length: count }, (_, i) => new WorkerHandle<In, Out>(i, new Worker(module, { workerData: workerData(i) }), label));
  try {
    await Promise.all(handles.map((h) => h.request()));
  } catch (err) {
    await Promise.all(handles.map((h) => h.worker.terminate()));
    throw err;
  }
  return handles;
}

/**
 * Checks a network built in a worker against the main thread's layout (names and shapes); throws naming every
 * difference.
 */
export function checkLayout(layout: ParameterLayout, params: NamedParameters, what: string): void {
  const problems: string[] = [];
  layout.names.forEach((name, i) => {
    const p = params.get(name);
    if (!p) problems.push(`${name}: missing in the worker's network`);
    else if (p.shape.join() !== layout.shapes[i].join()) problems.push(`${name}: main [${layout.shapes[i]}], worker [${p.shape}]`);
  });
  if (params.size !== layout.names.length) problems.push(`worker has ${params.size} parameters, main ${layout.names.length}`);
  if (problems.length > 0) throw new Error(`${what} builds a different network than the main thread's: ${problems.join('; ')}`);
}

/** The parameter of `layout`'s slot `i`, or an error naming it. */
function parameterAt(layout: ParameterLayout, params: NamedParameters, i: number): tf.Variable {
  const p = params.get(layout.names[i]);
  if (!p) throw new Error(`parallel workers: parameter ${layout.names[i]} disappeared`);
  return p;
}

/**
 * Copies the main thread's parameters into a flat float32 view laid out as `layout`: every one, or those for which
 * `changed(i, p)` holds.
 */
export async function publishWeights(
  layout: ParameterLayout,
  params: NamedParameters,
  view: Float32Array,
  changed: (i: number, p: tf.Variable) => boolean = () => true,
): Promise<void> {
  for (let i = 0; i < layout.names.length; i++) {
    const p = parameterAt(layout, params, i);
    if (changed(i, p)) slotOf(layout, view, i).set((await p.data()) as Float32Array);
  }
}

/**
 * Assigns the weights of a flat float32 view laid out as `layout` to the parameters (all, or those `only` marks).
 * The wasm backend copies the values into its heap; another backend might keep the array it is given, so it gets a
 * copy of the shared view.
 */
export function assignWeights(layout: ParameterLayout, view: Float32Array, params: NamedParameters, only?: readonly boolean[]): void {
  const copy = tf.getBackend() !== 'wasm';
  tf.tidy(() => {
    for (let i = 0; i < layout.names.length; i++) {
      if (only && !only[i]) continue;
      const slot = slotOf(layout, view, i);
      parameterAt(layout, params, i).assign(tf.tensor(copy ? slot.slice() : slot, layout.shapes[i], 'float32'));
    }
  });
}

async function toWire(batch: ShardableBatch, parts: number): Promise<{ shards: WireShard[]; sizes: number[] }> {
  const entries: Array<[string | undefined, tf.Tensor]> =
    batch instanceof tf.Tensor ? [[undefined, batch]] : Object.entries(batch).map(([k, v]) => [k, v]);
  if (entries.length === 0) throw new Error('parallel gradients: empty batch record');
  const n = entries[0][1].shape[0];
  for (const [k, t] of entries) {
    if (t.rank === 0 || t.shape[0] !== n) {
      throw new Error(`parallel gradients: batch entry ${k ?? '(tensor)'} has shape [${t.shape}], expected first dimension ${n}`);
    }
    if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`parallel gradients: cannot ship dtype ${t.dtype} (${k})`);
  }
  const sizes = Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
  const values = await Promise.all(entries.map(([, t]) => t.data() as Promise<Float32Array | Int32Array>));
  const shards: WireShard[] = [];
  let start = 0;
  for (const size of sizes) {
    const pieces = entries.map(([k, t], j): [string | undefined, WireShard] => {
      const row = t.size / n;
      return [
        k,
        {
          data: values[j].slice(start * row, (start + size) * row),
          shape: [size, ...t.shape.slice(1)],
          dtype: t.dtype as 'float32' | 'int32',
        },
      ];
    });
    shards.push(pieces[0][0] === undefined ? pieces[0][1] : Object.fromEntries(pieces as Array<[string, WireShard]>));
    start += size;
  }
  return { shards, sizes };
}

export class ParallelGradients {
  private readonly handles: WorkerHandle<ToWorker, FromWorker>[];
  private readonly paramView: Float32Array;
  private readonly gradViews: Float32Array[];
  /** The summed gradient handed to the trainer (reused: valid until the next step). */
  private readonly summed: Float32Array;
  /** Per parameter: the tensor (dataId) whose values the weights region holds, undefined before the first copy. */
  private readonly written: Array<object | undefined>;

  private constructor(
    private readonly params: NamedParameters,
    private readonly layout: ParameterLayout,
    handles: WorkerHandle<ToWorker, FromWorker>[],
    paramBuffer: SharedArrayBuffer,
    gradBuffers: SharedArrayBuffer[],
  ) {
    this.handles = handles;
    this.paramView = new Float32Array(paramBuffer);
    this.gradViews = gradBuffers.map((b) => new Float32Array(b));
    this.summed = new Float32Array(layout.total);
    this.written = layout.names.map(() => undefined);
  }

  /** Starts the workers and waits until each has built its network (checked against `params`). */
  static async start(options: ParallelOptions): Promise<ParallelGradients> {
    const count = options.workers ?? 2;
    if (!Number.isInteger(count) || count < 1) throw new Error(`parallel gradients: workers must be >= 1, got ${count}`);
    const layout = layoutOf(options.params);
    const paramBuffer = new SharedArrayBuffer(layout.total * 4);
    const gradBuffers = Array.from({ length: count }, () => new SharedArrayBuffer(layout.total * 4));
    const moduleUrl = options.module instanceof URL ? options.module.href : new URL(options.module, `file://${process.cwd()}/`).href;
    const handles = await startWorkerThreads<ToWorker, FromWorker>(
      count,
      siblingModule(import.meta.url, 'parallel-worker'),
      (i) => ({
        moduleUrl,
        exportName: options.exportName ?? 'build',
        options: options.options,
        layout,
        paramBuffer,
        gradBuffer: gradBuffers[i],
        microBatch: options.microBatch,
      }),
      'training worker',
    );
    return new ParallelGradients(options.params, layout, handles, paramBuffer, gradBuffers);
  }

  /**
   * Where the last step's time went (milliseconds): on the main thread, sharding the batch, copying changed weights
   * into the shared region, waiting for the workers and summing their gradients; in each worker, reading the
   * weights in, forward and backward, and writing the gradients out.
   */
  lastTimings: { shard: number; publish: number; workers: number; sum: number; perWorker: WorkerTimings[] } = { shard: 0, publish: 0, workers: 0, sum: 0, perWorker: [] };

  /** Number of workers. */
  get workers(): number {
    return this.handles.length;
  }

  /**
   * For `TrainerOptions.gradients`: shards the batch, runs the workers, returns the shard-size-weighted sum of
   * their gradients, flat (`FlatGradients`; its buffers are reused by the next call).
   */
  readonly compute = async (batch: ShardableBatch, context: StepContext): Promise<FlatComputedGradients> => {
    const t0 = performance.now();
    const { shards, sizes } = await toWire(batch, this.handles.length);
    const t1 = performance.now();
    const total = sizes.reduce((a, b) => a + b, 0);
    await this.publish();
    const t2 = performance.now();
    const seeds = this.handles.map(() => context.rng.nextUint32());
    const active = this.handles.filter((_, i) => sizes[i] > 0);
    const replies = await Promise.all(
      active.map((h) => h.request({ type: 'step', shard: shards[h.index], step: context.step, seed: seeds[h.index] })),
    );
    const t3 = performance.now();
    let loss = 0;
    const present = this.layout.names.map(() => false);
    const perWorker: WorkerTimings[] = [];
    replies.forEach((r, j) => {
      if (r.type !== 'done') throw new Error(`training worker ${active[j].index}: unexpected reply ${r.type}`);
      const weight = sizes[active[j].index] / total;
      loss += r.loss * weight;
      for (const i of r.present) present[i] = true;
      perWorker.push(r.timings);
      accumulateGradient(this.summed, this.gradViews[active[j].index], weight, j === 0);
    });
    const sumSquares = squaredNorm(this.layout, this.summed);
    this.lastTimings = { shard: t1 - t0, publish: t2 - t1, workers: t3 - t2, sum: performance.now() - t3, perWorker };
    return {
      loss,
      flat: { layout: this.layout, values: this.summed, present, sumSquares, weights: this.paramView, commit: () => this.commit(present) },
    };
  };

  /** Copies into the weights region the parameters whose tensor changed since it was last written there. */
  private async publish(): Promise<void> {
    const copied: Array<[number, object]> = [];
    await publishWeights(this.layout, this.params, this.paramView, (i, p) => this.written[i] !== p.dataId && copied.push([i, p.dataId]) > 0);
    for (const [i, dataId] of copied) this.written[i] = dataId; // only once every copy succeeded
  }

  /**
   * Writes the weights region into the parameters the update changed (those with a gradient) and notes them as
   * current.
   */
  private commit(present: readonly boolean[]): void {
    assignWeights(this.layout, this.paramView, this.params, present);
    this.layout.names.forEach((name, i) => {
      if (present[i]) this.written[i] = this.params.get(name)!.dataId;
    });
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
