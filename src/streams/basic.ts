/**
 * Per-item operators: map, filter, tap, take, skip, batch, unbatch, window. They hold at most one batch or
 * window and pull exactly as many items as they yield (plus what a batch or window needs).
 *
 * map, filter and tap sit on the hot path of every pipeline, so they are hand-written iterators (a promise
 * `then` chain per item) rather than async generators: about 4x less overhead per item and stage.
 */
import { StageError, named, type Stage } from './core.js';

const SKIP: unique symbol = Symbol('skip');
type Step<A, B> = (item: A, index: number) => B | typeof SKIP | Promise<B | typeof SKIP>;

function isThenable<T>(value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A one-to-(zero or one) stage from a per-item step (`SKIP` drops the item). Errors thrown by the step close
 * the source and reject with a StageError naming the stage; errors from upstream pass through, tagged as the
 * source's if no stage named them. Concurrent `next()` calls are queued, so the step sees items in order.
 */
function perItem<A, B>(name: string, step: Step<A, B>): Stage<A, B> {
  return (source) => ({
    [Symbol.asyncIterator](): AsyncIterator<B> {
      const it = source[Symbol.asyncIterator]();
      let index = 0;
      let tail: Promise<IteratorResult<B>> | undefined;
      const upstream = (err: unknown): never => {
        throw err instanceof StageError ? err : new StageError('source', err);
      };
      const fail = (err: unknown): Promise<never> => {
        const error = err instanceof StageError ? err : new StageError(name, err);
        const close = it.return ? it.return().catch(() => undefined) : Promise.resolve();
        return close.then(() => Promise.reject(error));
      };
      const settle = (value: B | typeof SKIP): IteratorResult<B> | Promise<IteratorResult<B>> =>
        value === SKIP ? pull() : { done: false, value };
      const onItem = (r: IteratorResult<A>): IteratorResult<B> | Promise<IteratorResult<B>> => {
        if (r.done) return { done: true, value: undefined };
        let out: B | typeof SKIP | Promise<B | typeof SKIP>;
        try {
          out = step(r.value, index++);
        } catch (err) {
          return fail(err);
        }
        return isThenable<B | typeof SKIP>(out) ? Promise.resolve(out).then(settle, fail) : settle(out);
      };
      const pull = (): Promise<IteratorResult<B>> => it.next().then(onItem, upstream);
      return {
        next() {
          const run = tail ? tail.then(pull, pull) : pull();
          tail = run;
          run.then(
            () => tail === run && (tail = undefined),
            () => tail === run && (tail = undefined),
          );
          return run;
        },
        async return(value?: unknown) {
          await it.return?.(value);
          return { done: true, value: undefined };
        },
      };
    },
  });
}

/** Applies `fn` to each item, in order, one at a time. Pulls one item per item yielded; holds nothing. */
export function map<A, B>(fn: (item: A, index: number) => B | Promise<B>, name = 'map'): Stage<A, B> {
  return perItem(name, fn);
}

/** Keeps the items for which `predicate` is true. Pulls until an item passes; holds nothing. */
export function filter<A, B extends A = A>(
  predicate: ((item: A, index: number) => item is B) | ((item: A, index: number) => boolean | Promise<boolean>),
  name = 'filter',
): Stage<A, B> {
  return perItem<A, B>(name, (item, i) => {
    const keep = predicate(item, i);
    if (isThenable<boolean>(keep)) return Promise.resolve(keep).then((k) => (k ? (item as B) : SKIP));
    return keep ? (item as B) : SKIP;
  });
}

/** Calls `fn` for its side effect (awaited when it returns a promise) and passes each item on unchanged. */
export function tap<A>(fn: (item: A, index: number) => void | Promise<void>, name = 'tap'): Stage<A, A> {
  return perItem<A, A>(name, (item, i) => {
    const done = fn(item, i);
    return isThenable<void>(done) ? Promise.resolve(done).then(() => item) : item;
  });
}

/** Yields the first `n` items, then closes the source (its `finally` runs). Pulls exactly `n` items. */
export function take<A>(n: number): Stage<A, A> {
  assertCount('take', n);
  return named('take', async function* (source) {
    if (n === 0) return;
    let count = 0;
    for await (const item of source) {
      yield item;
      if (++count >= n) return;
    }
  });
}

/** Drops the first `n` items and yields the rest. Holds nothing. */
export function skip<A>(n: number): Stage<A, A> {
  assertCount('skip', n);
  return named('skip', async function* (source) {
    let count = 0;
    for await (const item of source) {
      if (count++ >= n) yield item;
    }
  });
}

export interface BatchOptions {
  /** Drop a last batch smaller than `size` (default false: it is yielded). */
  dropLast?: boolean;
}

/**
 * Groups items into arrays of `size`. Pulls `size` items per batch and holds one batch. The last, smaller batch
 * is yielded unless `dropLast` is set.
 */
export function batch<A>(size: number, options: BatchOptions = {}): Stage<A, A[]> {
  assertCount('batch', size, 1);
  return named('batch', async function* (source) {
    let current: A[] = [];
    for await (const item of source) {
      current.push(item);
      if (current.length === size) {
        yield current;
        current = [];
      }
    }
    if (current.length > 0 && !options.dropLast) yield current;
  });
}

/** Flattens each incoming array (or other iterable) into its items. Holds one incoming batch. */
export function unbatch<A>(): Stage<Iterable<A>, A> {
  return named('unbatch', async function* (source) {
    for await (const group of source) yield* group;
  });
}

/**
 * Sliding windows of `size` consecutive items, a new window every `stride` items (stride 1: every position;
 * stride > size skips items between windows). A trailing partial window is not yielded. Holds `size` items;
 * each yielded window is a fresh array, safe to keep.
 */
export function window<A>(size: number, stride = 1): Stage<A, A[]> {
  assertCount('window', size, 1);
  assertCount('window stride', stride, 1);
  return named('window', async function* (source) {
    let buffer: A[] = [];
    let toSkip = 0; // items still to drop before the next window starts (when stride > size)
    for await (const item of source) {
      if (toSkip > 0) {
        toSkip--;
        continue;
      }
      buffer.push(item);
      if (buffer.length === size) {
        yield buffer.slice();
        if (stride >= size) {
          toSkip = stride - size;
          buffer = [];
        } else {
          buffer = buffer.slice(stride);
        }
      }
    }
  });
}

function assertCount(what: string, n: number, min = 0): void {
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${what}: expected an integer >= ${min}, got ${n}`);
}
