/**
 * `wellspring report <results>`: re-renders the HTML report and the frame-grid PNGs from a saved results
 * directory (written by the report sink or `writeResults`), optionally with other lead-time bands or metrics.
 */
import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { UsageError, type Command } from '../command.js';
import { aggregate, METRICS, parseBands, readResults, writeFileAtomic, type MetricName } from '../../src/sinks/metrics/index.js';
import { frameGridPng, renderSavedReport, REPORT_FILE } from '../../src/sinks/report/index.js';

const help = `Usage: wellspring report <results-dir> [options]

Re-renders a self-contained HTML report (inline SVG plots, inline PNG frames; opens offline) from a results
directory holding results.json and snapshots.json, and writes one labelled frame-grid PNG per model
(frames-<model>.png) next to the report.

Options:
  --out FILE         report file (default: <results-dir>/${REPORT_FILE})
  --png FILE         also write the first model's frame grid to FILE (for a README)
  --bands LIST       lead-time bands, e.g. 1-20,21-60,61-100 (default: the bands saved with the results)
  --metrics LIST     metrics plotted against lead time (default: vrmse,rmse,crps,w1)
  --table LIST       metrics tabulated per band (default: vrmse,rmse,spread_skill,crps)
  --title TEXT       page title (default: the saved title)
  --frame-size N     longer side of each frame image in pixels (default: 128)
  -h, --help         this help

Example:
  wellspring report runs/eval-euler --out runs/eval-euler/report.html --png docs/frames.png`;

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
  summary: 'Re-render the HTML report and frame grids from a saved results directory',
  help,
  async run(argv) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
          out: { type: 'string' },
          png: { type: 'string' },
          bands: { type: 'string' },
          metrics: { type: 'string' },
          table: { type: 'string' },
          title: { type: 'string' },
          'frame-size': { type: 'string' },
        },
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError('expected exactly one results directory');
    const dir = resolve(positionals[0]!);
    const info = await stat(dir).catch(() => null);
    if (!info?.isDirectory()) throw new UsageError(`${dir} is not a directory`);
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
    process.stderr.write(`report: reading ${dir}\n`);
    const saved = await readResults(dir);
    if (bands) saved.aggregates = aggregate(saved.result, bands);
    if (values.title !== undefined) saved.title = values.title;
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
