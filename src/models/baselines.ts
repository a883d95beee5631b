/**
 * Reference predictors scored beside every emulator, so that each figure has a yardstick. They need no trained
 * model: they act in physical space on the simulated truth (channels last, frames (H, W, C) or any spatial shape).
 *
 * - **persistence**: the last context state, repeated at every lead: prediction(k) = u(c - 1) for the truth u and
 *   c context states. An emulator that does not beat it has learned nothing about the dynamics.
 * - **spatial-mean**: at every lead, each channel's spatial mean of the truth frame being predicted:
 *   prediction(k)(p) = mean_q u(c - 1 + k)(q) at every grid point p. It is an oracle of the frame's own mean (so not
 *   a forecast): its MSE is the frame's population variance, hence, with VRMSE = sqrt(MSE / (var + eps)) and the
 *   unbiased var of N points, VRMSE = sqrt((N - 1) / N * var / (var + eps)), 1 up to 1/(2N) and eps: the "VRMSE 1
 *   by construction" the reference study compares with. An emulator above it at a lead band predicts the spatial
 *   structure worse than a flat field at the true mean level.
 *
 * Both are deterministic (one member), so their spread/skill is undefined (NaN in the metric sinks).
 */

/** The baseline models' names, as they appear in results. */
export const BASELINES = ['persistence', 'spatial-mean'] as const;
export type BaselineName = (typeof BASELINES)[number];

/** Checks a list of baseline names (from a configuration), naming `where` and the known names on a bad one. */
export function checkBaselines(names: readonly string[], where = 'baselines'): BaselineName[] {
  const known = BASELINES as readonly string[];
  for (const n of names) {
    if (!known.includes(n)) throw new Error(`${where}: unknown baseline "${n}" (known: ${BASELINES.join(', ')})`);
  }
  return [...new Set(names)] as BaselineName[];
}

/** The spatial-mean field of one frame: every point of channel c holds the mean of channel c over the grid. */
export function spatialMeanField(frame: Float32Array, channels: number): Float32Array {
  if (!Number.isInteger(channels) || channels < 1 || frame.length % channels !== 0) {
    throw new Error(`spatialMeanField: ${frame.length} values are not a whole number of points of ${channels} channels`);
  }
  const points = frame.length / channels;
  const sums = new Float64Array(channels);
  for (let p = 0; p < points; p++) for (let c = 0; c < channels; c++) sums[c]! += frame[p * channels + c]!;
  const out = new Float32Array(frame.length);
  for (let p = 0; p < points; p++) for (let c = 0; c < channels; c++) out[p * channels + c] = sums[c]! / points;
  return out;
}

/**
 * The prediction of baseline `name` for one lead: `lastContext` is the truth's last context state, `truth` the
 * frame at that lead, both (..., C) channels last. Persistence returns `lastContext` itself (not copied).
 */
export function baselinePrediction(name: BaselineName, lastContext: Float32Array, truth: Float32Array, channels: number): Float32Array {
  if (lastContext.length !== truth.length) throw new Error(`baseline ${name}: context frame of ${lastContext.length} values, truth frame of ${truth.length}`);
  return name === 'persistence' ? lastContext : spatialMeanField(truth, channels);
}
