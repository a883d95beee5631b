/** Test sources that record how they are pulled and closed. */
import { setTimeout as sleep } from 'node:timers/promises';

export interface Counting<A> extends AsyncIterable<A> {
  /** Items produced so far (incremented before each yield). */
  pulled: number;
  /** True once the generator's finally block has run. */
  closed: boolean;
}

/** Yields `items` (or 0..n-1), counting pulls and recording whether its `finally` ran. */
export function counting<A = number>(items: number | A[], options: { delayMs?: () => number } = {}): Counting<A> {
  const list = typeof items === 'number' ? (Array.from({ length: items }, (_, i) => i) as A[]) : items;
  const state = {
    pulled: 0,
    closed: false,
    async *[Symbol.asyncIterator]() {
      try {
        for (const item of list) {
          if (options.delayMs) await sleep(options.delayMs());
          state.pulled++;
          yield item;
        }
      } finally {
        state.closed = true;
      }
    },
  };
  return state;
}

/** An endless counting source. */
export function endless(): Counting<number> {
  const state = {
    pulled: 0,
    closed: false,
    async *[Symbol.asyncIterator]() {
      try {
        for (let i = 0; ; i++) {
          state.pulled++;
          yield i;
        }
      } finally {
        state.closed = true;
      }
    },
  };
  return state;
}

/** Deterministic pseudo-random delays in [0, max) ms. */
export function jitter(seed: number, max: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * max;
  };
}

/** Lets pending microtasks and a few macrotasks run. */
export const settle = (): Promise<void> => sleep(20);
