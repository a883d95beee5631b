/**
 * The package's one FFT. `FFT`: in-place radix-2 complex transform on split real/imaginary Float64Arrays, with
 * twiddles and the bit-reversal permutation precomputed once per size. `RealRows`: real rows to half spectra
 * and back, two rows per complex FFT (the Rayleigh-Benard pressure projection). `fftnReal`, `fftnInPlace`,
 * `fftnRealPair`: N-dimensional transforms of any sizes (the metrics' spectra); axes whose length is not a power
 * of two go through Bluestein's chirp-z identity, a circular convolution done with power-of-two transforms, so
 * the result is the exact DFT up to rounding.
 *
 * Convention: unnormalised forward transform, X[k] = sum_n x[n] exp(-2 pi i k n / N) (numpy/torch "backward");
 * the inverse divides by n.
 *
 * The butterflies are those of the textbook decimation-in-time radix-2 transform, twiddle W = cos - i sin of
 * 2 pi k / size, each stage applied to the result of the one before; two stages are done per pass over the
 * data (four values kept in registers), which changes the memory traffic but not one floating-point operation.
 */

export class FFT {
  readonly n: number;
  private readonly cos: Float64Array;
  /** -sin (forward) and +sin (inverse) of 2 pi k / n, k < n/2. */
  private readonly sinForward: Float64Array;
  private readonly sinInverse: Float64Array;
  /** The bit-reversal permutation, and its pairs (i, j), i < j. */
  readonly rev: Uint32Array;
  private readonly swaps: Uint32Array;

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0)
      throw new RangeError(`FFT: size must be a power of two >= 2, got ${n}`);
    this.n = n;
    this.cos = new Float64Array(n / 2);
    this.sinForward = new Float64Array(n / 2);
    this.sinInverse = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      const s = Math.sin((2 * Math.PI * k) / n);
      this.cos[k] = Math.cos((2 * Math.PI * k) / n);
      this.sinForward[k] = -s;
      this.sinInverse[k] = s;
    }
    const bits = Math.log2(n);
    this.rev = new Uint32Array(n);
    const swaps: number[] = [];
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
      if (r > i) swaps.push(i, r);
    }
    this.swaps = Uint32Array.from(swaps);
  }

  /** Forward transform (sign -1), unnormalised, of the n values from `offset`. */
  forward(re: Float64Array, im: Float64Array, offset = 0): void {
    this.run(re, im, offset, this.sinForward);
  }

  /** Inverse transform (sign +1), normalised by 1/n, of the n values from `offset`. */
  inverse(re: Float64Array, im: Float64Array, offset = 0): void {
    this.run(re, im, offset, this.sinInverse);
    const s = 1 / this.n;
    for (let i = offset, end = offset + this.n; i < end; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }

  /**
   * Forward transform of values already stored in bit-reversed order (value j at `rev[j]`), which saves the
   * permutation pass when the caller writes its input anyway.
   */
  forwardPermuted(re: Float64Array, im: Float64Array): void {
    this.butterflies(re, im, 0, this.sinForward);
  }

  private run(re: Float64Array, im: Float64Array, offset: number, sin: Float64Array): void {
    const { swaps } = this;
    for (let p = 0; p < swaps.length; p += 2) {
      const i = offset + swaps[p];
      const j = offset + swaps[p + 1];
      let t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
    this.butterflies(re, im, offset, sin);
  }

  private butterflies(re: Float64Array, im: Float64Array, offset: number, sin: Float64Array): void {
    const { n, cos } = this;
    const end = offset + n;
    let size = 2;
    // Two radix-2 stages per pass: stage `size` on (i0, i1) and (i2, i3), then stage `2 size` on (i0, i2) and
    // (i1, i3), with i1 = i0 + size/2, i2 = i0 + size, i3 = i2 + size/2.
    for (; 2 * size <= n; size *= 4) {
      const half = size >> 1;
      const step1 = n / size;
      const step2 = step1 >> 1;
      for (let k = 0; k < half; k++) {
        const w1r = cos[k * step1];
        const w1i = sin[k * step1];
        const w2r = cos[k * step2];
        const w2i = sin[k * step2];
        const w3r = cos[(k + half) * step2];
        const w3i = sin[(k + half) * step2];
        for (let i0 = offset + k; i0 < end; i0 += 2 * size) {
          const i1 = i0 + half;
          const i2 = i0 + size;
          const i3 = i2 + half;
          let ar = re[i0];
          let ai = im[i0];
          let br = re[i1];
          let bi = im[i1];
          let cr = re[i2];
          let ci = im[i2];
          let dr = re[i3];
          let di = im[i3];
          // stage size
          let xr = br * w1r - bi * w1i;
          let xi = br * w1i + bi * w1r;
          br = ar - xr;
          bi = ai - xi;
          ar += xr;
          ai += xi;
          xr = dr * w1r - di * w1i;
          xi = dr * w1i + di * w1r;
          dr = cr - xr;
          di = ci - xi;
          cr += xr;
          ci += xi;
          // stage 2 size
          xr = cr * w2r - ci * w2i;
          xi = cr * w2i + ci * w2r;
          re[i2] = ar - xr;
          im[i2] = ai - xi;
          re[i0] = ar + xr;
          im[i0] = ai + xi;
          xr = dr * w3r - di * w3i;
          xi = dr * w3i + di * w3r;
          re[i3] = br - xr;
          im[i3] = bi - xi;
          re[i1] = br + xr;
          im[i1] = bi + xi;
        }
      }
    }
    if (size <= n) {
      // one stage left (log2 n odd): size = n, one group
      const half = size >> 1;
      for (let k = 0; k < half; k++) {
        const wr = cos[k];
        const wi = sin[k];
        const a = offset + k;
        const b = a + half;
        const xr = re[b] * wr - im[b] * wi;
        const xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr;
        im[b] = im[a] - xi;
        re[a] += xr;
        im[a] += xi;
      }
    }
  }
}

/**
 * Transforms of real rows of length n (a rows x n array, row-major) to their half spectra
 * (rows x (n/2 + 1) complex, split into re/im arrays) and back. Two rows share one complex FFT.
 */
export class RealRows {
  readonly n: number;
  readonly modes: number;
  private readonly fft: FFT;
  private readonly zr: Float64Array;
  private readonly zi: Float64Array;

  constructor(n: number) {
    this.fft = new FFT(n);
    this.n = n;
    this.modes = n / 2 + 1;
    this.zr = new Float64Array(n);
    this.zi = new Float64Array(n);
  }

  /** src rows [r0, r0 + rows) -> spectra rows [0, rows) of (outRe, outIm). */
  forward(src: Float64Array, r0: number, rows: number, outRe: Float64Array, outIm: Float64Array): void {
    const { n, modes, zr, zi } = this;
    for (let r = 0; r < rows; r += 2) {
      const pair = r + 1 < rows;
      const a = (r0 + r) * n;
      for (let i = 0; i < n; i++) {
        zr[i] = src[a + i];
        zi[i] = pair ? src[a + n + i] : 0;
      }
      this.fft.forward(zr, zi);
      const oa = r * modes;
      const ob = oa + modes;
      for (let m = 0; m < modes; m++) {
        const mm = (n - m) % n;
        outRe[oa + m] = 0.5 * (zr[m] + zr[mm]);
        outIm[oa + m] = 0.5 * (zi[m] - zi[mm]);
        if (pair) {
          outRe[ob + m] = 0.5 * (zi[m] + zi[mm]);
          outIm[ob + m] = -0.5 * (zr[m] - zr[mm]);
        }
      }
    }
  }

  /** spectra rows [0, rows) -> real rows [r0, r0 + rows) of dst. */
  inverse(inRe: Float64Array, inIm: Float64Array, rows: number, dst: Float64Array, r0: number): void {
    const { n, modes, zr, zi } = this;
    for (let r = 0; r < rows; r += 2) {
      const pair = r + 1 < rows;
      const oa = r * modes;
      const ob = oa + modes;
      for (let m = 0; m < n; m++) {
        let ar: number, ai: number, br: number, bi: number;
        if (m < modes) {
          ar = inRe[oa + m];
          ai = inIm[oa + m];
          br = pair ? inRe[ob + m] : 0;
          bi = pair ? inIm[ob + m] : 0;
        } else {
          const k = n - m;
          ar = inRe[oa + k];
          ai = -inIm[oa + k];
          br = pair ? inRe[ob + k] : 0;
          bi = pair ? -inIm[ob + k] : 0;
        }
        if (m === 0 || m === n / 2) {
          // the real transform has real coefficients here
          ai = 0;
          bi = 0;
        }
        zr[m] = ar - bi;
        zi[m] = ai + br;
      }
      this.fft.inverse(zr, zi);
      const a = (r0 + r) * n;
      for (let i = 0; i < n; i++) {
        dst[a + i] = zr[i];
        if (pair) dst[a + n + i] = zi[i];
      }
    }
  }
}

// --- N-dimensional transforms of any sizes ---

/** A complex array stored as separate real and imaginary parts, in row-major order. */
export interface ComplexArray {
  re: Float64Array;
  im: Float64Array;
}

/** One reusable forward 1D transform of a fixed length. */
interface LineTransform {
  /** Transforms `n` complex values read from/written back to (re, im) at offset + i * stride, in place. */
  run(re: Float64Array, im: Float64Array, offset: number, stride: number): void;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Power-of-two lengths: in place on contiguous lines, else through a scratch line (filled in bit-reversed order). */
function radixTransform(n: number): LineTransform {
  if (n === 1) return { run() {} };
  const fft = new FFT(n);
  const rev = fft.rev;
  const lineRe = new Float64Array(n);
  const lineIm = new Float64Array(n);
  return {
    run(re, im, offset, stride) {
      if (stride === 1) return fft.forward(re, im, offset);
      for (let i = 0, p = offset; i < n; i++, p += stride) {
        const q = rev[i]!;
        lineRe[q] = re[p]!;
        lineIm[q] = im[p]!;
      }
      fft.forwardPermuted(lineRe, lineIm);
      for (let i = 0, p = offset; i < n; i++, p += stride) {
        re[p] = lineRe[i]!;
        im[p] = lineIm[i]!;
      }
    },
  };
}

/**
 * Bluestein: X[k] = conj(w[k]) * sum_j (x[j] conj(w[j])) w[k - j], with w[j] = exp(i pi j^2 / n). The sum is a
 * circular convolution of length m >= 2n - 1 (a power of two), done as three power-of-two transforms.
 */
function bluesteinTransform(n: number): LineTransform {
  const m = nextPowerOfTwo(2 * n - 1);
  const fft = new FFT(m);
  // Chirp, with j^2 reduced mod 2n so the angle stays small and accurate for large n.
  const chirpRe = new Float64Array(n);
  const chirpIm = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const angle = (Math.PI * ((j * j) % (2 * n))) / n;
    chirpRe[j] = Math.cos(angle);
    chirpIm[j] = Math.sin(angle);
  }
  // Spectrum of the convolution kernel b[j] = w[j] for |j| < n (wrapped), zero elsewhere.
  const kernelRe = new Float64Array(m);
  const kernelIm = new Float64Array(m);
  kernelRe[0] = chirpRe[0]!;
  kernelIm[0] = chirpIm[0]!;
  for (let j = 1; j < n; j++) {
    kernelRe[j] = kernelRe[m - j] = chirpRe[j]!;
    kernelIm[j] = kernelIm[m - j] = chirpIm[j]!;
  }
  fft.forward(kernelRe, kernelIm);
  // The inverse transform of the product is done as conj(F(conj(.))) / m: the 1/m goes into the kernel.
  for (let k = 0; k < m; k++) {
    kernelRe[k] /= m;
    kernelIm[k] /= m;
  }
  // Both transforms take their input in bit-reversed order, written there by the loops that compute it.
  const rev = fft.rev;
  const aRe = new Float64Array(m);
  const aIm = new Float64Array(m);
  const bRe = new Float64Array(m);
  const bIm = new Float64Array(m);
  return {
    run(re, im, offset, stride) {
      aRe.fill(0);
      aIm.fill(0);
      for (let j = 0, p = offset; j < n; j++, p += stride) {
        // x[j] * conj(w[j])
        const xr = re[p]!;
        const xi = im[p]!;
        const q = rev[j]!;
        aRe[q] = xr * chirpRe[j]! + xi * chirpIm[j]!;
        aIm[q] = xi * chirpRe[j]! - xr * chirpIm[j]!;
      }
      fft.forwardPermuted(aRe, aIm);
      for (let k = 0; k < m; k++) {
        // conj(spectrum * kernel spectrum / m)
        const sr = aRe[k]!;
        const si = aIm[k]!;
        const kr = kernelRe[k]!;
        const ki = kernelIm[k]!;
        const q = rev[k]!;
        bRe[q] = sr * kr - si * ki;
        bIm[q] = -(sr * ki + si * kr);
      }
      fft.forwardPermuted(bRe, bIm);
      for (let k = 0, p = offset; k < n; k++, p += stride) {
        // conj(w[k]) * conv[k], conv = conj(b)
        const cr = bRe[k]!;
        const ci = -bIm[k]!;
        re[p] = cr * chirpRe[k]! + ci * chirpIm[k]!;
        im[p] = ci * chirpRe[k]! - cr * chirpIm[k]!;
      }
    },
  };
}

const lineTransforms = new Map<number, LineTransform>();

function lineTransform(n: number): LineTransform {
  let t = lineTransforms.get(n);
  if (!t) {
    t = isPowerOfTwo(n) ? radixTransform(n) : bluesteinTransform(n);
    lineTransforms.set(n, t);
  }
  return t;
}

/**
 * Forward N-d DFT of a real, row-major array of shape `shape`, over every axis. Returns a new complex array of
 * the same shape. Cost O(N log N) per axis; holds two Float64Arrays of N values.
 */
export function fftnReal(values: ArrayLike<number>, shape: readonly number[]): ComplexArray {
  const size = shape.reduce((a, b) => a * b, 1);
  if (values.length !== size) {
    throw new RangeError(`fftnReal: ${values.length} values for shape [${shape.join(', ')}] (expected ${size})`);
  }
  const re = Float64Array.from(values);
  const im = new Float64Array(size);
  fftnInPlace(re, im, shape);
  return { re, im };
}

/** Forward N-d DFT in place over every axis of a row-major complex array. */
export function fftnInPlace(re: Float64Array, im: Float64Array, shape: readonly number[]): void {
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const n = shape[axis]!;
    const t = lineTransform(n);
    const block = stride * n;
    for (let outer = 0; outer < re.length; outer += block) {
      for (let inner = 0; inner < stride; inner++) t.run(re, im, outer + inner, stride);
    }
    stride = block;
  }
}

const mirrors = new Map<string, Int32Array>();

/** Flat index of -k (each coordinate (n_i - k_i) mod n_i) for every flat index k of a row-major grid. */
function mirrorIndex(shape: readonly number[]): Int32Array {
  const key = shape.join('x');
  let mirror = mirrors.get(key);
  if (mirror) return mirror;
  const size = shape.reduce((a, b) => a * b, 1);
  mirror = new Int32Array(size);
  for (let k = 0; k < size; k++) {
    let rest = k;
    let flat = 0;
    let stride = 1;
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      const n = shape[axis]!;
      const c = rest % n;
      rest = (rest - c) / n;
      flat += ((n - c) % n) * stride;
      stride *= n;
    }
    mirror[k] = flat;
  }
  mirrors.set(key, mirror);
  return mirror;
}

/**
 * Forward N-d DFTs of two real arrays for the price of one complex transform: Z = F(a + i b), then
 * F(a)[k] = (Z[k] + conj Z[-k]) / 2 and F(b)[k] = (Z[k] - conj Z[-k]) / 2i.
 */
export function fftnRealPair(a: ArrayLike<number>, b: ArrayLike<number>, shape: readonly number[]): [ComplexArray, ComplexArray] {
  const size = shape.reduce((x, y) => x * y, 1);
  if (a.length !== size || b.length !== size) {
    throw new RangeError(`fftnRealPair: ${a.length} and ${b.length} values for shape [${shape.join(', ')}] (expected ${size})`);
  }
  const re = Float64Array.from(a);
  const im = Float64Array.from(b);
  fftnInPlace(re, im, shape);
  const mirror = mirrorIndex(shape);
  const fa = { re: new Float64Array(size), im: new Float64Array(size) };
  const fb = { re: new Float64Array(size), im: new Float64Array(size) };
  for (let k = 0; k < size; k++) {
    const j = mirror[k]!;
    const zr = re[k]!;
    const zi = im[k]!;
    const mr = re[j]!;
    const mi = im[j]!;
    fa.re[k] = (zr + mr) / 2;
    fa.im[k] = (zi - mi) / 2;
    fb.re[k] = (zi + mi) / 2;
    fb.im[k] = (mr - zr) / 2;
  }
  return [fa, fb];
}
