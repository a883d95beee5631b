/**
 * The PDE-residual metric: how far predicted states are from satisfying the equations of the system they
 * emulate, streamed per (model, equation, lead time) like the other metrics.
 *
 * For a residual R with E equations (src/physics/residuals), the value of one predicted frame at lead t and one
 * equation e is the mean over grid points of R_e^2, averaged over the ensemble's members:
 *
 *   value(t, e) = 1/M sum_m mean_grid R_e(x_m(t-1), x_m(t))^2      (two-frame residuals, e.g. Euler)
 *   value(t, e) = 1/M sum_m mean_grid R_e(x_m(t))^2                 (single-frame residuals, e.g. Darcy)
 *
 * where x_m(t-1) is the member's own previous prediction, and at lead 1 (or wherever the previous prediction
 * is not in the stream) the truth at t-1 when the chunk carries it (`RolloutChunk.previous`). Frames with
 * neither are skipped. Values are averaged over trajectories with their standard deviation (Welford), so
 * shards merge exactly like the other metrics (`mergeResidualResults`).
 *
 * The simulated data's own residual is reported as the model `data` (DATA_MODEL): the discretisation error of
 * the operator on the truth, the floor a perfect emulator would sit on. It is computed from the chunks of the
 * first model seen, which every trajectory has.
 *
 * Memory: the running sums, O(models x equations x leads), and the previous frame of each member of the current
 * trajectory of each model (one state per member per model); never the rollouts.
 */
import * as tf from '@tensorflow/tfjs';
import type { PdeResidual } from '../../physics/residuals/residual.js';
import type { MetricSummary, RolloutChunk } from './types.js';

/** The model name under which the simulated data's own residual is reported. */
export const DATA_MODEL = 'data';

/** The name of the residual in the long metrics table (`metric` column; `field` holds the equation). */
export const PDE_RESIDUAL = 'pde_residual';

/** Mean square residual of one (model, equation) at one lead time, over trajectories. */
export interface ResidualRow {
  model: string;
  equation: string;
  lead: number;
  meanSquare: MetricSummary;
}

/** The same pooled over a band of lead times. */
export interface ResidualBandRow {
  model: string;
  equation: string;
  band: string;
  from: number;
  to: number;
  meanSquare: MetricSummary;
}

/** A reduction of the residual metric. */
export interface ResidualResult {
  /** The residual's name (`euler`, `rayleigh-benard`, `darcy`). */
  system: string;
  equations: string[];
  /** Models in the order seen, DATA_MODEL last. */
  models: string[];
  rows: ResidualRow[];
}

interface Running {
  count: number;
  mean: number;
  m2: number;
}

interface Previous {
  trajectory: string;
  /** Lead of the stored frames. */
  lead: number;
  /** One frame per member (the data stream: one, the truth). */
  frames: Float32Array[];
}

/** The running residual sums; `add` chunks in stream order, `result()` at any point. */
export class ResidualReducer {
  private readonly sums = new Map<string, Running>();
  private readonly previous = new Map<string, Previous>();
  private readonly models: string[] = [];
  private dataSource: string | undefined;

  constructor(readonly residual: PdeResidual) {}

  /**
   * Evaluates the residual of every member's frames of `chunk` (and of the truth, for the first model). Async:
   * the values are read back from the backend (a GPU's cannot be read synchronously); add chunks one at a time.
   */
  async add(chunk: RolloutChunk): Promise<void> {
    const model = chunk.model ?? 'model';
    const trajectory = String(chunk.trajectory ?? '');
    const where = `PDE residual (${this.residual.name}), model "${model}", trajectory ${trajectory || '?'}, lead ${chunk.lead}`;
    const channels = this.residual.channels;
    if (chunk.fields.length !== channels.length || chunk.fields.some((f, i) => f !== channels[i])) {
      throw new Error(`${where}: the states' channels are [${chunk.fields.join(', ')}], the residual reads [${channels.join(', ')}]`);
    }
    if (chunk.spatialShape.length !== 2) throw new Error(`${where}: the residuals are two-dimensional, got a ${chunk.spatialShape.length}D grid`);
    if (!this.models.includes(model)) this.models.push(model);
    this.dataSource ??= model;
    await this.stream(model, model, trajectory, chunk, chunk.ensemble);
    if (model === this.dataSource) await this.stream(DATA_MODEL, `\u0000${DATA_MODEL}`, trajectory, chunk, [chunk.truth]);
  }

  /** Folds the residual of `members` (each T frames) into the sums of `name`; `key` keys its previous frames. */
  private async stream(name: string, key: string, trajectory: string, chunk: RolloutChunk, members: readonly (Float32Array | Float64Array)[]): Promise<void> {
    const frameSize = chunk.spatialShape[0]! * chunk.spatialShape[1]! * chunk.fields.length;
    const T = chunk.truth.length / frameSize;
    const M = members.length;
    const last = (m: Float32Array | Float64Array) => Float32Array.from(m.subarray((T - 1) * frameSize));
    let prev: Float32Array[] | undefined;
    if (this.residual.frames === 2) {
      const p = this.previous.get(key);
      if (p && p.trajectory === trajectory && p.lead === chunk.lead - 1 && p.frames.length === M) prev = p.frames;
      else if (chunk.previous) prev = Array.from({ length: M }, () => Float32Array.from(chunk.previous!));
      this.previous.set(key, { trajectory, lead: chunk.lead + T - 1, frames: members.map(last) });
      if (!prev && T === 1) return;
    }
    const [X, Y] = chunk.spatialShape as [number, number];
    const C = chunk.fields.length;
    // (M, E, steps): per member, equation and scored frame, the mean square over the grid
    const { ms, steps, first } = tf.tidy(() => {
      const stacked = new Float32Array(M * (T + (prev ? 1 : 0)) * frameSize);
      let at = 0;
      for (let m = 0; m < M; m++) {
        if (prev) stacked.set(prev[m]!, at), (at += frameSize);
        stacked.set(members[m]!, at);
        at += T * frameSize;
      }
      const frames = T + (prev ? 1 : 0);
      const states = tf.tensor5d(stacked, [M, frames, X, Y, C]);
      // two-frame residuals: (M, frames - 1, X, Y, E); single-frame: (M, T, X, Y, E)
      const r = this.residual.residual(states);
      const ms = tf.mean(tf.square(r), [2, 3]); // (M, steps, E)
      return {
        ms,
        steps: ms.shape[1]!,
        first: this.residual.frames === 2 && !prev ? chunk.lead + 1 : chunk.lead,
      };
    });
    const values = (await ms.data()) as Float32Array;
    ms.dispose();
    const E = this.residual.equations.length;
    for (let s = 0; s < steps; s++) {
      for (let e = 0; e < E; e++) {
        let v = 0;
        for (let m = 0; m < M; m++) v += values[(m * steps + s) * E + e]!;
        this.fold(name, this.residual.equations[e]!, first + s, v / M);
      }
    }
  }

  private fold(model: string, equation: string, lead: number, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = `${model}\u0000${equation}\u0000${lead}`;
    let acc = this.sums.get(key);
    if (!acc) this.sums.set(key, (acc = { count: 0, mean: 0, m2: 0 }));
    acc.count++;
    const delta = value - acc.mean;
    acc.mean += delta / acc.count;
    acc.m2 += delta * (value - acc.mean);
  }

  /** Numbers held: three per (model, equation, lead) plus the previous frames. Independent of trajectories. */
  stateSize(): number {
    let size = this.sums.size * 3;
    for (const p of this.previous.values()) size += p.frames.reduce((s, f) => s + f.length, 0);
    return size;
  }

  result(): ResidualResult {
    const models = [...this.models, ...(this.dataSource !== undefined ? [DATA_MODEL] : [])];
    const equations = [...this.residual.equations];
    const rows: ResidualRow[] = [...this.sums.entries()].map(([key, acc]) => {
      const [model, equation, lead] = key.split('\u0000') as [string, string, string];
      return { model, equation, lead: Number(lead), meanSquare: { mean: acc.mean, std: Math.sqrt(acc.m2 / acc.count), count: acc.count } };
    });
    return { system: this.residual.name, equations, models, rows: sortResidualRows(rows, models, equations) };
  }
}

/** Sorts residual rows by model, equation and lead (or band start), in the given orders. */
export function sortResidualRows<R extends { model: string; equation: string; lead?: number; from?: number }>(
  rows: R[],
  models: readonly string[],
  equations: readonly string[],
): R[] {
  return rows.sort(
    (a, b) =>
      models.indexOf(a.model) - models.indexOf(b.model) ||
      equations.indexOf(a.equation) - equations.indexOf(b.equation) ||
      (a.lead ?? a.from ?? 0) - (b.lead ?? b.from ?? 0),
  );
}
