/**
 * Isotropic frequency binnings of The Well and of the reference emulation code (lola), reproduced to the bit
 * where the reference computes in float32: wavenumbers, magnitudes and bin edges are rounded with
 * `Math.fround` at every step the reference rounds, so that a wavenumber sitting on a bin edge falls on the
 * same side as in the reference. Power sums themselves are float64.
 */

import { fftnReal } from '../../physics/fft.js';

const f32 = Math.fround;

/** `torch.fft.fftfreq(n)` in float32: i * float32(1/n), with negative frequencies in the second half. */
export function fftfreqF32(n: number): Float32Array {
  const scale = f32(1 / n);
  const out = new Float32Array(n);
  const positive = Math.floor((n + 1) / 2);
  for (let i = 0; i < n; i++) out[i] = f32((i < positive ? i : i - n) * scale);
  return out;
}

/** Isotropic |k| over a row-major grid, accumulated in float32 axis by axis, `scale` applied per axis first. */
function isotropicMagnitude(shape: readonly number[], scale: number | null): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const acc = new Float32Array(size);
  let stride = size;
  for (let axis = 0; axis < shape.length; axis++) {
    const n = shape[axis]!;
    stride /= n;
    const freq = fftfreqF32(n);
    const sq = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const k = scale === null ? freq[i]! : f32(f32(scale) * freq[i]!);
      sq[i] = f32(k * k);
    }
    for (let p = 0; p < size; p++) acc[p] = f32(acc[p]! + sq[Math.floor(p / stride) % n]!);
  }
  for (let p = 0; p < size; p++) acc[p] = f32(Math.sqrt(acc[p]!));
  return acc;
}

/** `torch.logspace(start, end, steps, base)` in float32 (start/end rounded, two halves as in torch's kernel). */
function logspaceF32(start: number, end: number, steps: number, base: number): number[] {
  const s = f32(start);
  const e = f32(end);
  const step = f32(e - s) / (steps - 1);
  const halfway = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(f32(i < halfway ? Math.pow(base, s + step * i) : Math.pow(base, e - step * (steps - i - 1))));
  }
  return out;
}

/** `torch.linspace(start, end, steps)` in float32 (step in float32, two halves as in torch's kernel). */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1))));
  }
  return out;
}

/**
 * The Well's default binning for `binned_spectral_mse`: angular wavenumbers 2 pi fftfreq(n), three bins with
 * edges logspace(log10(2 pi / max n), log10(pi sqrt(d) + 1e-6), 4), first edge 0; k in bin i when
 * edge[i] <= k < edge[i+1]; wavenumbers at or above the last edge belong to no bin. On tiny grids a bin can hold
 * no wavenumber (2 x 2: bin 1); scoreFrame reports NaN for such a bin where The Well would report 0.
 */
export interface WellBinning {
  /** Bin of each flat frequency index: 0, 1, 2, or -1 (outside). */
  bin: Int8Array;
  /** Number of frequencies in each bin. */
  counts: [number, number, number];
  /** float32(count + 1e-7), the divisor the reference uses before multiplying the count back. */
  countDivisors: [number, number, number];
  edges: number[];
}

const wellCache = new Map<string, WellBinning>();

export function wellBinning(shape: readonly number[]): WellBinning {
  const key = shape.join('x');
  const cached = wellCache.get(key);
  if (cached) return cached;
  const k = isotropicMagnitude(shape, 2 * Math.PI);
  const edges = logspaceF32(
    Math.log10((2 * Math.PI) / Math.max(...shape)),
    Math.log10(Math.PI * Math.sqrt(shape.length) + 1e-6),
    4,
    10,
  );
  edges[0] = 0;
  const bin = new Int8Array(k.length).fill(-1);
  const counts: [number, number, number] = [0, 0, 0];
  for (let p = 0; p < k.length; p++) {
    const kp = k[p]!;
    for (let b = 0; b < 3; b++) {
      if (edges[b]! <= kp && kp < edges[b + 1]!) {
        bin[p] = b;
        counts[b]++;
        break;
      }
    }
  }
  const countDivisors = counts.map((c) => f32(c + 1e-7)) as [number, number, number];
  const result = { bin, counts, countDivisors, edges };
  wellCache.set(key, result);
  return result;
}

/**
 * The reference emulation code's isotropic binning: frequencies in cycles per sample, B = floor(sqrt(d) min(n) / 2)
 * bins with edges linspace(0, max |k|, B + 1); k goes to bin i when edge[i-1] < k <= edge[i]; bin 0 holds only
 * k = 0 and is dropped. `frequencies` are the upper edges edges[1..B].
 *
 * Tiny grids: B = 0 when an axis has a single cell (1 x N, N x 1: min(n) = 1). The binning is then empty but
 * well-defined: edges [0], every frequency in the dropped bin 0, no `frequencies` and every band empty, so
 * spectra have length 0 and the band errors (psd_error_*, coherence_error_*) are NaN (undefined) rather than
 * garbage. A 2 x 2 grid has one bin (k = max |k| = 0.707), in the corner band only.
 */
export interface IsotropicBinning {
  /** Bin of each flat frequency index, 0..B (0 is the dropped DC bin). */
  bin: Int32Array;
  /** Counts per bin, length B + 1 (index 0 = DC). */
  counts: Int32Array;
  edges: number[];
  /** Upper bin edges of the kept bins, length B. */
  frequencies: number[];
  /** Spectral error bands: for each band, the kept-bin indices (0-based into `frequencies`) it averages. */
  bands: number[][];
  /** Band names, parallel to `bands`: low, mid, high (log-spaced up to 0.5) and corner (k >= 0.5). */
  bandNames: string[];
}

export const SPECTRAL_BANDS = ['low', 'mid', 'high', 'corner'] as const;

const isoCache = new Map<string, IsotropicBinning>();

export function isotropicBinning(shape: readonly number[]): IsotropicBinning {
  const key = shape.join('x');
  const cached = isoCache.get(key);
  if (cached) return cached;
  const k = isotropicMagnitude(shape, null);
  const nBins = Math.floor((Math.sqrt(shape.length) * Math.min(...shape)) / 2);
  if (nBins === 0) {
    // No bin above DC (see above); linspace(0, k_max, 1) and log2 of a missing first frequency would be NaN.
    const empty: IsotropicBinning = {
      bin: new Int32Array(k.length),
      counts: Int32Array.of(k.length),
      edges: [0],
      frequencies: [],
      bands: SPECTRAL_BANDS.map(() => []),
      bandNames: [...SPECTRAL_BANDS],
    };
    isoCache.set(key, empty);
    return empty;
  }
  let kMax = 0;
  for (const v of k) if (v > kMax) kMax = v;
  const edges = linspaceF32(0, kMax, nBins + 1);
  const bin = new Int32Array(k.length);
  const counts = new Int32Array(nBins + 1);
  for (let p = 0; p < k.length; p++) {
    // torch.bucketize(right=False): number of edges strictly below k.
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (edges[mid]! < k[p]!) lo = mid + 1;
      else hi = mid;
    }
    // k == max lands on the last edge (index B); nothing exceeds it.
    bin[p] = Math.min(lo, nBins);
    counts[bin[p]!]!++;
  }
  const frequencies = edges.slice(1);
  // Bands as in the reference evaluation: logspace(log2 k[0], log2 0.5, 4, base 2), closed intervals, plus k >= 0.5.
  const bandEdges = logspaceF32(f32(Math.log2(frequencies[0]!)), -1, 4, 2);
  const bands: number[][] = [[], [], [], []];
  frequencies.forEach((f, i) => {
    for (let b = 0; b < 3; b++) if (bandEdges[b]! <= f && f <= bandEdges[b + 1]!) bands[b]!.push(i);
    if (bandEdges[3]! <= f) bands[3]!.push(i);
  });
  const result = { bin, counts, edges, frequencies, bands, bandNames: [...SPECTRAL_BANDS] };
  isoCache.set(key, result);
  return result;
}

/**
 * Binned isotropic power of an unnormalised spectrum, in the reference emulation code's convention (orthonormal
 * FFT: |X|^2 / N; each bin averaged over max(count, 1) frequencies; DC bin dropped). Adds into `out` (length B)
 * with weight `weight`, so ensemble means can be accumulated without temporaries.
 */
export function addIsotropicPower(
  re: Float64Array,
  im: Float64Array,
  binning: IsotropicBinning,
  out: Float64Array,
  weight = 1,
): void {
  const n = re.length;
  const sums = new Float64Array(binning.counts.length);
  for (let p = 0; p < n; p++) sums[binning.bin[p]!]! += (re[p]! * re[p]! + im[p]! * im[p]!) / n;
  for (let b = 1; b < sums.length; b++) out[b - 1]! += (weight * sums[b]!) / Math.max(binning.counts[b]!, 1);
}

/** Binned isotropic cross-correlation |X conj(Y)| / N, same convention and accumulation as addIsotropicPower. */
export function addIsotropicCross(
  xr: Float64Array,
  xi: Float64Array,
  yr: Float64Array,
  yi: Float64Array,
  binning: IsotropicBinning,
  out: Float64Array,
  weight = 1,
): void {
  const n = xr.length;
  const sums = new Float64Array(binning.counts.length);
  for (let p = 0; p < n; p++) {
    const re = xr[p]! * yr[p]! + xi[p]! * yi[p]!;
    const im = xi[p]! * yr[p]! - xr[p]! * yi[p]!;
    sums[binning.bin[p]!]! += Math.sqrt(re * re + im * im) / n;
  }
  for (let b = 1; b < sums.length; b++) out[b - 1]! += (weight * sums[b]!) / Math.max(binning.counts[b]!, 1);
}

/** Isotropic power spectrum of one real field (reference convention), with the kept bins' upper edges. */
export function isotropicPowerSpectrum(
  values: ArrayLike<number>,
  shape: readonly number[],
): { power: Float64Array; frequencies: number[] } {
  const binning = isotropicBinning(shape);
  const f = fftnReal(values, shape);
  const power = new Float64Array(binning.frequencies.length);
  addIsotropicPower(f.re, f.im, binning, power);
  return { power, frequencies: binning.frequencies };
}

/** Isotropic cross-correlation |X conj(Y)| of two real fields (reference convention). */
export function isotropicCrossCorrelation(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  shape: readonly number[],
): { cross: Float64Array; frequencies: number[] } {
  const binning = isotropicBinning(shape);
  const fx = fftnReal(x, shape);
  const fy = fftnReal(y, shape);
  const cross = new Float64Array(binning.frequencies.length);
  addIsotropicCross(fx.re, fx.im, fy.re, fy.im, binning, cross);
  return { cross, frequencies: binning.frequencies };
}
