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

interface Pending {
  resolve: (msg: FromWorker) => void;
  reject: (err: Error) => void;
}

class WorkerHandle {
  private pending: Pending | undefined;
  private failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly worker: Worker,
  ) {
    worker.on('message', (msg: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.type === 'error') p.reject(new Error(`training worker ${index}: ${msg.message}`));
      else p.resolve(msg);
    });
    const fail = (err: Error) => {
      this.failure = err;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(err);
    };
    worker.on('error', (err) => fail(new Error(`training worker ${index} crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => fail(new Error(`training worker ${index} exited (code ${code})`)));
  }

  /** Waits for the next message (used for 'ready'), optionally sending one first. */
  request(message?: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error(`training worker ${this.index}: request while busy`));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      if (message) this.worker.postMessage(message, transfer);
    });
  }
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
  private readonly handles: WorkerHandle[];
  private readonly paramView: Float32Array;
  private readonly gradViews: Float32Array[];
  /** The summed gradient handed to the trainer (reused: valid until the next step). */
  private readonly summed: Float32Array;
  /** Per parameter: the tensor (dataId) whose values the weights region holds, undefined before the first copy. */
  private readonly written: Array<object | undefined>;

  private constructor(
    private readonly params: NamedParameters,
    private readonly layout: ParameterLayout,
    handles: WorkerHandle[],
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
    const handles = gradBuffers.map(
      (gradBuffer, i) =>
        new WorkerHandle(
          i,
          new Worker(siblingModule(import.meta.url, 'parallel-worker'), {
            workerData: {
              moduleUrl,
              exportName: options.exportName ?? 'build',
              options: options.options,
              layout,
              paramBuffer,
              gradBuffer,
              microBatch: options.microBatch,
            },
          }),
        ),
    );
    const self = new ParallelGradients(options.params, layout, handles, paramBuffer, gradBuffers);
    try {
      await Promise.all(handles.map((h) => h.request()));
    } catch (err) {
      await self.close();
      throw err;
    }
    return self;
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
    for (let i = 0; i < this.layout.names.length; i++) {
      const p = this.params.get(this.layout.names[i]);
      if (!p) throw new Error(`parallel gradients: parameter ${this.layout.names[i]} disappeared`);
      if (this.written[i] === p.dataId) continue;
      slotOf(this.layout, this.paramView, i).set((await p.data()) as Float32Array);
      this.written[i] = p.dataId;
    }
  }

  /**
   * Writes the weights region into the parameters the update changed (those with a gradient) and notes them as
   * current.
   */
  private commit(present: readonly boolean[]): void {
    const copy = tf.getBackend() !== 'wasm'; // the wasm backend copies into its heap; another backend may keep the view
    tf.tidy(() => {
      this.layout.names.forEach((name, i) => {
        if (!present[i]) return;
        const p = this.params.get(name);
        if (!p) throw new Error(`parallel gradients: parameter ${name} disappeared`);
        const slot = slotOf(this.layout, this.paramView, i);
        p.assign(tf.tensor(copy ? slot.slice() : slot, this.layout.shapes[i], 'float32'));
        this.written[i] = p.dataId;
      });
    });
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
