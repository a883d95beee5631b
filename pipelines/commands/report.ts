/**
 * `wellspring report <results>`: re-renders the HTML report and the frame-grid PNGs from a saved results
 * directory (written by the report sink or `writeResults`), optionally with other lead-time bands or metrics.
 */
import { dirname, join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { UsageError, parseCommandArgs, type Command } from '../cli/command.js';
import {
  aggregate,
  mergeResults,
  METRICS,
  parseBands,
  readResults,
  writeResults,
  type MetricName,
} from '../../src/sinks/metrics/index.js';
import { frameGridPng, renderSavedReport, REPORT_FILE } from '../../src/sinks/report/index.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';

const help = `Usage: wellspring report <results-dir> [<results-dir> ...] [options]

Re-renders a self-contained HTML report (inline SVG plots, inline PNG frames; opens offline) from a results
directory holding results.json and snapshots.json, and writes one labelled frame-grid PNG per model
(frames-<model>.png) next to the report. Several directories (e.g. the shards of one evaluation, or runs of
different models) are merged first: per-frame summaries are pooled, so shards give the result of one run.

Options:
  --out FILE         report file (default: <first results-dir>/${REPORT_FILE})
  --save DIR         also write the (merged, re-banded) results directory to DIR
  --png FILE         also write the first model's frame grid to FILE (for a README)
  --bands LIST       lead-time bands, e.g. 1-20,21-60,61-100 (default: the bands saved with the results)
  --metrics LIST     metrics plotted against lead time (default: vrmse,rmse,crps,w1)
  --table LIST       metrics tabulated per band (default: vrmse,rmse,spread_skill,crps)
  --title TEXT       page title (default: the saved title)
  --frame-size N     longer side of each frame image in pixels (default: 128)
  -h, --help         this help

Examples:
  wellspring report runs/eval-euler --out runs/eval-euler/report.html --png docs/frames.png
  wellspring report runs/eval/shard-0 runs/eval/shard-1 --save runs/eval/all --out runs/eval/all/report.html`;

function metricList(text: string, option: string): MetricName[] {
  return text.split(',').map((m) => {
    const name = m.trim();
    if (!(METRICS as readonly string[]).includes(name)) {
      throw new UsageError(`${option}: unknown metric "${name}" (known: ${METRICS.join(', ')})`);
    }
    return name as MetricName;
  });
}

export const command: Command = {
  name: 'report',
  summary: 'Re-render the HTML report and frame grids from saved results (merging shards or runs)',
  help,
  async run(argv) {
    const parsed = parseCommandArgs(argv, {
      out: { type: 'string' },
      save: { type: 'string' },
      png: { type: 'string' },
      bands: { type: 'string' },
      metrics: { type: 'string' },
      table: { type: 'string' },
      title: { type: 'string' },
      'frame-size': { type: 'string' },
    });
    const { values, positionals } = parsed;
    if (positionals.length === 0) throw new UsageError('expected at least one results directory');
    const dirs = positionals.map((p) => resolve(p));
    for (const d of dirs) {
      const info = await stat(d).catch(() => null);
      if (!info?.isDirectory()) throw new UsageError(`${d} is not a directory`);
    }
    const dir = dirs[0]!;
    let frameSize = 128;
    if (values['frame-size'] !== undefined) {
      frameSize = Number(values['frame-size']);
      if (!Number.isInteger(frameSize) || frameSize < 8 || frameSize > 2048) {
        throw new UsageError(`--frame-size must be an integer between 8 and 2048, got "${values['frame-size']}"`);
      }
    }
    const errorMetrics = values.metrics !== undefined ? metricList(values.metrics, '--metrics') : undefined;
    const tableMetrics = values.table !== undefined ? metricList(values.table, '--table') : undefined;
    let bands;
    if (values.bands !== undefined) {
      try {
        bands = parseBands(values.bands);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }

    const started = Date.now();
    const parts = [];
    for (const d of dirs) {
      process.stderr.write(`report: reading ${d}\n`);
      parts.push(await readResults(d));
    }
    const saved = parts[0]!;
    if (parts.length > 1) {
      saved.result = mergeResults(parts.map((p) => p.result));
      saved.aggregates = aggregate(saved.result, bands ?? saved.aggregates.bands);
    } else if (bands) {
      saved.aggregates = aggregate(saved.result, bands);
    }
    if (values.title !== undefined) saved.title = values.title;
    if (values.save !== undefined) {
      const written = await writeResults(resolve(values.save), saved);
      process.stderr.write(`report: saved ${written.length} files in ${resolve(values.save)}\n`);
    }
    const out = resolve(values.out ?? join(dir, REPORT_FILE));
    process.stderr.write(`report: rendering ${saved.result.rows.length} rows, ${saved.result.snapshots.length} frames\n`);
    const { report, frameGrids } = await renderSavedReport(saved, dirname(out), {
      out,
      errorMetrics,
      tableMetrics,
      frameSize,
    });
    if (values.png !== undefined) {
      const model = saved.result.models.find((m) => saved.result.snapshots.some((s) => s.model === m));
      if (!model) throw new Error(`${dir}: no snapshot frames saved, cannot write ${values.png}`);
      const snaps = saved.result.snapshots.filter((s) => s.model === model);
      await writeFileAtomic(resolve(values.png), frameGridPng(snaps, { title: `${model}: truth, ensemble mean, member 1, error` }));
      frameGrids.push(resolve(values.png));
    }
    process.stderr.write(`report: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    console.log(report);
    for (const f of frameGrids) console.log(f);
    return 0;
  },
};
