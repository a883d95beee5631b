/**
 * Stages that overlap work: prefetch (run the producer ahead of the consumer) and an ordered concurrent map.
 * Both have a hard bound on how far they run ahead, so backpressure still reaches the source.
 */
import { named, type Stage } from './core.js';

const ignore = (): void => undefined;

/**
 * Runs the source ahead of the consumer by up to `n` items, so a slow producer (disk reads, decoding) and a
 * slow consumer (a train step) overlap. Pulls: never more than `n` items beyond those consumed. Holds: up to `n`
 * items. On early exit it waits for the pulls in flight, then closes the source.
 */
export function prefetch<A>(n: number): Stage<A, A> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`prefetch: n must be an integer >= 1, got ${n}`);
  return named('prefetch', async function* (source) {
    const it = source[Symbol.asyncIterator]();
    const ahead: Promise<IteratorResult<A>>[] = [];
    let ended = false;
    const fill = (): void => {
      while (!ended && ahead.length < n) {
        const pending = it.next();
        pending.then((r) => r.done && (ended = true), () => (ended = true));
        ahead.push(pending);
      }
    };
    let finished = false;
    try {
      fill();
      for (;;) {
        const pending = ahead.shift();
        if (!pending) break;
        const r = await pending;
        if (r.done) break;
        fill();
        yield r.value;
      }
      finished = true;
    } finally {
      if (!finished) {
        // Early exit or error: let the pulls in flight settle (their errors are ours to swallow), then close.
        await Promise.allSettled(ahead);
        await it.return?.();
      }
    }
  });
}

export interface ConcurrentMapOptions {
  /** The most calls of `fn` running at once (default 4). Results are still yielded in input order. */
  concurrency?: number;
  /** The stage's name in errors (default `concurrentMap`). */
  name?: string;
}

/**
 * Applies an async `fn` to up to `concurrency` items at once and yields the results in input order. Pulls: at
 * most `concurrency` items beyond those yielded (an item is pulled only when a slot is free). Holds: the
 * in-flight items and their results. If `fn` fails, the error (naming this stage) reaches the consumer when the
 * failed item's turn comes, the source is closed, and the other calls in flight are awaited before closing.
 */
export function concurrentMap<A, B>(
  fn: (item: A, index: number) => Promise<B> | B,
  options: ConcurrentMapOptions = {},
): Stage<A, B> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrentMap: concurrency must be an integer >= 1, got ${concurrency}`);
  }
  return named(options.name ?? 'concurrentMap', async function* (source) {
    const it = source[Symbol.asyncIterator]();
    const inFlight: Promise<B>[] = [];
    let pull: Promise<IteratorResult<A>> | undefined;
    let sourceDone = false;
    let index = 0;
    const HEAD = Symbol('head');
    try {
      for (;;) {
        // Start calls while there is a free slot, but never keep a finished head result waiting on the source.
        while (!sourceDone && inFlight.length < concurrency) {
          pull ??= it.next();
          if (inFlight.length > 0) {
            const head = inFlight[0] as Promise<B>;
            const first = await Promise.race([pull, head.then(() => HEAD, () => HEAD)]);
            if (first === HEAD) break;
          }
          const r = await pull;
          pull = undefined;
          if (r.done) {
            sourceDone = true;
            break;
          }
          const call = Promise.resolve(r.value).then((item) => fn(item, index++));
          call.catch(ignore); // handled when its turn comes
          inFlight.push(call);
        }
        const head = inFlight.shift();
        if (!head) return;
        yield await head;
      }
    } finally {
      await Promise.allSettled(inFlight);
      if (pull) await pull.catch(ignore);
      if (!sourceDone) await it.return?.();
    }
  });
}
