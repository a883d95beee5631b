/**
 * Random draws the emulators need on top of the project's seeded generator (`Rng` from src/models/train, whose
 * state is checkpointed with the trainer): Poisson counts for context frames and integer seeds for
 * `tf.randomNormal`, whose own generator is deterministic per seed on every backend.
 */
import type { Rng } from '../../streams/random.js';

/** Poisson draw with mean `lambda` (Knuth's product method: fine for the small rates used here). */
export function poissonDraw(rng: Rng, lambda: number): number {
  if (!(lambda >= 0) || lambda > 30) throw new Error(`poissonDraw: rate must be in [0, 30], got ${lambda}`);
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = rng.uniform();
  while (p > limit) {
    k++;
    p *= rng.uniform();
  }
  return k;
}

/** A fresh integer seed for `tf.randomNormal(shape, 0, 1, 'float32', seed)`. */
export function tensorSeed(rng: Rng): number {
  return rng.nextUint32();
}
