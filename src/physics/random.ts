/**
 * Seeded random numbers for the simulators: a small, fast generator (sfc32, seeded through splitmix32) so that
 * every trajectory is reproducible from one integer, plus a way to derive independent per-trajectory seeds from
 * a global seed without the streams overlapping in practice.
 */

/** A seeded source of uniform and normal variates. */
export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Creates a generator from an integer seed (any safe integer; the low 53 bits are mixed in). */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const hi = Math.floor(seed / 2 ** 32);
  const mix = splitmix32((seed >>> 0) ^ Math.imul(hi | 0, 0x27d4eb2d));
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix() | 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  let spare: number | null = null;
  const uniform = (): number => (next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53;
  return {
    uniform,
    range: (lo, hi) => lo + (hi - lo) * uniform(),
    normal() {
      if (spare !== null) {
        const s = spare;
        spare = null;
        return s;
      }
      let u = 0;
      while (u === 0) u = uniform();
      const v = uniform();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
  };
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
