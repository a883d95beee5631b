/**
 * Streaming metric reducers. A rollout (or any chunk of one) arrives as a `RolloutChunk`: the truth and M ensemble
 * members over T consecutive lead times, channels-last like The Well. Each frame (model, field, lead, trajectory)
 * is scored by `scoreFrame` and folded into running sums keyed by (model, field, lead); the chunk is then
 * dropped. The state is O(models x fields x lead times x (metrics + spectrum bins)), plus a bounded set of
 * snapshot frames for the report (at most one per model, field and snapshot lead): never the rollouts.
 *
 * Because every metric is a per-frame scalar averaged over trajectories, feeding a rollout whole or in chunks
 * gives the same sums in the same order, hence the same result.
 */
import { from, pipe, siblingModule, type Source } from '../../streams/core.js';
import { workerMap } from '../../streams/workers.js';
import type { ScoreTask } from './score-worker.js';
import { METRICS, type Convention, type FrameMetricsOptions, type MetricName } from './frame.js';
import { scoreChunk, type ChunkScores, type PreparedChunk, type ScoreOptions } from './score.js';
import { isotropicBinning } from './spectra.js';
import type { MetricSummary, RolloutChunk } from './types.js';
import type { ResidualResult } from './residual.js';

export type { MetricSummary, RolloutChunk } from './types.js';

export interface MetricsOptions extends FrameMetricsOptions {
  /** Lead times whose frames are kept for the report (first trajectory seen per model). Default 1, 20, 60, 100. */
  snapshotLeads?: readonly number[];
  /** Keep no snapshot frames at all. */
  noSnapshots?: boolean;
  /** Worker threads scoring chunks in reduceMetrics (default 1: score on the calling thread). */
  threads?: number;
  /** Called after each chunk with the running number of frames scored (for progress displays). */
  onProgress?: (framesScored: number) => void;
  /**
   * Called with every frame's scores as they are folded in (values parallel to METRICS, a view into the chunk's
   * scores: copy it to keep it). For per-trajectory logs (see the report sink's `frameLog`) or statistics the reducer does not
   * keep, such as medians; the reducer itself holds nothing per trajectory.
   */
  onFrame?: (frame: FrameRecord) => void;
}

/** One scored frame, as passed to MetricsOptions.onFrame. */
export interface FrameRecord {
  model: string;
  trajectory: string;
  field: string;
  lead: number;
  values: Float64Array;
}


/** Per-lead-time result of one (model, field). */
export interface LeadRow {
  model: string;
  field: string;
  lead: number;
  /** Frames (trajectories) scored at this lead time. */
  frames: number;
  metrics: Record<MetricName, MetricSummary>;
}

/**
 * Mean isotropic power spectra of truth and prediction at one lead time (reference convention, DC dropped). All
 * three arrays are empty on a grid with no isotropic bin (a single-cell axis, see isotropicBinning).
 */
export interface SpectrumRow {
  model: string;
  field: string;
  lead: number;
  frequencies: number[];
  truth: number[];
  prediction: number[];
}

/** A 2D snapshot of one field at one lead time (3D grids: the middle slice of the last axis). */
export interface FrameSnapshot {
  model: string;
  field: string;
  lead: number;
  trajectory: string;
  /** [H, W] of the images. */
  shape: [number, number];
  truth: Float32Array;
  mean: Float32Array;
  member: Float32Array;
}

export interface MetricsResult {
  schema: 'wellspring-metrics/1';
  convention: Convention;
  metrics: MetricName[];
  models: string[];
  fields: string[];
  leads: number[];
  rows: LeadRow[];
  spectra: SpectrumRow[];
  snapshots: FrameSnapshot[];
  /** The PDE-residual metric, where the evaluation computed it (see residual.ts). */
  residual?: ResidualResult;
}

interface Accumulator {
  model: string;
  field: string;
  lead: number;
  frames: number;
  count: Float64Array;
  /** Running mean and sum of squared deviations (Welford), per metric. */
  mean: Float64Array;
  m2: Float64Array;
  truthPower: Float64Array;
  predictionPower: Float64Array;
  frequencies: number[];
}

const DEFAULT_SNAPSHOT_LEADS = [1, 20, 60, 100];

/** The running state; `add` one chunk at a time, `result()` at any point. */
export class MetricsReducer {
  private readonly accumulators = new Map<string, Accumulator>();
  private readonly shapes = new Map<string, string>();
  private readonly snapshots = new Map<string, FrameSnapshot>();
  private readonly snapshotTrajectory = new Map<string, string>();
  private readonly snapshotLeads: Set<number>;
  private chunks = 0;
  private prepared = 0;
  private framesScored = 0;

  constructor(private readonly options: MetricsOptions = {}) {
    this.snapshotLeads = new Set(options.noSnapshots ? [] : (options.snapshotLeads ?? DEFAULT_SNAPSHOT_LEADS));
  }

  /** Scores every frame of `chunk` (on this thread) and folds it into the sums. */
  add(chunk: RolloutChunk): void {
    this.addScores(scoreChunk(this.prepare(chunk), this.scoreOptions()));
  }

  /**
   * Validates a chunk and fills in its defaults (model "model", trajectory "#<chunk index>"). The result can be
   * scored anywhere (here or in a worker thread, see `scoreChunk`) and folded in with `addScores`, in order.
   */
  prepare(chunk: RolloutChunk): PreparedChunk {
    const where = describe(chunk, this.prepared);
    validate(chunk, where);
    const model = chunk.model ?? 'model';
    const shapeKey = chunk.spatialShape.join('x');
    const known = this.shapes.get(model);
    if (known !== undefined && known !== shapeKey) {
      throw new Error(`${where}: spatial shape ${shapeKey} differs from the ${known} seen before for this model`);
    }
    this.shapes.set(model, shapeKey);
    const trajectory = String(chunk.trajectory ?? `#${this.prepared}`);
    this.prepared++;
    return { ...chunk, model, trajectory };
  }

  /** The plain-data options a `scoreChunk` call needs (no callbacks, so they can go to a worker). */
  scoreOptions(): ScoreOptions {
    const { convention, spreadSkillOffset, skipW1 } = this.options;
    return { convention, spreadSkillOffset, skipW1, snapshotLeads: [...this.snapshotLeads] };
  }

  /** Folds the scores of one prepared chunk into the sums (in the order the chunks were prepared). */
  addScores(scores: ChunkScores): void {
    const { model, trajectory, fields, spatialShape } = scores;
    if (!this.snapshotTrajectory.has(model)) this.snapshotTrajectory.set(model, trajectory);
    const c = fields.length;
    const bins = scores.bins;
    const nm = METRICS.length;
    for (let step = 0; step < scores.steps; step++) {
      const lead = scores.lead + step;
      for (let ch = 0; ch < c; ch++) {
        const frame = step * c + ch;
        const acc = this.accumulator(model, fields[ch]!, lead, spatialShape);
        acc.frames++;
        if (this.options.onFrame) {
          const values = scores.values.subarray(frame * nm, (frame + 1) * nm);
          this.options.onFrame({ model, trajectory, field: fields[ch]!, lead, values });
        }
        for (let i = 0; i < nm; i++) {
          const value = scores.values[frame * nm + i]!;
          if (!Number.isFinite(value)) continue;
          const count = ++acc.count[i]!;
          const delta = value - acc.mean[i]!;
          acc.mean[i]! += delta / count;
          acc.m2[i]! += delta * (value - acc.mean[i]!);
        }
        for (let b = 0; b < bins; b++) {
          acc.truthPower[b]! += scores.truthPower[frame * bins + b]!;
          acc.predictionPower[b]! += scores.predictionPower[frame * bins + b]!;
        }
        this.framesScored++;
      }
    }
    if (this.snapshotTrajectory.get(model) === trajectory) {
      for (const plane of scores.planes) {
        const key = `${model}\u0000${plane.field}\u0000${plane.lead}`;
        if (!this.snapshots.has(key)) this.snapshots.set(key, { model, trajectory, ...plane });
      }
    }
    this.chunks++;
    this.options.onProgress?.(this.framesScored);
  }

  private accumulator(model: string, field: string, lead: number, shape: readonly number[]): Accumulator {
    const key = `${model}\u0000${field}\u0000${lead}`;
    let acc = this.accumulators.get(key);
    if (!acc) {
      const frequencies = isotropicBinning(shape).frequencies;
      acc = {
        model,
        field,
        lead,
        frames: 0,
        count: new Float64Array(METRICS.length),
        mean: new Float64Array(METRICS.length),
        m2: new Float64Array(METRICS.length),
        truthPower: new Float64Array(frequencies.length),
        predictionPower: new Float64Array(frequencies.length),
        frequencies,
      };
      this.accumulators.set(key, acc);
    }
    return acc;
  }

  /**
   * Number of numbers the reducer holds (running sums, spectra, snapshot pixels): what "O(fields x leads x bins)"
   * means in practice. It depends on the keys seen, never on the number of trajectories.
   */
  stateSize(): number {
    let size = 0;
    for (const a of this.accumulators.values()) {
      size += a.count.length + a.mean.length + a.m2.length + a.truthPower.length + a.predictionPower.length;
    }
    for (const s of this.snapshots.values()) size += s.truth.length + s.mean.length + s.member.length;
    return size;
  }

  /** The reduction so far: per-(model, field, lead) summaries, mean spectra and snapshots, sorted. */
  result(): MetricsResult {
    const accs = [...this.accumulators.values()];
    const models = unique(accs.map((a) => a.model));
    const fields = unique(accs.map((a) => a.field));
    const order = (a: { model: string; field: string; lead: number }, b: typeof a): number =>
      models.indexOf(a.model) - models.indexOf(b.model) ||
      fields.indexOf(a.field) - fields.indexOf(b.field) ||
      a.lead - b.lead;
    accs.sort(order);
    const rows: LeadRow[] = accs.map((a) => {
      const metrics = {} as Record<MetricName, MetricSummary>;
      METRICS.forEach((name, i) => {
        const count = a.count[i]!;
        const mean = count > 0 ? a.mean[i]! : NaN;
        const variance = count > 0 ? a.m2[i]! / count : NaN;
        metrics[name] = { mean, std: Math.sqrt(variance), count };
      });
      return { model: a.model, field: a.field, lead: a.lead, frames: a.frames, metrics };
    });
    const spectra: SpectrumRow[] = accs.map((a) => ({
      model: a.model,
      field: a.field,
      lead: a.lead,
      frequencies: a.frequencies,
      truth: [...a.truthPower].map((v) => v / a.frames),
      prediction: [...a.predictionPower].map((v) => v / a.frames),
    }));
    return {
      schema: 'wellspring-metrics/1',
      convention: this.options.convention ?? 'the_well',
      metrics: [...METRICS],
      models,
      fields,
      leads: unique(accs.map((a) => a.lead)).sort((a, b) => a - b),
      rows,
      spectra,
      snapshots: [...this.snapshots.values()].sort(order),
    };
  }
}

/**
 * The metric sink: pulls every rollout chunk from `source`, scores it and resolves to the reduction. Holds the
 * reducer's running sums and snapshot frames (see MetricsReducer) and one chunk at a time; with `threads` > 1,
 * chunks are scored in a pool of worker threads (copied to them, so the caller's arrays stay usable) and up to
 * 2 x threads chunks are in flight. The result is the same either way: scores are folded in input order.
 */
export async function reduceMetrics(
  source: Source<RolloutChunk>,
  options: MetricsOptions = {},
  signal?: AbortSignal,
): Promise<MetricsResult> {
  const reducer = new MetricsReducer(options);
  const threads = options.threads ?? 1;
  if (threads <= 1) {
    for await (const chunk of from(source)) {
      signal?.throwIfAborted();
      reducer.add(chunk);
    }
    return reducer.result();
  }
  const scoreOptions = reducer.scoreOptions();
  const tasks = async function* (): AsyncGenerator<ScoreTask> {
    for await (const chunk of from(source)) {
      signal?.throwIfAborted();
      yield { chunk: reducer.prepare(chunk), options: scoreOptions };
    }
  };
  const scored = pipe(
    tasks(),
    workerMap<ScoreTask, ChunkScores>({
      filename: siblingModule(import.meta.url, 'score-worker'),
      threads,
      transfer: false,
      name: 'score-rollouts',
    }),
  );
  for await (const scores of scored) reducer.addScores(scores);
  return reducer.result();
}


function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function describe(chunk: Partial<RolloutChunk>, index: number): string {
  const parts = [`rollout chunk ${index}`];
  if (chunk.model !== undefined) parts.push(`model "${chunk.model}"`);
  if (chunk.trajectory !== undefined) parts.push(`trajectory ${String(chunk.trajectory)}`);
  return parts.join(', ');
}

function validate(chunk: RolloutChunk, where: string): RolloutChunk {
  const { fields, spatialShape, truth, ensemble, lead } = chunk;
  if (!Array.isArray(fields) || fields.length === 0) throw new Error(`${where}: "fields" must list the channel names`);
  // Single-cell axes are allowed (1 x N, N x 1 grids: no isotropic spectrum, see isotropicBinning), but a frame
  // needs two points for its unbiased variance (VRMSE, Pearson r).
  if (
    !Array.isArray(spatialShape) ||
    spatialShape.length === 0 ||
    !spatialShape.every((s) => Number.isInteger(s) && s >= 1) ||
    spatialShape.reduce((a, b) => a * b, 1) < 2
  ) {
    throw new Error(
      `${where}: "spatialShape" must be a list of grid sizes >= 1 with at least 2 grid points, got ${JSON.stringify(spatialShape)}`,
    );
  }
  if (!Number.isInteger(lead) || lead < 0) throw new Error(`${where}: "lead" must be an integer >= 0, got ${lead}`);
  if (!(truth instanceof Float32Array || truth instanceof Float64Array)) {
    throw new Error(`${where}: "truth" must be a Float32Array or Float64Array`);
  }
  const frameSize = spatialShape.reduce((a, b) => a * b, 1) * fields.length;
  if (truth.length === 0 || truth.length % frameSize !== 0) {
    throw new Error(
      `${where}: "truth" has ${truth.length} values, expected a multiple of ${frameSize} ` +
        `(T x ${spatialShape.join(' x ')} x ${fields.length} channels)`,
    );
  }
  if (!Array.isArray(ensemble) || ensemble.length === 0) {
    throw new Error(`${where}: "ensemble" must hold at least one member`);
  }
  ensemble.forEach((v, i) => {
    if (!(v instanceof Float32Array || v instanceof Float64Array) || v.length !== truth.length) {
      throw new Error(
        `${where}: ensemble member ${i} must be a Float32Array or Float64Array of ${truth.length} values like "truth"` +
          ` (got ${v instanceof Float32Array || v instanceof Float64Array ? v.length + ' values' : typeof v})`,
      );
    }
  });
  return chunk;
}
