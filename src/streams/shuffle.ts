/**
 * Seeded shuffle buffer: an approximate global shuffle of a stream that may not fit in memory.
 */
import { named, type Stage } from './core.js';
import { Rng, mixSeed, seededPermutation } from './random.js';

/**
 * Shuffles with a buffer of `bufferSize` items: it fills the buffer, then for every new item yields a random
 * buffered one and puts the new item in its place; at the end it yields the rest in random order. The output is
 * a permutation of the input, the same for the same seed and input. Holds `bufferSize` items; a buffer at
 * least as large as the stream gives a uniform shuffle.
 */
export function shuffle<A>(bufferSize: number, seed: number): Stage<A, A> {
  if (!Number.isInteger(bufferSize) || bufferSize < 1) {
    throw new RangeError(`shuffle: bufferSize must be an integer >= 1, got ${bufferSize}`);
  }
  return named('shuffle', async function* (source) {
    const random = new Rng(seed);
    const buffer: A[] = [];
    for await (const item of source) {
      if (buffer.length < bufferSize) {
        buffer.push(item);
        continue;
      }
      const j = random.int(bufferSize);
      const out = buffer[j] as A;
      buffer[j] = item;
      yield out;
    }
    // Fisher-Yates over what is left.
    for (let i = buffer.length - 1; i >= 0; i--) {
      const j = random.int(i + 1);
      const out = buffer[j] as A;
      buffer[j] = buffer[i] as A;
      yield out;
    }
  });
}

/**
 * Source of sample indices epoch after epoch, from global position `from` on: each epoch is a fresh permutation
 * of 0..n-1 seeded by `mixSeed(seed, epoch)`, so position p always gives the same index (a resumed run starting
 * at `from` sees what an uninterrupted one saw). Endless; holds one permutation.
 */
export function* epochOrder(n: number, seed: number, from = 0): Generator<number> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`epochOrder: n must be an integer >= 1, got ${n}`);
  for (let epoch = Math.floor(from / n); ; epoch++) {
    const order = seededPermutation(n, mixSeed(seed, epoch));
    for (let i = epoch === Math.floor(from / n) ? from % n : 0; i < n; i++) yield order[i]!;
  }
}
