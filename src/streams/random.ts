/**
 * The project's seeded pseudo-random generator, shared by every layer (stream shuffles and augmentations,
 * simulators, initial noise and training draws): xoshiro128** (Blackman & Vigna), 32-bit
 * arithmetic only, period 2^128 - 1, seeded through splitmix32. Its state is four uint32 words, so it can be saved
 * in a checkpoint (`state()`) and restored (`Rng.fromState`) to continue exactly where it stopped. Independent
 * streams come from `fork()` (a new generator seeded from this one's output).
 *
 * Not cryptographic. The same seed gives the same sequence on every platform.
 *
 * Seed derivation lives here too, in one place: every stream of random numbers in the project starts from a
 * run's seed through one of the functions below, each a pure function of its inputs (never of iteration
 * history), so a resumed or sharded run draws the same numbers as an uninterrupted one.
 *
 * | function | used for |
 * |---|---|
 * | `mixSeed(...parts)` | per-epoch shuffles and context draws, per-sample augmentations |
 * | `trajectorySeed(seed, i)` | simulated trajectories (53-bit, independent of worker split) |
 * | `copySeed(seed, trajectory)` | the augmentation transforms of a trajectory's cached copies |
 * | `rolloutSeed(seed, trajectory)` | an evaluation rollout of one test trajectory |
 * | `ensembleMemberSeed(seed, member)` | the noise of one ensemble member of a rollout (any worker split) |
 * | `epochSeed(seed, epoch)` | the shuffled window order of a Well dataset in one epoch |
 * | `strideSeed(seed, epoch, index)` | the random time stride of one Well window sample in one epoch |
 * | `contextSeed(seed, epoch)` | the observed-frame counts of the emulator training windows of one epoch |
 * | `memberSeed(seed)` | the members of synthetic test rollouts (src/sinks/metrics/synthetic.ts) |
 * | `pairSeed(seed, batch)` | the initial noise of the teacher's samples for distillation pairs, per window batch |
 * | `observationSeed(seed, trajectory)` | the observation noise of one test trajectory in a guided evaluation |
 * | `sensorSeed(seed)` | the positions of randomly placed sensors (a guided evaluation's mask operator) |
 * | `preconditionerSeed(seed, step, index)` | PSGD-Kron's draws at an update: whether to refit (index -1), probes |
 * | `seededPermutation(n, seed)` | a permutation of 0..n-1 (epoch orders) |
 * | `createRng(seed)` | a generator from any safe integer (53-bit seeds) |
 * | `SeededRandom` | parameter initialisation (splitmix32 stream, normals with the spare kept) |
 */

/** The serialisable state of an `Rng`: four uint32 words, not all zero. */
export type RngState = [number, number, number, number];

/** splitmix32: a 32-bit seed expander; each call returns the next well-mixed uint32. */
export function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** A generator seeded from any integer (only its low 32 bits matter). */
  constructor(seed: number) {
    const next = splitmix32(seed);
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Restores a generator saved with `state()`. */
  static fromState(state: readonly number[]): Rng {
    return new Rng(0).setState(state);
  }

  /** Replaces this generator's state in place (validated); returns `this`. */
  setState(state: readonly number[]): this {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new Error(`Rng state: expected 4 uint32 words, got ${JSON.stringify(state)}`);
    }
    if (state.every((w) => w === 0)) throw new Error('Rng state: the all-zero state is invalid');
    [this.s0, this.s1, this.s2, this.s3] = state.map((w) => w | 0);
    return this;
  }

  /** The current state (a copy): `Rng.fromState(r.state())` continues with the same numbers as `r`. */
  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Next uint32. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0) || !Number.isInteger(n)) throw new Error(`Rng.int: expected a positive integer bound, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal sample (Box-Muller; uses two uniforms). */
  normal(): number {
    const u = (this.nextUint32() + 1) / 4294967297; // (0, 1]: log never sees 0
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** `n` standard normal samples (both Box-Muller outputs used). */
  normalArray(n: number, out: Float32Array = new Float32Array(n)): Float32Array {
    for (let i = 0; i < n; i += 2) {
      const u = (this.nextUint32() + 1) / 4294967297;
      const v = this.uniform();
      const r = Math.sqrt(-2 * Math.log(u));
      out[i] = r * Math.cos(2 * Math.PI * v);
      if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
    }
    return out;
  }

  /** `n` uniform samples in [lo, hi). */
  uniformArray(n: number, lo = 0, hi = 1, out: Float32Array = new Float32Array(n)): Float32Array {
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A new, independent generator seeded from this one (advances this one by one draw). */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }
}

// ---------------------------------------------------------------------------------------------------------
// Seed derivation

/** A stable 32-bit mix of integers (FNV-1a steps with a murmur finaliser), for seeds that depend only on their parts. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
  }
  return h;
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

/** The seed of the augmentation transforms of one trajectory's cached copies. */
export function copySeed(seed: number, trajectory: number): number {
  return seed * 1_000_003 + trajectory;
}

/** The seed of the evaluation rollout of one test trajectory (32-bit). */
export function rolloutSeed(seed: number, trajectory: number): number {
  return (seed * 7919 + trajectory) >>> 0;
}

/**
 * The seed of the noise stream of ensemble member `member` (0-based) of a rollout with seed `seed`
 * (src/models/diffusion/rollout.ts): each member draws its windows' noise from its own stream, so its states
 * are the same whether the ensemble runs batched on one thread or split over worker threads.
 */
export function ensembleMemberSeed(seed: number, member: number): number {
  return mixSeed(seed ^ 0xe45e, member);
}

/** The seed of a Well dataset's shuffled window order in one epoch. */
export function epochSeed(seed: number, epoch: number): number {
  return seed + 0x9e3779b9 * epoch;
}

/**
 * The seed of the random time stride of Well window sample `index` in `epoch` (a Well dataset with
 * `maxDt > dt`): a pure function of the three, so the stride of a sample does not depend on the order or
 * concurrency of reads.
 */
export function strideSeed(seed: number, epoch: number, index: number): number {
  return mixSeed(seed ^ 0x5d7e, epoch, index);
}

/** The seed of the context-frame draws of the emulator training windows of one epoch. */
export function contextSeed(seed: number, epoch: number): number {
  return mixSeed(seed ^ 0x51ed, epoch);
}

/** The seed of the ensemble members of a synthetic rollout, from the truth's seed. */
export function memberSeed(seed: number): number {
  return (seed * 2654435761 + 12345) >>> 0;
}

/**
 * The seed of the initial noise of the teacher's sample for window batch `batch` (0-based, in stream order) of
 * a distillation-pairs run (src/models/diffusion/distill.ts), from the run's seed.
 */
export function pairSeed(seed: number, batch: number): number {
  return mixSeed(seed ^ 0x9a1e, batch);
}

/**
 * The seed of the observation noise drawn for one test trajectory of a guided evaluation
 * (src/models/emulate.ts, `truthObservations`), from the run's seed.
 */
export function observationSeed(seed: number, trajectory: number): number {
  return mixSeed(seed ^ 0x0b5e, trajectory);
}

/** The seed of the positions of randomly placed sensors (src/physics/observe.ts, `randomSensors`). */
export function sensorSeed(seed: number): number {
  return mixSeed(seed ^ 0x5e75);
}

/**
 * The seed of PSGD-Kron's random draws at optimiser update `step` (1-based): index -1 decides whether the
 * preconditioner is refitted at that update, index k >= 0 is the random probe of the k-th parameter
 * (src/models/train/psgd-kron.ts). Pure in its inputs, so a resumed run draws what an uninterrupted one would.
 */
export function preconditionerSeed(seed: number, step: number, index: number): number {
  return mixSeed(seed ^ 0x95cd, step, index + 1);
}

/** A generator from any safe integer seed (the bits above 32 are folded in). */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const hi = Math.floor(seed / 2 ** 32);
  return new Rng((seed >>> 0) ^ Math.imul(hi | 0, 0x27d4eb2d));
}

/** A seeded Fisher-Yates permutation of 0..n-1. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r.uniform() * (i + 1));
    const tmp = p[i]!;
    p[i] = p[j]!;
    p[j] = tmp;
  }
  return p;
}

/**
 * The generator of parameter initialisation: the splitmix32 stream of `seed` as uniforms in [0, 1), and
 * standard normals by Box-Muller with the second value kept for the next call.
 */
export class SeededRandom {
  private readonly next: () => number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.next = splitmix32(seed);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.next() / 4294967296;
  }

  /** Standard normal (Box-Muller, second value kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}
