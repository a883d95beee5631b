/**
 * Scores of one frame: one field (channel) at one lead time of one trajectory, truth u against an ensemble of M
 * members v_1..v_M (vbar their mean). Every metric is a scalar per frame; the streaming reducer averages them
 * over trajectories, as both The Well (mean over the batch) and the reference evaluation (mean over the rows of
 * its stats table) do. Definitions follow test/fixtures/metrics/README.md and the reference evaluation code:
 *
 * - mse, rmse, linf, pearson_r, spectral_mse_b / spectral_nmse_b (b = 0, 1, 2): The Well's definitions, applied
 *   to the ensemble mean (for M = 1, the prediction itself).
 * - nrmse, vrmse: sqrt(mse / (mean(u^2) + eps)), sqrt(mse / (var(u) + eps)) with unbiased var; eps = 1e-7 under
 *   the `the_well` convention and 1e-6 under the `lola` convention (the reference emulation code).
 * - spread = sqrt((M+1)/(M-1) mean_{m,grid} (v_m - vbar)^2) (0 when M = 1); skill = rmse;
 *   spread_skill = (spread + e) / (skill + e), e = 1e-3 as in the reference figures; NaN (undefined) when M = 1:
 *   a deterministic model has no ensemble to calibrate, and (0 + e) / (skill + e) would read as over-confidence.
 * - crps: fair ensemble CRPS per grid point (sorting formula), averaged over the grid; mean absolute error when M = 1.
 * - psd_error_<band>, coherence_error_<band>: the reference code's spectral errors, sqrt of the mean over the
 *   isotropic bins of a band of (1 - (P_v + 1e-6)/(P_u + 1e-6))^2 and (1 - (C_uv + 1e-6)/sqrt(P_u P_v + 1e-12))^2,
 *   with P_v and C_uv averaged over members; bands low/mid/high are log-spaced up to 0.5 cycles per sample,
 *   corner is k >= 0.5.
 * - Tiny grids (e.g. 2 x 2, 1 x N): a spectral bin or band that holds no frequency gives NaN, never 0 (The Well
 *   would give 0 for an empty bin of binned_spectral_mse); a grid with a single-cell axis has no isotropic bin
 *   at all (see isotropicBinning), hence empty spectra and NaN band errors. NaN values are left out of the
 *   averages (the reducer counts finite values only).
 * - conservation: 1 - sum(vbar) / sum(u).
 * - w1: exact Wasserstein-1 distance between the empirical distribution of the N truth values and that of the
 *   M x N pooled member values (as the reference's `wasserstein_1d(u.flatten(), v.flatten())`).
 */
import { fftnReal, fftnRealPair, type ComplexArray } from '../../physics/fft.js';
import { addIsotropicCross, addIsotropicPower, isotropicBinning, SPECTRAL_BANDS, wellBinning } from './spectra.js';

export const METRICS = [
  'mse',
  'rmse',
  'nrmse',
  'vrmse',
  'linf',
  'pearson_r',
  'spread',
  'skill',
  'spread_skill',
  'crps',
  'spectral_mse_0',
  'spectral_mse_1',
  'spectral_mse_2',
  'spectral_nmse_0',
  'spectral_nmse_1',
  'spectral_nmse_2',
  ...SPECTRAL_BANDS.map((b) => `psd_error_${b}` as const),
  ...SPECTRAL_BANDS.map((b) => `coherence_error_${b}` as const),
  'conservation',
  'w1',
] as const;

export type MetricName = (typeof METRICS)[number];

/** Which epsilon NRMSE and VRMSE use: The Well's 1e-7 or the reference emulation code's 1e-6. */
export type Convention = 'the_well' | 'lola';

export interface FrameMetricsOptions {
  convention?: Convention;
  /** Offset e in (spread + e) / (skill + e); default 1e-3 (reference figures). */
  spreadSkillOffset?: number;
  /** Skip the Wasserstein-1 distance (its sort is the most expensive part for large ensembles). */
  skipW1?: boolean;
}

export interface FrameScores {
  /** One value per entry of METRICS (NaN where undefined, e.g. an empty spectral band). */
  values: Float64Array;
  /** Isotropic power spectrum of the truth (reference convention, DC dropped), length B. */
  truthPower: Float64Array;
  /** Member-averaged isotropic power spectrum of the ensemble, length B. */
  predictionPower: Float64Array;
}

const index = Object.fromEntries(METRICS.map((m, i) => [m, i])) as Record<MetricName, number>;

/**
 * Scores one frame. `truth` and each member hold the N values of one field on the grid `shape`, row-major.
 * Holds O(M N) scratch (member spectra are processed one at a time; the pooled sort needs M N values).
 */
export function scoreFrame(
  truth: Float64Array,
  members: readonly Float64Array[],
  shape: readonly number[],
  options: FrameMetricsOptions = {},
): FrameScores {
  const n = truth.length;
  const m = members.length;
  if (m < 1) throw new RangeError('scoreFrame: the ensemble needs at least one member');
  const eps = options.convention === 'lola' ? 1e-6 : 1e-7;
  const ssOffset = options.spreadSkillOffset ?? 1e-3;
  const values = new Float64Array(METRICS.length);

  // Ensemble mean.
  const mean = new Float64Array(n);
  for (const v of members) for (let p = 0; p < n; p++) mean[p]! += v[p]!;
  for (let p = 0; p < n; p++) mean[p]! /= m;

  // Pointwise statistics (two-pass means for variances, as torch does).
  let sumU = 0;
  let sumX = 0;
  let sumSq = 0;
  let sumU2 = 0;
  let linf = 0;
  for (let p = 0; p < n; p++) {
    const d = mean[p]! - truth[p]!;
    sumSq += d * d;
    sumU += truth[p]!;
    sumX += mean[p]!;
    sumU2 += truth[p]! * truth[p]!;
    if (Math.abs(d) > linf) linf = Math.abs(d);
  }
  const meanU = sumU / n;
  const meanX = sumX / n;
  let cov = 0;
  let varU = 0;
  let varX = 0;
  for (let p = 0; p < n; p++) {
    const du = truth[p]! - meanU;
    const dx = mean[p]! - meanX;
    cov += du * dx;
    varU += du * du;
    varX += dx * dx;
  }
  cov /= n;
  varU /= n - 1;
  varX /= n - 1;
  const mse = sumSq / n;
  values[index.mse] = mse;
  values[index.rmse] = Math.sqrt(mse);
  values[index.nrmse] = Math.sqrt(mse / (sumU2 / n + eps));
  values[index.vrmse] = Math.sqrt(mse / (varU + eps));
  values[index.linf] = linf;
  values[index.pearson_r] = cov / (Math.sqrt(varX) * Math.sqrt(varU) + 1e-7);

  // Spread and skill.
  let spread = 0;
  if (m > 1) {
    let dev = 0;
    for (const v of members) {
      for (let p = 0; p < n; p++) {
        const d = v[p]! - mean[p]!;
        dev += d * d;
      }
    }
    spread = Math.sqrt(((m + 1) / (m - 1)) * (dev / (m * n)));
  }
  values[index.spread] = spread;
  values[index.skill] = Math.sqrt(mse);
  values[index.spread_skill] = m > 1 ? (spread + ssOffset) / (Math.sqrt(mse) + ssOffset) : NaN;

  values[index.crps] = fairCrps(truth, members);
  values[index.conservation] = 1 - sumX / sumU;
  values[index.w1] = options.skipW1 ? NaN : pooledW1(truth, members);

  // Spectra: real fields are transformed two at a time (one complex FFT per pair: the truth with the first
  // member, then members in pairs); the mean's spectrum is the mean of the members' (linearity).
  const well = wellBinning(shape);
  const iso = isotropicBinning(shape);
  const meanRe = new Float64Array(n);
  const meanIm = new Float64Array(n);
  const bins = iso.frequencies.length;
  const truthPower = new Float64Array(bins);
  const predictionPower = new Float64Array(bins);
  const cross = new Float64Array(bins);
  const addMember = (fv: ComplexArray): void => {
    for (let p = 0; p < n; p++) {
      meanRe[p]! += fv.re[p]! / m;
      meanIm[p]! += fv.im[p]! / m;
    }
    addIsotropicPower(fv.re, fv.im, iso, predictionPower, 1 / m);
    addIsotropicCross(fu.re, fu.im, fv.re, fv.im, iso, cross, 1 / m);
  };
  const [fu, f0] = fftnRealPair(truth, members[0]!, shape);
  addIsotropicPower(fu.re, fu.im, iso, truthPower);
  addMember(f0);
  for (let i = 1; i < m; i += 2) {
    if (i + 1 < m) {
      const [fa, fb] = fftnRealPair(members[i]!, members[i + 1]!, shape);
      addMember(fa);
      addMember(fb);
    } else {
      addMember(fftnReal(members[i]!, shape));
    }
  }

  // The Well's binned spectral mse/nmse on (mean - truth) and truth.
  const errPower = [0, 0, 0];
  const truthBinPower = [0, 0, 0];
  for (let p = 0; p < n; p++) {
    const b = well.bin[p]!;
    if (b < 0) continue;
    const dr = meanRe[p]! - fu.re[p]!;
    const di = meanIm[p]! - fu.im[p]!;
    errPower[b]! += dr * dr + di * di;
    truthBinPower[b]! += fu.re[p]! * fu.re[p]! + fu.im[p]! * fu.im[p]!;
  }
  for (let b = 0; b < 3; b++) {
    if (well.counts[b] === 0) {
      // No wavenumber in this bin (tiny grids): undefined, not a perfect score.
      values[index.spectral_mse_0 + b] = NaN;
      values[index.spectral_nmse_0 + b] = NaN;
      continue;
    }
    const binMse = ((errPower[b]! / well.countDivisors[b]!) * well.counts[b]!) / (n * n);
    const binTruth = ((truthBinPower[b]! / well.countDivisors[b]!) * well.counts[b]!) / (n * n);
    values[index.spectral_mse_0 + b] = binMse;
    values[index.spectral_nmse_0 + b] = binMse / (binTruth + 1e-7);
  }

  // The reference code's relative power and coherence errors per band.
  iso.bands.forEach((band, b) => {
    let sp = 0;
    let sc = 0;
    for (const i of band) {
      const pu = truthPower[i]!;
      const pv = predictionPower[i]!;
      sp += (1 - (pv + 1e-6) / (pu + 1e-6)) ** 2;
      sc += (1 - (cross[i]! + 1e-6) / Math.sqrt(pu * pv + 1e-12)) ** 2;
    }
    values[index.psd_error_low + b] = band.length ? Math.sqrt(sp / band.length) : NaN;
    values[index.coherence_error_low + b] = band.length ? Math.sqrt(sc / band.length) : NaN;
  });

  return { values, truthPower, predictionPower };
}

/**
 * Fair CRPS averaged over the grid: per point (1/M) sum_i |v_i - u| - (1/(M(M-1))) sum_i (2 r_i - M - 1) v_(i),
 * the second sum being half of sum_{i != j} |v_i - v_j| written with the sorted members (r_i 1-based ranks).
 */
export function fairCrps(truth: Float64Array, members: readonly Float64Array[]): number {
  const n = truth.length;
  const m = members.length;
  const sorted = new Float64Array(m);
  let total = 0;
  for (let p = 0; p < n; p++) {
    let abs = 0;
    for (let i = 0; i < m; i++) {
      const v = members[i]![p]!;
      abs += Math.abs(v - truth[p]!);
      // Insertion sort: M is small (tens).
      let j = i;
      while (j > 0 && sorted[j - 1]! > v) {
        sorted[j] = sorted[j - 1]!;
        j--;
      }
      sorted[j] = v;
    }
    let pairs = 0;
    if (m > 1) {
      for (let i = 0; i < m; i++) pairs += (2 * (i + 1) - m - 1) * sorted[i]!;
      pairs /= m * (m - 1);
    }
    total += abs / m - pairs;
  }
  return total / n;
}

/**
 * Exact W1 between the truth values and all member values pooled (uniform weights on each side). The sort of
 * the M x N pooled values dominates the cost (an LSD radix sort was tried and was no faster than V8's sort here).
 */
export function pooledW1(truth: Float64Array, members: readonly Float64Array[]): number {
  const a = Float64Array.from(truth).sort();
  const n = truth.length;
  const b = new Float64Array(n * members.length);
  members.forEach((v, i) => b.set(v, i * n));
  return wasserstein1Sorted(a, b.sort());
}

/**
 * W1 between two sorted samples = integral over q in [0, 1] of |Qa(q) - Qb(q)| (quantile functions). Positions
 * are counted in units of 1/(na nb) so the breakpoints are exact integers.
 */
export function wasserstein1Sorted(a: Float64Array, b: Float64Array): number {
  const na = a.length;
  const nb = b.length;
  if (na === 0 || nb === 0) return NaN;
  let i = 0;
  let j = 0;
  let position = 0;
  let total = 0;
  while (i < na && j < nb) {
    const nextA = (i + 1) * nb;
    const nextB = (j + 1) * na;
    const next = Math.min(nextA, nextB);
    total += (next - position) * Math.abs(a[i]! - b[j]!);
    position = next;
    if (nextA === next) i++;
    if (nextB === next) j++;
  }
  return total / (na * nb);
}
