/**
 * Sources that combine several streams (merge, interleave, zip) and a splitter that sends one stream to several
 * consumers (broadcast). Each keeps a fixed bound on how far it pulls ahead and closes every input on early exit.
 */
import { StageError, from, type Source } from './core.js';

type Pending<A> = Promise<{ index: number; result: IteratorResult<A> }>;

function tagSource(index: number) {
  return (err: unknown): never => {
    throw err instanceof StageError ? err : new StageError(`source ${index}`, err);
  };
}

async function closeAll(iterators: (AsyncIterator<unknown> | undefined)[]): Promise<void> {
  await Promise.allSettled(iterators.map((it) => it?.return?.()));
}

/**
 * Yields items from all sources as soon as each arrives (order across sources is by arrival). Pulls: at most one
 * item ahead per source. Holds: one pending item per source. Ends when all sources end; an error in any source
 * rejects the consumer (naming the source's position) and closes the others.
 */
export function merge<A>(...sources: Source<A>[]): AsyncIterable<A> {
  return {
    async *[Symbol.asyncIterator]() {
      const iterators: (AsyncIterator<A> | undefined)[] = sources.map((s) => from(s)[Symbol.asyncIterator]());
      const pending = new Map<number, Pending<A>>();
      const request = (i: number): void => {
        const it = iterators[i] as AsyncIterator<A>;
        pending.set(i, it.next().then((result) => ({ index: i, result }), tagSource(i)));
      };
      iterators.forEach((_, i) => request(i));
      try {
        while (pending.size > 0) {
          const { index, result } = await Promise.race(pending.values());
          pending.delete(index);
          if (result.done) {
            iterators[index] = undefined;
            continue;
          }
          request(index);
          yield result.value;
        }
      } finally {
        for (const p of pending.values()) p.catch(() => undefined);
        await closeAll(iterators);
      }
    },
  };
}

/**
 * Round-robin: one item from each source in turn, skipping sources that have ended, until all end. Deterministic,
 * unlike `merge`. Pulls one item at a time; holds nothing.
 */
export function interleave<A>(...sources: Source<A>[]): AsyncIterable<A> {
  return {
    async *[Symbol.asyncIterator]() {
      const iterators: (AsyncIterator<A> | undefined)[] = sources.map((s) => from(s)[Symbol.asyncIterator]());
      try {
        let live = iterators.length;
        while (live > 0) {
          for (let i = 0; i < iterators.length; i++) {
            const it = iterators[i];
            if (!it) continue;
            const r = await it.next().catch(tagSource(i));
            if (r.done) {
              iterators[i] = undefined;
              live--;
            } else {
              yield r.value;
            }
          }
        }
      } finally {
        await closeAll(iterators);
      }
    },
  };
}

type Unwrapped<T extends readonly Source<unknown>[]> = { [K in keyof T]: T[K] extends Source<infer A> ? A : never };

/**
 * Yields tuples of one item from each source, pulled together; ends when the first source ends and closes the
 * others. Pulls one item per source per tuple; holds one tuple.
 */
export function zip<T extends readonly Source<unknown>[]>(...sources: T): AsyncIterable<Unwrapped<T>> {
  return {
    async *[Symbol.asyncIterator]() {
      const iterators = sources.map((s) => from(s)[Symbol.asyncIterator]());
      try {
        for (;;) {
          const results = await Promise.all(iterators.map((it, i) => it.next().catch(tagSource(i))));
          if (results.some((r) => r.done)) return;
          yield results.map((r) => r.value) as Unwrapped<T>;
        }
      } finally {
        await closeAll(iterators);
      }
    },
  };
}

export interface BroadcastOptions {
  /** The most items held for the slowest consumer (default 16). The fastest runs at most this far ahead. */
  bufferSize?: number;
}

/**
 * Sends every item of one source to `n` consumers (each sees the whole stream, in order). The slowest consumer
 * gates the source: it is pulled only while fewer than `bufferSize` items are held for the slowest one. A consumer
 * that stops early (break) no longer gates the others; when all have stopped, the source is closed. Each returned
 * iterable can be iterated once. Holds at most `bufferSize` items.
 */
export function broadcast<A>(source: Source<A>, n: number, options: BroadcastOptions = {}): AsyncIterable<A>[] {
  const bufferSize = options.bufferSize ?? 16;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`broadcast: n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(bufferSize) || bufferSize < 1) {
    throw new RangeError(`broadcast: bufferSize must be an integer >= 1, got ${bufferSize}`);
  }
  const it = from(source)[Symbol.asyncIterator]();
  const items: A[] = []; // items[k] is stream position base + k
  let base = 0;
  const cursors: (number | undefined)[] = new Array(n).fill(0); // undefined: consumer detached
  const started: boolean[] = new Array(n).fill(false);
  let ended = false;
  let failure: StageError | undefined;
  let pulling: Promise<void> | undefined;
  let wake: (() => void)[] = [];

  const notify = (): void => {
    const waiting = wake;
    wake = [];
    for (const w of waiting) w();
  };
  const slowest = (): number => Math.min(...cursors.filter((c): c is number => c !== undefined));
  const trim = (): void => {
    const drop = slowest() - base;
    if (drop > 0) {
      items.splice(0, drop);
      base += drop;
    }
  };
  const pull = (): Promise<void> =>
    it.next().then(
      (r) => {
        if (r.done) ended = true;
        else items.push(r.value);
        pulling = undefined;
        notify();
      },
      (err: unknown) => {
        failure = err instanceof StageError ? err : new StageError('broadcast source', err);
        ended = true;
        pulling = undefined;
        notify();
      },
    );
  const detach = async (k: number): Promise<void> => {
    cursors[k] = undefined;
    if (cursors.every((c) => c === undefined)) {
      if (pulling) await pulling;
      if (!ended) {
        ended = true;
        await it.return?.();
      }
    } else {
      trim();
      notify();
    }
  };

  const consumer = (k: number): AsyncIterable<A> => ({
    [Symbol.asyncIterator](): AsyncIterator<A> {
      if (started[k]) throw new Error(`broadcast: consumer ${k} can be iterated only once`);
      started[k] = true;
      return {
        async next(): Promise<IteratorResult<A>> {
          for (;;) {
            const at = cursors[k];
            if (at === undefined) return { done: true, value: undefined };
            if (at < base + items.length) {
              const value = items[at - base] as A;
              cursors[k] = at + 1;
              trim();
              notify();
              return { done: false, value };
            }
            if (failure) throw failure;
            if (ended) return { done: true, value: undefined };
            if (!pulling && base + items.length - slowest() < bufferSize) pulling = pull();
            await (pulling ?? new Promise<void>((resolve) => wake.push(resolve)));
          }
        },
        async return(): Promise<IteratorResult<A>> {
          await detach(k);
          return { done: true, value: undefined };
        },
      };
    },
  });
  return Array.from({ length: n }, (_, k) => consumer(k));
}
