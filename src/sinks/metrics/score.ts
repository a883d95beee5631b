/**
 * Scoring one rollout chunk: every frame (lead time x channel) through `scoreFrame`, packed into flat typed
 * arrays so the result is small and can cross a thread boundary without copies. Pure and synchronous: the
 * reducer calls it in place, or a pool of worker threads calls it (see score-worker.ts) when scoring is the
 * bottleneck.
 */
import { METRICS, scoreFrame, type FrameMetricsOptions } from './frame.js';
import type { RolloutChunk } from './types.js';
import { isotropicBinning } from './spectra.js';

/** A validated chunk with its defaults filled in (see MetricsReducer.prepare). */
export interface PreparedChunk extends RolloutChunk {
  model: string;
  trajectory: string;
}

/** Options of scoreChunk: plain data, so they can be sent to a worker. */
export interface ScoreOptions extends FrameMetricsOptions {
  /** Lead times whose 2D planes are returned for snapshots. */
  snapshotLeads: number[];
}

/** A 2D plane of one frame, kept for the report's snapshots. */
export interface SnapshotPlane {
  field: string;
  lead: number;
  shape: [number, number];
  truth: Float32Array;
  mean: Float32Array;
  member: Float32Array;
}

/** Scores of every frame of one chunk. Frame f = step * C + channel. */
export interface ChunkScores {
  model: string;
  trajectory: string;
  fields: readonly string[];
  spatialShape: readonly number[];
  lead: number;
  steps: number;
  /** Spectrum bins B per frame. */
  bins: number;
  /** steps x C x METRICS.length */
  values: Float64Array;
  /** steps x C x B */
  truthPower: Float64Array;
  /** steps x C x B */
  predictionPower: Float64Array;
  /** Planes at snapshot leads (whether they are kept is the reducer's choice). */
  planes: SnapshotPlane[];
}

/** Scores every frame of a prepared chunk. Holds one frame's scratch (M + 1 fields of N doubles). */
export function scoreChunk(chunk: PreparedChunk, options: ScoreOptions): ChunkScores {
  const { fields, spatialShape, truth, ensemble } = chunk;
  const c = fields.length;
  const n = spatialShape.reduce((a, b) => a * b, 1);
  const steps = truth.length / (n * c);
  const bins = isotropicBinning(spatialShape).frequencies.length;
  const nm = METRICS.length;
  const values = new Float64Array(steps * c * nm);
  const truthPower = new Float64Array(steps * c * bins);
  const predictionPower = new Float64Array(steps * c * bins);
  const planes: SnapshotPlane[] = [];
  const snapshotLeads = new Set(options.snapshotLeads);
  const u = new Float64Array(n);
  const members = ensemble.map(() => new Float64Array(n));
  for (let step = 0; step < steps; step++) {
    const lead = chunk.lead + step;
    for (let ch = 0; ch < c; ch++) {
      const base = step * n * c + ch;
      for (let p = 0; p < n; p++) u[p] = truth[base + p * c]!;
      for (let i = 0; i < ensemble.length; i++) {
        const v = ensemble[i]!;
        const out = members[i]!;
        for (let p = 0; p < n; p++) out[p] = v[base + p * c]!;
      }
      const scores = scoreFrame(u, members, spatialShape, options);
      const frame = step * c + ch;
      values.set(scores.values, frame * nm);
      truthPower.set(scores.truthPower, frame * bins);
      predictionPower.set(scores.predictionPower, frame * bins);
      if (snapshotLeads.has(lead)) planes.push(plane(fields[ch]!, lead, spatialShape, u, members));
    }
  }
  return {
    model: chunk.model,
    trajectory: chunk.trajectory,
    fields: [...fields],
    spatialShape: [...spatialShape],
    lead: chunk.lead,
    steps,
    bins,
    values,
    truthPower,
    predictionPower,
    planes,
  };
}

/** The 2D plane of a frame: 2D grids as they are, 3D+ the middle slice of the trailing axes, 1D a single row. */
function plane(field: string, lead: number, shape: readonly number[], u: Float64Array, members: Float64Array[]): SnapshotPlane {
  const h = shape.length === 1 ? 1 : shape[0]!;
  const w = shape.length === 1 ? shape[0]! : shape[1]!;
  const trailing = shape.slice(2);
  const stride = trailing.reduce((a, b) => a * b, 1);
  let offset = 0;
  for (const size of trailing) offset = offset * size + Math.floor(size / 2);
  const take = (value: (p: number) => number): Float32Array => {
    const out = new Float32Array(h * w);
    for (let i = 0; i < h * w; i++) out[i] = value(i * stride + offset);
    return out;
  };
  return {
    field,
    lead,
    shape: [h, w],
    truth: take((p) => u[p]!),
    mean: take((p) => members.reduce((s, v) => s + v[p]!, 0) / members.length),
    member: take((p) => members[0]![p]!),
  };
}
