/**
 * Seeded randomness for the emulators: a small xoshiro128** generator whose whole state is four 32-bit words
 * (so a run can save and restore it), with the draws the diffusion code needs (uniform, normal, Poisson) and
 * integer seeds for `tf.randomNormal`, whose own generator is deterministic per seed on every backend.
 */

/** xoshiro128** (Blackman & Vigna): fast, 2^128 - 1 period, good enough for Monte Carlo noise. */
export class Xoshiro128 {
  private s: Uint32Array;
  private spareNormal: number | undefined;

  /** Seeds the state by running splitmix32 from `seed` (any finite number; its low 32 bits matter). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Xoshiro128: seed must be a finite number, got ${seed}`);
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 step
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** The next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal draw (Marsaglia polar method; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const r = u * u + v * v;
      if (r > 0 && r < 1) {
        const f = Math.sqrt((-2 * Math.log(r)) / r);
        this.spareNormal = v * f;
        return u * f;
      }
    }
  }

  /** Poisson draw with mean `lambda` (Knuth's product method: fine for the small rates used here). */
  poisson(lambda: number): number {
    if (!(lambda >= 0) || lambda > 30) throw new Error(`Xoshiro128.poisson: rate must be in [0, 30], got ${lambda}`);
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = this.uniform();
    while (p > limit) {
      k++;
      p *= this.uniform();
    }
    return k;
  }

  /** A fresh integer seed, for `tf.randomNormal(shape, 0, 1, 'float32', seed)`. */
  seed(): number {
    return this.nextUint32();
  }

  /** A copy of the state (4 words plus a flag for the cached normal), to save alongside a checkpoint. */
  getState(): number[] {
    return [...this.s, this.spareNormal === undefined ? Number.NaN : this.spareNormal];
  }

  /** Restores a state returned by `getState`. */
  setState(state: readonly number[]): void {
    if (state.length !== 5) throw new Error(`Xoshiro128.setState: expected 5 numbers, got ${state.length}`);
    this.s = Uint32Array.from(state.slice(0, 4));
    this.spareNormal = Number.isNaN(state[4]) ? undefined : state[4];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
