/**
 * N-dimensional discrete Fourier transforms of real frames, built on fft.js (radix-4, power-of-two sizes).
 * Axes whose length is not a power of two go through Bluestein's chirp-z identity, which turns a length-n DFT
 * into a circular convolution computed with power-of-two fft.js transforms; the result is the exact DFT up to
 * rounding (checked against the reference values of the metric fixtures, which include a 32 x 24 grid).
 *
 * Convention: unnormalised forward transform, X[k] = sum_n x[n] exp(-2 pi i k n / N) (numpy/torch "backward").
 */
import FFT from 'fft.js';

/** A complex array stored as separate real and imaginary parts, in row-major order. */
export interface ComplexArray {
  re: Float64Array;
  im: Float64Array;
}

/** One reusable 1D transform of a fixed length. */
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

/** fft.js needs size >= 2; it works on interleaved (re, im) arrays. */
function radixTransform(n: number): LineTransform {
  if (n === 1) return { run() {} };
  const fft = new FFT(n);
  const input = new Float64Array(2 * n);
  const output = new Float64Array(2 * n);
  return {
    run(re, im, offset, stride) {
      for (let i = 0, p = offset; i < n; i++, p += stride) {
        input[2 * i] = re[p]!;
        input[2 * i + 1] = im[p]!;
      }
      fft.transform(output, input);
      for (let i = 0, p = offset; i < n; i++, p += stride) {
        re[p] = output[2 * i]!;
        im[p] = output[2 * i + 1]!;
      }
    },
  };
}

/**
 * Bluestein: X[k] = conj(w[k]) * sum_j (x[j] conj(w[j])) w[k - j], with w[j] = exp(i pi j^2 / n). The sum is a
 * circular convolution of length m >= 2n - 1 (a power of two), done as three fft.js transforms.
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
  const kernel = new Float64Array(2 * m);
  kernel[0] = chirpRe[0]!;
  kernel[1] = chirpIm[0]!;
  for (let j = 1; j < n; j++) {
    kernel[2 * j] = kernel[2 * (m - j)] = chirpRe[j]!;
    kernel[2 * j + 1] = kernel[2 * (m - j) + 1] = chirpIm[j]!;
  }
  const kernelSpectrum = new Float64Array(2 * m);
  fft.transform(kernelSpectrum, kernel);
  const a = new Float64Array(2 * m);
  const spectrum = new Float64Array(2 * m);
  const conv = new Float64Array(2 * m);
  return {
    run(re, im, offset, stride) {
      a.fill(0);
      for (let j = 0, p = offset; j < n; j++, p += stride) {
        // x[j] * conj(w[j])
        const xr = re[p]!;
        const xi = im[p]!;
        a[2 * j] = xr * chirpRe[j]! + xi * chirpIm[j]!;
        a[2 * j + 1] = xi * chirpRe[j]! - xr * chirpIm[j]!;
      }
      fft.transform(spectrum, a);
      for (let k = 0; k < m; k++) {
        const sr = spectrum[2 * k]!;
        const si = spectrum[2 * k + 1]!;
        const kr = kernelSpectrum[2 * k]!;
        const ki = kernelSpectrum[2 * k + 1]!;
        spectrum[2 * k] = sr * kr - si * ki;
        spectrum[2 * k + 1] = sr * ki + si * kr;
      }
      fft.inverseTransform(conv, spectrum); // fft.js divides by m
      for (let k = 0, p = offset; k < n; k++, p += stride) {
        // conj(w[k]) * conv[k]
        const cr = conv[2 * k]!;
        const ci = conv[2 * k + 1]!;
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
