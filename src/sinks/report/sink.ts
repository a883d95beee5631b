/**
 * The report sink: scores a stream of rollout chunks (see `reduceMetrics`), then writes the results directory
 * (results.json, snapshots.json, metrics.csv, metrics.arrow, optionally frames.csv), the self-contained
 * report.html and one labelled frame-grid PNG per model. `renderSavedReport` does the writing part alone, from results read back from disk.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { pipe, type Source } from '../../streams/core.js';
import { tap } from '../../streams/basic.js';
import type { PdeResidual } from '../../physics/residuals/residual.js';
import type { Provenance, TrainingCurve } from '../provenance.js';
import {
  reduceMetrics,
  ResidualReducer,
  summarize,
  writeResults,
  METRICS,
  PartialWriteError,
  type FrameRecord,
  type LeadBand,
  type MetricsOptions,
  type RolloutChunk,
  type SavedResults,
} from '../metrics/index.js';
import { renderReport, type ReportOptions } from './html.js';
import { frameGridPng } from './images.js';
import { atomicTarget, fileError, writeFileAtomic } from '../../streams/atomic.js';

export const REPORT_FILE = 'report.html';

export interface ReportSinkOptions extends MetricsOptions, ReportOptions {
  /** Results directory to create or overwrite (file by file, atomically). */
  dir: string;
  title?: string;
  bands?: readonly LeadBand[];
  /** Cell size (longer side, pixels) of the frame-grid PNGs. Default 96. */
  gridCell?: number;
  /**
   * Also write `frames.csv`: one line per scored frame (model, trajectory, field, lead, every metric), streamed
   * to disk as frames are scored (the reducer still holds nothing per trajectory). Default false.
   */
  frameLog?: boolean;
  /**
   * Also score the PDE residual of every state with this operator (src/physics/residuals; e.g. `residualFor`
   * with `describeWellMeta` of the data): the metric `pde_residual` per model, equation and lead, with the
   * simulated data's own residual as the model "data". Runs on the calling thread (tfjs). Default none.
   */
  residual?: PdeResidual;
  /** Provenance records to carry into results.json and the report, by run name. */
  provenance?: Record<string, Provenance>;
  /** Training curves of the runs evaluated, for the report. */
  curves?: TrainingCurve[];
  /** Physical time of one lead step, for the report's lead-time axes. */
  dt?: number;
}

export const FRAME_LOG_FILE = 'frames.csv';

/** A CSV writer of frame records to a temporary file, committed into place by `close()` (removed by `abort()`). */
async function frameLogWriter(path: string): Promise<{ write: (r: FrameRecord) => void; close: () => Promise<void>; abort: () => Promise<void> }> {
  await mkdir(dirname(path), { recursive: true });
  const target = atomicTarget(path);
  const out = createWriteStream(target.tmp);
  let failure: Error | undefined;
  out.on('error', (err) => (failure = fileError(path, 'writing', err)));
  out.write(['model', 'trajectory', 'field', 'lead', ...METRICS].join(',') + '\n');
  const cell = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const finish = () => new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return {
    write(r) {
      if (failure) throw failure;
      const values = Array.from(r.values, (v) => (Number.isFinite(v) ? String(v) : ''));
      out.write([cell(r.model), cell(r.trajectory), cell(r.field), String(r.lead), ...values].join(',') + '\n');
    },
    async close() {
      await finish();
      if (failure) throw failure;
      await target.commit();
    },
    async abort() {
      // Wait for the stream to close: it may still be opening the file, which would recreate it after rm.
      await new Promise<void>((resolve) => {
        if (out.closed) return resolve();
        out.once('close', () => resolve());
        out.destroy();
      });
      await target.abort();
    },
  };
}

export interface ReportFiles {
  results: string[];
  report: string;
  frameGrids: string[];
}

/** File-name-safe form of a model name. */
export const slug = (name: string): string => name.replace(/[^A-Za-z0-9._-]+/g, '_') || 'model';

/** Writes one labelled frame-grid PNG per model that has snapshots, as `frames-<model>.png` in `dir`. */
export async function writeFrameGrids(saved: SavedResults, dir: string, cell = 96): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const model of saved.result.models) {
    const snaps = saved.result.snapshots.filter((s) => s.model === model);
    if (snaps.length === 0) continue;
    const path = join(dir, `frames-${slug(model)}.png`);
    await writeFileAtomic(path, frameGridPng(snaps, { cell, title: `${model}: truth, ensemble mean, member 1, error` }));
    paths.push(path);
  }
  return paths;
}

/** Renders report.html (to `out`, default `<dir>/report.html`) and the frame grids from saved results. */
export async function renderSavedReport(
  saved: SavedResults,
  dir: string,
  options: ReportOptions & { out?: string; gridCell?: number } = {},
): Promise<{ report: string; frameGrids: string[] }> {
  const report = options.out ?? join(dir, REPORT_FILE);
  await writeFileAtomic(report, await renderReport(saved, options));
  const frameGrids = await writeFrameGrids(saved, dir, options.gridCell);
  return { report, frameGrids };
}

/**
 * The report sink: pulls every chunk from `source`, then writes results, report and frame grids under
 * `options.dir`. Holds what reduceMetrics holds (running sums and a bounded set of snapshot frames).
 */
export async function reportSink(input: Source<RolloutChunk>, options: ReportSinkOptions): Promise<ReportFiles & { saved: SavedResults }> {
  const residual = options.residual ? new ResidualReducer(options.residual) : undefined;
  // each chunk is folded into the residual sums (awaited) before the metric reducer pulls it
  const source = residual ? pipe(input, tap((chunk: RolloutChunk) => residual.add(chunk), 'pde-residual')) : input;
  let result;
  if (options.frameLog) {
    const log = await frameLogWriter(join(options.dir, FRAME_LOG_FILE));
    const onFrame = (r: FrameRecord) => {
      log.write(r);
      options.onFrame?.(r);
    };
    try {
      result = await reduceMetrics(source, { ...options, onFrame });
    } catch (err) {
      await log.abort();
      throw err;
    }
    await log.close();
  } else {
    result = await reduceMetrics(source, options);
  }
  if (residual) result = { ...result, residual: residual.result() };
  const saved = summarize(result, { title: options.title, bands: options.bands, provenance: options.provenance, curves: options.curves, dt: options.dt });
  const withFrames = saved.result.models.filter((m) => saved.result.snapshots.some((s) => s.model === m));
  const later = [REPORT_FILE, ...withFrames.map((m) => `frames-${slug(m)}.png`)];
  let results: string[];
  try {
    results = await writeResults(options.dir, saved);
  } catch (err) {
    if (err instanceof PartialWriteError) throw new PartialWriteError(options.dir, err.written, [...err.missing, ...later], err.cause);
    throw err;
  }
  try {
    const { report, frameGrids } = await renderSavedReport(saved, options.dir, options);
    return { saved, results, report, frameGrids };
  } catch (err) {
    const present = later.map((f) => join(options.dir, f)).filter((p) => existsSync(p));
    const missing = later.filter((f) => !existsSync(join(options.dir, f)));
    throw new PartialWriteError(options.dir, [...results, ...present], missing, err);
  }
}
