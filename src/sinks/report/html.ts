/**
 * The report page: one self-contained HTML file (plots as inline SVG, frames as base64 PNG, styles inline, no
 * external resource of any kind), so it opens offline and can be mailed or archived as is.
 */
import { colorbar, colormaps, encodePng, snapshotPanels, tickLabels, PANEL_NAMES, type Lut } from './images.js';
import {
  errorVsLead,
  leadData,
  metricLabel,
  powerSpectra,
  powerSpectraData,
  residualData,
  residualVsLead,
  spectralErrorBands,
  spectralErrorData,
  spreadSkillVsLead,
  trainingCurveData,
  trainingCurves,
  type Plot,
} from './plots.js';
import { ALL_FIELDS, DATA_MODEL, type MetricName, type SavedResults } from '../metrics/index.js';
import type { Provenance } from '../provenance.js';
import { fmt, MISSING_CELL } from './numbers.js';

export interface ReportOptions {
  /** Metrics drawn against lead time, one plot each. Default vrmse, rmse, crps, w1. */
  errorMetrics?: readonly MetricName[];
  /** Metrics tabulated per lead-time band. Default vrmse, rmse, spread_skill, crps. */
  tableMetrics?: readonly MetricName[];
  /** Longer side of each frame image, in pixels. Default 128. */
  frameSize?: number;
}

const DEFAULT_ERROR_METRICS: MetricName[] = ['vrmse', 'rmse', 'crps', 'w1'];
const DEFAULT_TABLE_METRICS: MetricName[] = ['vrmse', 'rmse', 'spread_skill', 'crps'];

/** Escapes text for HTML content and attributes. */
export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export { fmt, MISSING_CELL };

/** A plot the report leaves out because it would have nothing to draw, and why. */
export interface OmittedPlot {
  /** The id the plot would have had (see Plot.id). */
  id: string;
  title: string;
  reason: string;
}

/** The report's plots: those drawn, and those left out for lack of data. */
export interface ReportFigures {
  plots: Plot[];
  omitted: OmittedPlot[];
}

/** " (HxW)": the grid shapes of the results, read from the snapshots (empty when none was kept). */
function gridNames(saved: SavedResults): string {
  const shapes = [...new Set(saved.result.snapshots.map((s) => s.shape.join('x')))];
  return shapes.length > 0 ? ` (${shapes.join(', ')})` : '';
}

/**
 * Every plot of the report, rendered, except those with no data point, which are listed with a reason instead:
 * an error metric with no finite value (e.g. w1 with skipW1), spread / skill when every model is deterministic
 * (one member), the power spectra on a grid with no isotropic bin (a single-cell axis), the spectral error bands
 * on a grid whose bins miss the low, mid and high bands (2 x 2, 1 x N). Throws when no frame was scored at all.
 */
export async function reportFigures(saved: SavedResults, options: ReportOptions = {}): Promise<ReportFigures> {
  if (saved.result.rows.length === 0) throw new Error('report: the results hold no scored frame, nothing to plot');
  const plots: Plot[] = [];
  const omitted: OmittedPlot[] = [];
  for (const metric of options.errorMetrics ?? DEFAULT_ERROR_METRICS) {
    if (leadData(saved, metric).length > 0) plots.push(await errorVsLead(saved, metric));
    else {
      omitted.push({
        id: `error-${metric}`,
        title: `${metricLabel(metric)} vs lead time`,
        reason: `no model has a finite ${metricLabel(metric)} value (skipped, or undefined for these frames)`,
      });
    }
  }
  if (leadData(saved, 'spread_skill').length > 0) plots.push(await spreadSkillVsLead(saved));
  else {
    omitted.push({
      id: 'spread-skill',
      title: 'Spread / skill vs lead time',
      reason: 'spread / skill is undefined for deterministic models (one member), and no model here is an ensemble',
    });
  }
  if (powerSpectraData(saved).length > 0) plots.push(await powerSpectra(saved));
  else {
    omitted.push({
      id: 'power-spectra',
      title: 'Power spectra: truth vs prediction',
      reason: `the grid${gridNames(saved)} has no isotropic frequency bin above DC (floor(sqrt(d) min(shape) / 2) = 0)`,
    });
  }
  if (spectralErrorData(saved).length > 0) plots.push(await spectralErrorBands(saved));
  else {
    omitted.push({
      id: 'spectral-error-bands',
      title: 'Spectral errors per frequency band vs lead time (all fields)',
      reason: `no frequency bin of the grid${gridNames(saved)} falls in the low, mid or high band`,
    });
  }
  if (saved.result.residual) {
    if (residualData(saved).length > 0) plots.push(await residualVsLead(saved));
    else omitted.push({ id: 'pde-residual', title: 'PDE residual vs lead time', reason: 'no finite, non-zero residual value was recorded' });
  }
  if (saved.curves !== undefined) {
    if (trainingCurveData(saved).length > 0) plots.push(await trainingCurves(saved));
    else omitted.push({ id: 'training-curves', title: 'Training curves', reason: 'the training logs of the runs evaluated hold no finite positive value' });
  }
  return { plots, omitted };
}

/** Every plot of the report that has data, rendered (see reportFigures for those left out). */
export async function reportPlots(saved: SavedResults, options: ReportOptions = {}): Promise<Plot[]> {
  return (await reportFigures(saved, options)).plots;
}

function bandTables(saved: SavedResults, metrics: readonly MetricName[]): string {
  const { bandRows, bands } = saved.aggregates;
  const labels = [...new Set(bandRows.map((r) => r.band))];
  if (labels.length === 0) return '<p>No lead time falls in the configured bands.</p>';
  const fields = [...saved.result.fields, ALL_FIELDS];
  return metrics
    .map((metric) => {
      const head = `<tr><th>model</th><th>field</th>${labels.map((l) => `<th>lead ${escapeHtml(l)}</th>`).join('')}</tr>`;
      const body = saved.result.models
        .flatMap((model) =>
          fields.map((field) => {
            const cells = labels.map((label) => {
              const row = bandRows.find((r) => r.model === model && r.field === field && r.band === label);
              const value = row ? row.metrics[metric].mean : NaN;
              if (Number.isFinite(value)) return `<td>${fmt(value)}</td>`;
              const why = !row
                ? 'no lead time of this band'
                : metric === 'spread_skill'
                  ? 'undefined for a deterministic model (one member)'
                  : 'no finite value';
              return `<td class="missing" title="${why}">${MISSING_CELL}</td>`;
            });
            const cls = field === ALL_FIELDS ? ' class="all"' : '';
            return `<tr${cls}><td>${escapeHtml(model)}</td><td>${escapeHtml(field)}</td>${cells.join('')}</tr>`;
          }),
        )
        .join('\n');
      return `<table class="bands" data-metric="${metric}"><caption>${escapeHtml(metricLabel(metric))} by lead-time band</caption>\n${head}\n${body}\n</table>`;
    })
    .join('\n') + `\n<p class="note">Bands: ${bands.map((b) => escapeHtml(b.label ?? `${b.from}-${b.to}`)).join(', ')}; means over every frame (trajectory x lead time) in the band; "all" pools the fields.</p>`;
}

/** One row per run: software, backend, configuration hash, data identity, start and resumptions. */
export function provenanceSection(provenance: Record<string, Provenance> | undefined): string {
  const entries = Object.entries(provenance ?? {});
  if (entries.length === 0) return '<p class="note">No provenance records (results written by an older version, or by hand).</p>';
  const short = (h: string | null | undefined) => (h ? h.slice(0, 12) : MISSING_CELL);
  const rows = entries.map(([name, p]) => {
    const sw = p.software;
    const commit = sw.commit ? `${sw.commit.slice(0, 12)}${sw.dirty ? ' (modified)' : ''}` : 'no git checkout';
    const backend = p.backend ? `${p.backend.name}${p.backend.gpu ? ' (GPU)' : ''}, ${p.backend.provider}` : MISSING_CELL;
    const data = p.data
      ? `${p.data.root}: ${p.data.files.length} files, ${p.data.bytes} bytes, id ${p.data.id}${p.data.stats ? `, stats ${short(p.data.stats.sha256)}` : ''}`
      : MISSING_CELL;
    const resumes = p.resumes.length > 0 ? p.resumes.map((r) => r.time).join(', ') : 'none';
    const cells = [name, `${sw.name} ${sw.version}`, commit, `${sw.node} ${sw.platform}`, backend, short(p.configHash), data, p.created, resumes];
    return `<tr data-provenance="${escapeHtml(name)}">${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  });
  const head = ['run', 'software', 'commit', 'Node', 'backend', 'config hash', 'data', 'started', 'resumed'];
  return `<table class="provenance"><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr>\n${rows.join('\n')}</table>
<p class="note">Config hash: SHA-256 of the resolved configuration (canonical JSON), first 12 digits; data id: hash of the data files' names and sizes and of the statistics file. The full records are in results.json and each run's run.json.</p>`;
}

/** The RMS PDE residual per model, equation and band, with its ratio to the simulated data's own residual. */
function residualTable(saved: SavedResults, figures: string): string {
  const residual = saved.result.residual;
  const rows = saved.aggregates.residualBands ?? [];
  if (!residual || rows.length === 0) return '';
  const labels = [...new Set(rows.map((r) => r.band))];
  const rms = (model: string, equation: string, band: string) => {
    const row = rows.find((r) => r.model === model && r.equation === equation && r.band === band);
    return row ? Math.sqrt(row.meanSquare.mean) : NaN;
  };
  const head = `<tr><th>model</th><th>equation</th>${labels.map((l) => `<th>lead ${escapeHtml(l)}</th>`).join('')}</tr>`;
  const body = residual.models
    .flatMap((model) =>
      residual.equations.map((equation) => {
        const cells = labels.map((band) => {
          const value = rms(model, equation, band);
          if (!Number.isFinite(value)) return `<td class="missing" title="no frame of this band">${MISSING_CELL}</td>`;
          const data = rms(DATA_MODEL, equation, band);
          const ratio = model !== DATA_MODEL && data > 0 ? ` <span class="note">(${fmt(value / data)}x)</span>` : '';
          return `<td>${fmt(value)}${ratio}</td>`;
        });
        return `<tr><td>${escapeHtml(model)}</td><td>${escapeHtml(equation)}</td>${cells.join('')}</tr>`;
      }),
    )
    .join('\n');
  return (
    `<h2>PDE residual</h2>\n<table class="bands" data-metric="pde_residual"><caption>RMS residual of the ${escapeHtml(residual.system)} equations by lead-time band (in brackets: times the data's own)</caption>\n${head}\n${body}\n</table>\n` +
    figures
  );
}

/** Least height of a colour bar in the page, so that its three tick labels fit beside it. */
const BAR_MIN_HEIGHT = 48;

/**
 * A colour bar cell: the LUT as a 12-pixel-wide PNG from min (bottom) to max (top), as tall as the frames (at least
 * BAR_MIN_HEIGHT), with max, mid and min as text beside it. `bars` caches the encoded bars by map and height.
 */
function colorbarCell(map: 'values' | 'errors', lut: Lut, lo: number, hi: number, height: number, bars: Map<string, string>): string {
  const h = Math.max(height, BAR_MIN_HEIGHT);
  const key = `${map}:${h}`;
  let src = bars.get(key);
  if (src === undefined) {
    src = `data:image/png;base64,${encodePng(colorbar(lut, 12, h)).toString('base64')}`;
    bars.set(key, src);
  }
  const [min, mid, max] = tickLabels(lo, hi);
  const alt = `colour scale of the ${map === 'values' ? 'values' : 'error'}: ${min} (bottom) to ${max} (top)`;
  return (
    `<td class="scale"><div class="colorbar" data-scale="${map}"><img class="colorbar" src="${src}" width="12" height="${h}" alt="${alt}">` +
    `<div class="ticks"><span class="tick" data-tick="max">${max}</span><span class="tick" data-tick="mid">${mid}</span><span class="tick" data-tick="min">${min}</span></div></div></td>`
  );
}

function frameSection(saved: SavedResults, size: number): string {
  const { snapshots } = saved.result;
  if (snapshots.length === 0) return '<p>No snapshot frames were recorded.</p>';
  const luts = colormaps();
  const bars = new Map<string, string>();
  const heads = { truth: 'truth', mean: 'ensemble mean', member: 'member 1', error: 'error (mean \u2212 truth)' };
  const parts: string[] = [];
  for (const model of saved.result.models) {
    const ofModel = snapshots.filter((s) => s.model === model);
    if (ofModel.length === 0) continue;
    const rows = ofModel.map((s) => {
      const panels = snapshotPanels(s, size);
      const img = (name: (typeof PANEL_NAMES)[number]) => {
        const p = panels[name];
        const src = `data:image/png;base64,${encodePng(p).toString('base64')}`;
        const alt = `${name} of ${s.field} at lead ${s.lead} (${model})`;
        return `<td><img class="frame" data-panel="${name}" src="${src}" width="${p.width}" height="${p.height}" alt="${escapeHtml(alt)}"></td>`;
      };
      const height = panels.truth.height;
      const valueBar = colorbarCell('values', luts.values, panels.range[0], panels.range[1], height, bars);
      const errorBar = colorbarCell('errors', luts.errors, -panels.errorRange, panels.errorRange, height, bars);
      return `<tr><th>${escapeHtml(s.field)}<br>lead ${s.lead}</th>${img('truth')}${img('mean')}${img('member')}${valueBar}${img('error')}${errorBar}</tr>`;
    });
    parts.push(
      `<h3>${escapeHtml(model)} <span class="note">(trajectory ${escapeHtml(ofModel[0]!.trajectory)})</span></h3>\n` +
        `<table class="frames"><tr><th></th><th>${heads.truth}</th><th>${heads.mean}</th><th>${heads.member}</th><th>scale</th><th>${heads.error}</th><th>scale</th></tr>\n${rows.join('\n')}</table>`,
    );
  }
  return (
    parts.join('\n') +
    '\n<p class="note">Colours: viridis over the range shared by truth, mean and member of each row; errors red (over) / blue (under), symmetric range; the bars beside the frames show each range with its min, mid and max.</p>'
  );
}

/** The report pages' stylesheet. */
export const STYLE = `
body { font-family: sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
.note { color: #666; font-size: 0.85em; }
figure.plot { margin: 16px 0; overflow-x: auto; } figure.plot figcaption { color: #555; font-size: 0.9em; margin-bottom: 6px; }
figure.plot svg { max-width: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } caption { text-align: left; font-weight: bold; padding: 4px 0; }
tr.all td { font-weight: bold; background: #fafafa; }
td.missing { color: #999; text-align: center; }
table.provenance td { text-align: left; font-size: 0.85em; }
table.frames td, table.frames th { text-align: center; vertical-align: middle; }
img.frame { image-rendering: pixelated; display: block; }
div.colorbar { display: flex; align-items: stretch; gap: 4px; }
img.colorbar { display: block; border: 1px solid #ccc; }
div.colorbar .ticks { display: flex; flex-direction: column; justify-content: space-between; text-align: left; font-size: 0.75em; line-height: 1; }
dl.defs dt { font-weight: bold; margin-top: 6px; } dl.defs dd { margin-left: 16px; }
`;

/**
 * A small self-check run by the browser: counts plots holding rendered marks, frame images that decoded and colour
 * bars whose image decoded beside their three ticks, and records the outcome on <body data-report-check="...">
 * (read by the headless-browser test).
 */
const CHECK_SCRIPT = `
(function () {
  function check() {
    var figures = document.querySelectorAll('figure.plot');
    var plots = 0;
    figures.forEach(function (f) {
      var svg = f.querySelector('svg');
      if (svg && svg.querySelectorAll('path, line, rect, circle').length > 0 && svg.getBBox().width > 0) plots++;
    });
    var images = document.querySelectorAll('img.frame');
    var decoded = 0;
    images.forEach(function (img) { if (img.complete && img.naturalWidth > 0) decoded++; });
    var bars = document.querySelectorAll('div.colorbar');
    var barsShown = 0;
    bars.forEach(function (bar) {
      var img = bar.querySelector('img.colorbar');
      if (img && img.complete && img.naturalWidth > 0 && bar.querySelectorAll('.tick').length === 3) barsShown++;
    });
    document.body.setAttribute('data-report-check', JSON.stringify({
      figures: figures.length, plots: plots, images: images.length, decoded: decoded, bars: bars.length, barsShown: barsShown
    }));
  }
  if (document.readyState === 'complete') check(); else window.addEventListener('load', check);
})();
`;

/** Renders the whole report page. */
export async function renderReport(saved: SavedResults, options: ReportOptions = {}): Promise<string> {
  const { plots, omitted } = await reportFigures(saved, options);
  const { result } = saved;
  const figure = (p: Plot) =>
    `<figure class="plot" data-plot="${p.id}"><h3>${escapeHtml(p.title)}</h3><figcaption>${escapeHtml(p.caption)}</figcaption>\n${p.svg}\n</figure>`;
  const note = (o: OmittedPlot) =>
    `<p class="note omitted" data-omitted-plot="${o.id}">${escapeHtml(o.title)}: not drawn, ${escapeHtml(o.reason)}.</p>`;
  /** The figures, then the notes of the omitted plots, whose id passes `pick`. */
  const section = (pick: (id: string) => boolean) =>
    [...plots.filter((p) => pick(p.id)).map(figure), ...omitted.filter((o) => pick(o.id)).map(note)].join('\n');
  const trajectories = Math.max(0, ...result.rows.map((r) => r.frames));
  const conventionNote =
    result.convention === 'lola'
      ? 'NRMSE/VRMSE use epsilon 1e-6 (reference emulation code).'
      : 'NRMSE/VRMSE use epsilon 1e-7 (The Well).';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(saved.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(saved.title)}</h1>
<p class="note">Models: ${result.models.map(escapeHtml).join(', ')} &middot; fields: ${result.fields.map(escapeHtml).join(', ')} &middot;
lead times ${result.leads[0] ?? '\u2013'}\u2013${result.leads[result.leads.length - 1] ?? '\u2013'}${saved.dt !== undefined ? ` (steps of \u0394t = ${Number(saved.dt.toPrecision(4))}, so up to t = ${Number(((result.leads[result.leads.length - 1] ?? 0) * saved.dt).toPrecision(4))})` : ''} &middot; up to ${trajectories} trajectories per lead time &middot; ${conventionNote}</p>

<h2>Summary by lead-time band</h2>
${bandTables(saved, options.tableMetrics ?? DEFAULT_TABLE_METRICS)}

<h2>Errors vs lead time</h2>
${section((id) => id.startsWith('error-'))}

<h2>Ensemble calibration</h2>
${section((id) => id === 'spread-skill')}

<h2>Spectra</h2>
${section((id) => id === 'power-spectra' || id === 'spectral-error-bands')}

${residualTable(saved, section((id) => id === 'pde-residual'))}

<h2>Frames</h2>
${frameSection(saved, options.frameSize ?? 128)}

<h2>Training</h2>
${saved.curves === undefined ? '<p class="note">No training curves: the results name no training runs.</p>' : section((id) => id === 'training-curves')}

<h2>Provenance</h2>
${provenanceSection(saved.provenance)}

<h2>Definitions</h2>
<dl class="defs">
<dt>MSE, RMSE, NRMSE, VRMSE, L-infinity, Pearson r, binned spectral MSE/NMSE</dt><dd>The Well's definitions on the ensemble mean, per frame (spatial reductions), then averaged over trajectories.</dd>
<dt>spread, skill, spread/skill</dt><dd>spread = sqrt((M+1)/(M-1) mean (member - mean)^2); skill = RMSE of the ensemble mean; ratio (spread + 0.001) / (skill + 0.001) per frame, undefined (${MISSING_CELL}) for deterministic models (one member).</dd>
<dt>CRPS</dt><dd>Fair ensemble CRPS per grid point, averaged over the grid.</dd>
<dt>power / coherence errors</dt><dd>Reference emulation code's relative power-spectrum and coherence errors in log-spaced bands.</dd>
<dt>conservation</dt><dd>1 - sum(ensemble mean) / sum(truth).</dd>
<dt>Wasserstein-1</dt><dd>Exact W1 between the truth's values and all members' values of the frame.</dd>
<dt>PDE residual</dt><dd>Per equation, the grid mean of the squared finite-difference residual of each member's state (two-frame equations: with the member's previous state, at lead 1 the last context state), averaged over members and trajectories; tables and plots show its root. "data": the same on the simulated truth.</dd>
</dl>
<script>${CHECK_SCRIPT}</script>
</body>
</html>
`;
}
