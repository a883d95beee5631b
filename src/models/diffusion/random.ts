/**
 * Random draws the emulators need on top of the project's seeded generator (`Rng` from src/streams/random.ts,
 * whose state is checkpointed with the trainer): Poisson counts for context frames, integer seeds for
 * `tf.randomNormal`, whose own generator is deterministic per seed on every backend, and the noise of a batch
 * drawn either from one seed or from one seed per row.
 *
 * Per-row seeds make a row's noise independent of the other rows: an ensemble rollout gives member m its own
 * seed, so member m's states do not depend on how many members are batched with it, nor on which worker thread
 * runs it (src/models/rollout-workers.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../streams/random.js';

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

/**
 * The seed of a batch's noise: one integer for the whole batch, or one per row (the first axis), in which case
 * row b's noise is drawn from `seeds[b]` alone.
 */
export type NoiseSeed = number | readonly number[];

/**
 * The noise streams of one batch, from a `NoiseSeed`: one `Rng` for the batch, or one per row. Each `normal`
 * call draws a fresh tensor seed from each stream, so successive draws (initial noise, then a stochastic
 * sampler's step noise) differ. With a single integer this is `tf.randomNormal(shape, ..., tensorSeed(rng))`
 * with `rng = new Rng(seed)`, as before per-row seeds existed.
 */
export class BatchNoise {
  private readonly rngs: Rng[];
  private readonly perRow: boolean;

  constructor(seed: NoiseSeed) {
    this.perRow = typeof seed !== 'number';
    const seeds = typeof seed === 'number' ? [seed] : seed;
    if (seeds.length === 0) throw new Error('noise seed: an empty list of per-row seeds');
    for (const s of seeds) {
      if (!Number.isInteger(s)) throw new Error(`noise seed: expected integers, got ${s}`);
    }
    this.rngs = seeds.map((s) => new Rng(s));
  }

  /** The next seed(s) of the streams, as a `NoiseSeed` of the same form (one integer, or one per row). */
  next(): NoiseSeed {
    const seeds = this.rngs.map(tensorSeed);
    return this.perRow ? seeds : seeds[0]!;
  }

  /** Standard normal noise of `shape`; with per-row seeds, shape[0] must equal their number. */
  normal(shape: readonly number[]): tf.Tensor {
    if (!this.perRow) return tf.randomNormal([...shape], 0, 1, 'float32', tensorSeed(this.rngs[0]!));
    if (shape[0] !== this.rngs.length) {
      throw new Error(`noise seed: ${this.rngs.length} per-row seeds for a batch of ${shape[0]} rows (shape [${shape}])`);
    }
    const row = [1, ...shape.slice(1)];
    return tf.tidy(() => tf.concat(this.rngs.map((rng) => tf.randomNormal(row, 0, 1, 'float32', tensorSeed(rng))), 0));
  }
}
