/**
 * The report sink: scores a stream of rollout chunks (see `reduceMetrics`), then writes the results directory
 * (results.json, snapshots.json, metrics.csv, metrics.arrow), the self-contained report.html and one labelled
 * frame-grid PNG per model. `renderSavedReport` does the writing part alone, from results read back from disk.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Source } from '../../streams/core.js';
import {
  reduceMetrics,
  summarize,
  writeFileAtomic,
  writeResults,
  type LeadBand,
  type MetricsOptions,
  type RolloutChunk,
  type SavedResults,
} from '../metrics/index.js';
import { renderReport, type ReportOptions } from './html.js';
import { frameGridPng } from './images.js';

export const REPORT_FILE = 'report.html';

export interface ReportSinkOptions extends MetricsOptions, ReportOptions {
  /** Results directory to create or overwrite (file by file, atomically). */
  dir: string;
  title?: string;
  bands?: readonly LeadBand[];
  /** Cell size (longer side, pixels) of the frame-grid PNGs. Default 96. */
  gridCell?: number;
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
export async function reportSink(source: Source<RolloutChunk>, options: ReportSinkOptions): Promise<ReportFiles & { saved: SavedResults }> {
  const result = await reduceMetrics(source, options);
  const saved = summarize(result, { title: options.title, bands: options.bands });
  const results = await writeResults(options.dir, saved);
  const { report, frameGrids } = await renderSavedReport(saved, options.dir, options);
  return { saved, results, report, frameGrids };
}
