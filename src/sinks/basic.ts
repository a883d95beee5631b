/**
 * The simplest sinks: they pull a stream to its end (or until told to stop) and return a promise. A sink is
 * where a pipeline starts running, since stages are lazy.
 */
import { from, type Source } from '../streams/core.js';

/** Pulls every item and discards it; resolves to the number of items. Holds nothing. */
export async function drain<A>(source: Source<A>, signal?: AbortSignal): Promise<number> {
  let count = 0;
  for await (const _ of from(source)) {
    signal?.throwIfAborted();
    count++;
  }
  return count;
}

/** Pulls every item into an array. Holds the whole stream: for small or bounded streams. */
export async function collect<A>(source: Source<A>): Promise<A[]> {
  const out: A[] = [];
  for await (const item of from(source)) out.push(item);
  return out;
}

/** Folds the stream into one value with `step(acc, item, index)`. Holds only the accumulator. */
export async function reduce<A, R>(
  source: Source<A>,
  step: (acc: R, item: A, index: number) => R | Promise<R>,
  initial: R,
): Promise<R> {
  let acc = initial;
  let i = 0;
  for await (const item of from(source)) acc = await step(acc, item, i++);
  return acc;
}

/** Calls `fn` on each item in order, awaiting it before pulling the next (so `fn` sets the pace). */
export async function forEach<A>(
  source: Source<A>,
  fn: (item: A, index: number) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let i = 0;
  for await (const item of from(source)) {
    signal?.throwIfAborted();
    await fn(item, i++);
  }
}
