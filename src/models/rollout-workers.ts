/**
 * Ensemble rollouts over worker threads. Under Node the wasm backend runs one thread per instance, so a rollout
 * on the main thread leaves the machine's other cores idle; `RolloutWorkers` starts N workers (rollout-worker.ts),
 * each with its own wasm backend (and the native kernels where they load) and its own copy of the emulator: the
 * network is rebuilt from the loaded emulator's `spec` (worker-models.ts) and the weights are copied once from a
 * SharedArrayBuffer laid out as the training workers' (train/parallel.ts, whose worker handles and weight
 * helpers this reuses).
 *
 * `workers.rollout(start, options)` is `rollout(emulator, start, options)` with the ensemble's M members split
 * into N contiguous ranges, one per worker (`firstMember`): every member draws its noise from its own stream
 * (`ensembleMemberSeed(seed, member)`), so the states are those of the main-thread rollout on the wasm backend,
 * whatever N, up to float32 rounding where a kernel's summation order depends on the batch size (none does in
 * the tests: they agree exactly). A main thread on another backend (TensorFlow) differs from the workers by that
 * backend's own rounding. The lead-by-lead stream is the
 * same: each state holds all M members, in order.
 *
 * Laziness and memory: nothing runs until the first pull; then every worker computes its members' first window,
 * and as soon as a window has arrived the workers start on the next one (a run-ahead of one window), so they
 * compute while the consumer handles the current states (decoding, scoring). Holds two windows of states at
 * most, plus each worker's context tensor. One rollout at a time per pool. Leaving the stream early waits for the
 * window in flight, then closes the workers' rollouts (the pool stays usable); `close()` ends the threads. Idle
 * workers do not keep the process alive.
 *
 * Guided rollouts (`options.guidance`) are refused: they pull observations and run the decoder, which stay on the
 * main thread (`rollout`).
 *
 * ```ts
 * const workers = await RolloutWorkers.start(await loadEmulator('runs/diffusion'), { workers: 2 });
 * try {
 *   for await (const s of workers.rollout(start, { horizon: 40, window: 5, ensemble: 16, seed: 1 })) ...
 * } finally {
 *   await workers.close();
 * }
 * ```
 */
import { siblingModule } from '../streams/core.js';
import { ensureBackend } from './backend/select.js';
import { layoutOf, publishWeights, startWorkerThreads, type ParameterLayout, type WorkerHandle } from './train/parallel.js';
import { rolloutWorkers } from './worker-models.js';
import type { EmulatorSpec, LoadedEmulator } from './emulators.js';
import type { RolloutOptions, RolloutStart, RolloutState } from './diffusion/rollout.js';

/** What a worker receives as `workerData`. */
export interface RolloutWorkerInit {
  spec: EmulatorSpec;
  layout: ParameterLayout;
  /** The weights, laid out as `layout` (float32). */
  weights: SharedArrayBuffer;
  /** The emulator, for errors (its run directory). */
  what: string;
}

/** A rollout as sent to a worker: its start and options for its range of members (no guidance). */
export type WorkerRolloutOptions = Omit<RolloutOptions, 'guidance'> & { horizon: number };

export type ToRolloutWorker =
  | { type: 'start'; start: RolloutStart; options: WorkerRolloutOptions }
  | { type: 'next' }
  | { type: 'end' };
export type FromRolloutWorker =
  | { type: 'ready' }
  /** The states of `leads` lead times, lead-major: (leads, members, H, W, C). */
  | { type: 'window'; leads: number; states: Float32Array }
  | { type: 'ended' }
  | { type: 'error'; message: string };

/** What the workers need of an emulator: its spec and weights (a `LoadedEmulator` has them). */
export type RolloutModel = Pick<LoadedEmulator, 'spec' | 'vit'> & { dir?: string };

export interface RolloutWorkersOptions {
  /** Worker threads (default 0: one per core on the wasm backend, 1 elsewhere; see `rolloutWorkers`). */
  workers?: number;
}

type Handle = WorkerHandle<ToRolloutWorker, FromRolloutWorker>;

export class RolloutWorkers {
  private busy = false;
  private closed = false;

  private constructor(
    private readonly handles: Handle[],
    private readonly what: string,
  ) {}

  /** Starts the workers and waits until each has built the emulator and copied its weights. */
  static async start(model: RolloutModel, options: RolloutWorkersOptions = {}): Promise<RolloutWorkers> {
    const count = rolloutWorkers(options.workers ?? 0, await ensureBackend());
    const what = model.dir ? `emulator ${model.dir}` : `the ${model.spec.kind} emulator`;
    const layout = layoutOf(model.vit.params);
    const weights = new SharedArrayBuffer(layout.total * 4);
    await publishWeights(layout, model.vit.params, new Float32Array(weights));
    const init: RolloutWorkerInit = { spec: model.spec, layout, weights, what };
    const handles = await startWorkerThreads<ToRolloutWorker, FromRolloutWorker>(
      count,
      siblingModule(import.meta.url, 'rollout-worker'),
      () => init,
      'rollout worker',
    );
    for (const h of handles) h.worker.unref();
    return new RolloutWorkers(handles, what);
  }

  /** Number of worker threads. */
  get workers(): number {
    return this.handles.length;
  }

  /** A request to one worker; the thread holds the process open only while it works. */
  private async request(h: Handle, message: ToRolloutWorker): Promise<FromRolloutWorker> {
    h.worker.ref();
    try {
      return await h.request(message);
    } finally {
      h.worker.unref();
    }
  }

  /**
   * `rollout(emulator, start, options)` with the members split over the workers (see the module header): a
   * source, nothing runs until pulled. Fails naming the trajectory, the members and the leads a worker failed on.
   */
  rollout(start: RolloutStart, options: RolloutOptions): AsyncIterable<RolloutState> {
    const { horizon, window = 5, context = 1, ensemble = 1, seed = 0, firstMember = 0 } = options;
    const where = `rollout${start.id === undefined ? '' : ` ${start.id}`} (${this.what}, ${this.handles.length} worker threads)`;
    if (options.guidance) {
      throw new Error(`${where}: guided rollouts run on the main thread (rollout()), not on rollout workers`);
    }
    // The main-thread rollout checks the rest (in each worker); these are needed here to split the work.
    for (const [name, v, min] of [['horizon', horizon, 0], ['window', window, 2], ['context', context, 1], ['ensemble', ensemble, 1]] as const) {
      if (!Number.isInteger(v) || v < min) throw new Error(`${where}: ${name} must be an integer >= ${min}, got ${v}`);
    }
    if (context >= window) throw new Error(`${where}: context (${context}) must be smaller than the window (${window})`);
    const [, H, W, C] = start.shape;
    const frame = H * W * C;
    const n = this.handles.length;
    // Contiguous member ranges, the first ensemble % n one member larger.
    const ranges: { handle: Handle; first: number; count: number }[] = [];
    for (let i = 0, first = 0; i < n; i++) {
      const count = Math.floor(ensemble / n) + (i < ensemble % n ? 1 : 0);
      if (count > 0) ranges.push({ handle: this.handles[i]!, first, count });
      first += count;
    }
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (self.closed) throw new Error(`${where}: the rollout workers were closed`);
        if (self.busy) throw new Error(`${where}: the workers are already running a rollout (one at a time per RolloutWorkers)`);
        self.busy = true;
        let lead = 0;
        let inFlight: Promise<Float32Array[]> | undefined;
        const perWindow = window - context;
        /** Asks every worker for its members' window after lead `from`. */
        const ask = (from: number, message: (r: (typeof ranges)[number]) => ToRolloutWorker): Promise<Float32Array[]> => {
          const leads = Math.min(perWindow, horizon - from);
          const span = leads === 1 ? `lead ${from + 1}` : `leads ${from + 1}-${from + leads}`;
          // Every worker's answer is awaited before failing, so that none is left busy.
          const replies = Promise.allSettled(
            ranges.map(async (r) => {
              let reply: FromRolloutWorker;
              try {
                reply = await self.request(r.handle, message(r));
              } catch (err) {
                const [a, b] = [firstMember + r.first, firstMember + r.first + r.count - 1];
                const members = a === b ? `member ${a}` : `members ${a}-${b}`;
                throw new Error(`${where}: generating ${span} of ${members} failed: ${(err as Error).message}`, { cause: err });
              }
              if (reply.type !== 'window' || reply.leads !== leads || reply.states.length !== leads * r.count * frame) {
                throw new Error(`${where}: rollout worker ${r.handle.index} answered ${reply.type === 'window' ? `${reply.leads} leads of ${reply.states.length} values` : reply.type}, expected ${leads} leads of ${r.count} members of ${frame} values`);
              }
              return reply.states;
            }),
          );
          return replies.then((settled) => settled.map((p) => {
            if (p.status === 'rejected') throw p.reason;
            return p.value;
          }));
        };
        try {
          if (horizon === 0) return;
          inFlight = ask(0, (r) => ({
            type: 'start',
            start: { states: start.states.slice(), shape: start.shape, labels: start.labels?.slice() ?? null, id: start.id }, // slices: a view would send its whole buffer
            options: { horizon, window, context, seed, ensemble: r.count, firstMember: firstMember + r.first },
          }));
          while (inFlight) {
            const parts = await inFlight;
            inFlight = undefined;
            const leads = Math.min(perWindow, horizon - lead);
            // Run ahead: the workers compute the next window while these states are consumed.
            const rest = horizon - lead - leads;
            if (rest > 0) {
              inFlight = ask(lead + leads, () => ({ type: 'next' }));
              inFlight.catch(() => undefined); // surfaced when awaited
            }
            for (let k = 0; k < leads; k++) {
              const states = new Float32Array(ensemble * frame);
              ranges.forEach((r, i) => states.set(parts[i]!.subarray(k * r.count * frame, (k + 1) * r.count * frame), r.first * frame));
              lead++;
              yield { lead, states, shape: [ensemble, H, W, C] as const, id: start.id };
            }
          }
        } finally {
          if (inFlight) await inFlight.catch(() => undefined);
          // Close the workers' rollouts (a crashed worker has none; its failure was reported above).
          await Promise.all(ranges.map((r) => self.request(r.handle, { type: 'end' }).catch(() => undefined)));
          self.busy = false;
        }
      },
    };
  }

  /** Ends the worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
