/**
 * A small seeded pseudo-random generator for the stream stages (shuffle buffers, sampling of windows):
 * sfc32 seeded through splitmix32, so nearby seeds give unrelated streams. Its state is four 32-bit words,
 * which `state()` returns and `seededRandom(state)` resumes from, for reproducible resumed runs.
 */

export interface RandomSource {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** The generator's current state, to resume it later. */
  state(): [number, number, number, number];
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A generator from an integer seed, or from a state saved by `state()`. */
export function seededRandom(seed: number | readonly [number, number, number, number]): RandomSource {
  let a: number, b: number, c: number, d: number;
  if (typeof seed === 'number') {
    if (!Number.isFinite(seed)) throw new RangeError(`seededRandom: seed must be a finite number, got ${seed}`);
    const mix = splitmix32(Math.floor(seed) ^ Math.floor(seed / 2 ** 32));
    [a, b, c, d] = [mix(), mix(), mix(), mix()];
  } else {
    [a, b, c, d] = seed.map((w) => w >>> 0) as [number, number, number, number];
  }
  const nextUint32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  return {
    next: () => nextUint32() / 2 ** 32,
    int: (n) => Math.floor((nextUint32() / 2 ** 32) * n),
    state: () => [a, b, c, d],
  };
}
