/**
 * The project's seeded pseudo-random generator, shared by every layer (stream shuffles and augmentations,
 * simulators, initial noise and training draws): xoshiro128** (Blackman & Vigna), 32-bit
 * arithmetic only, period 2^128 - 1, seeded through splitmix32. Its state is four uint32 words, so it can be saved
 * in a checkpoint (`state()`) and restored (`Rng.fromState`) to continue exactly where it stopped. Independent
 * streams come from `fork()` (a new generator seeded from this one's output).
 *
 * Not cryptographic. The same seed gives the same sequence on every platform.
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
