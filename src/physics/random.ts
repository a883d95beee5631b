/**
 * Seeds for the simulators: every trajectory is reproducible from one integer. The generator is the project's
 * shared `Rng` (src/streams/random.ts); this module adds 53-bit seeds and independent per-trajectory seeds.
 */
import { Rng, splitmix32 } from '../streams/random.js';

/** A generator from any safe integer seed (the bits above 32 are folded in). */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const hi = Math.floor(seed / 2 ** 32);
  return new Rng((seed >>> 0) ^ Math.imul(hi | 0, 0x27d4eb2d));
}

/**
 * The seed of trajectory `index` under the global seed `seed`: a hash of both, so trajectories are independent
 * of each other and of how the work is split across workers. Non-negative, below 2^53.
 */
export function trajectorySeed(seed: number, index: number): number {
  const mix = splitmix32((seed >>> 0) ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.floor(seed / 2 ** 32));
  const hi = mix() & 0x1fffff;
  const lo = mix();
  return hi * 2 ** 32 + lo;
}
