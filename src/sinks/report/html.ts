/**
 * The report page: one self-contained HTML file (plots as inline SVG, frames as base64 PNG, styles inline, no
 * external resource of any kind), so it opens offline and can be mailed or archived as is.
 */
import { encodePng, snapshotPanels, PANEL_NAMES } from './images.js';
import { errorVsLead, metricLabel, powerSpectra, spectralErrorBands, spreadSkillVsLead, type Plot } from './plots.js';
import { ALL_FIELDS, type MetricName, type SavedResults } from '../metrics/index.js';

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

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const fmt = (v: number): string => {
  if (!Number.isFinite(v)) return '\u2013';
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
};

/** Every plot of the report, rendered. */
export async function reportPlots(saved: SavedResults, options: ReportOptions = {}): Promise<Plot[]> {
  if (saved.result.rows.length === 0) throw new Error('report: the results hold no scored frame, nothing to plot');
  const plots: Plot[] = [];
  for (const metric of options.errorMetrics ?? DEFAULT_ERROR_METRICS) plots.push(await errorVsLead(saved, metric));
  plots.push(await spreadSkillVsLead(saved));
  plots.push(await powerSpectra(saved));
  plots.push(await spectralErrorBands(saved));
  return plots;
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
              return `<td>${row ? fmt(row.metrics[metric].mean) : '\u2013'}</td>`;
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

function frameSection(saved: SavedResults, size: number): string {
  const { snapshots } = saved.result;
  if (snapshots.length === 0) return '<p>No snapshot frames were recorded.</p>';
  const parts: string[] = [];
  for (const model of saved.result.models) {
    const ofModel = snapshots.filter((s) => s.model === model);
    if (ofModel.length === 0) continue;
    const rows = ofModel.map((s) => {
      const panels = snapshotPanels(s, size);
      const imgs = PANEL_NAMES.map((name) => {
        const p = panels[name];
        const src = `data:image/png;base64,${encodePng(p).toString('base64')}`;
        const alt = `${name} of ${s.field} at lead ${s.lead} (${model})`;
        return `<td><img class="frame" data-panel="${name}" src="${src}" width="${p.width}" height="${p.height}" alt="${escapeHtml(alt)}"></td>`;
      });
      const range = `values ${fmt(panels.range[0])} .. ${fmt(panels.range[1])}; error \u00b1${fmt(panels.errorRange)}`;
      return `<tr><th>${escapeHtml(s.field)}<br>lead ${s.lead}<br><span class="note">${range}</span></th>${imgs.join('')}</tr>`;
    });
    parts.push(
      `<h3>${escapeHtml(model)} <span class="note">(trajectory ${escapeHtml(ofModel[0]!.trajectory)})</span></h3>\n` +
        `<table class="frames"><tr><th></th>${PANEL_NAMES.map((n) => `<th>${n === 'mean' ? 'ensemble mean' : n === 'member' ? 'member 1' : n === 'error' ? 'error (mean \u2212 truth)' : n}</th>`).join('')}</tr>\n${rows.join('\n')}</table>`,
    );
  }
  return parts.join('\n') + '\n<p class="note">Colours: viridis over the range shared by truth, mean and member; errors red (over) / blue (under), symmetric range.</p>';
}

const STYLE = `
body { font-family: sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
.note { color: #666; font-size: 0.85em; }
figure.plot { margin: 16px 0; overflow-x: auto; } figure.plot figcaption { color: #555; font-size: 0.9em; margin-bottom: 6px; }
figure.plot svg { max-width: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } caption { text-align: left; font-weight: bold; padding: 4px 0; }
tr.all td { font-weight: bold; background: #fafafa; }
table.frames td, table.frames th { text-align: center; vertical-align: middle; }
img.frame { image-rendering: pixelated; display: block; }
dl.defs dt { font-weight: bold; margin-top: 6px; } dl.defs dd { margin-left: 16px; }
`;

/**
 * A small self-check run by the browser: counts plots holding rendered marks and frame images that decoded, and
 * records the outcome on <body data-report-check="..."> (read by the headless-browser test).
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
    document.body.setAttribute('data-report-check', JSON.stringify({
      figures: figures.length, plots: plots, images: images.length, decoded: decoded
    }));
  }
  if (document.readyState === 'complete') check(); else window.addEventListener('load', check);
})();
`;

/** Renders the whole report page. */
export async function renderReport(saved: SavedResults, options: ReportOptions = {}): Promise<string> {
  const plots = await reportPlots(saved, options);
  const { result } = saved;
  const figure = (p: Plot) =>
    `<figure class="plot" data-plot="${p.id}"><h3>${escapeHtml(p.title)}</h3><figcaption>${escapeHtml(p.caption)}</figcaption>\n${p.svg}\n</figure>`;
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
lead times ${result.leads[0] ?? '\u2013'}\u2013${result.leads[result.leads.length - 1] ?? '\u2013'} &middot; up to ${trajectories} trajectories per lead time &middot; ${conventionNote}</p>

<h2>Summary by lead-time band</h2>
${bandTables(saved, options.tableMetrics ?? DEFAULT_TABLE_METRICS)}

<h2>Errors vs lead time</h2>
${plots.filter((p) => p.id.startsWith('error-')).map(figure).join('\n')}

<h2>Ensemble calibration</h2>
${plots.filter((p) => p.id === 'spread-skill').map(figure).join('\n')}

<h2>Spectra</h2>
${plots.filter((p) => p.id === 'power-spectra' || p.id === 'spectral-error-bands').map(figure).join('\n')}

<h2>Frames</h2>
${frameSection(saved, options.frameSize ?? 128)}

<h2>Definitions</h2>
<dl class="defs">
<dt>MSE, RMSE, NRMSE, VRMSE, L-infinity, Pearson r, binned spectral MSE/NMSE</dt><dd>The Well's definitions on the ensemble mean, per frame (spatial reductions), then averaged over trajectories.</dd>
<dt>spread, skill, spread/skill</dt><dd>spread = sqrt((M+1)/(M-1) mean (member - mean)^2); skill = RMSE of the ensemble mean; ratio (spread + 0.001) / (skill + 0.001) per frame.</dd>
<dt>CRPS</dt><dd>Fair ensemble CRPS per grid point, averaged over the grid.</dd>
<dt>power / coherence errors</dt><dd>Reference emulation code's relative power-spectrum and coherence errors in log-spaced bands.</dd>
<dt>conservation</dt><dd>1 - sum(ensemble mean) / sum(truth).</dd>
<dt>Wasserstein-1</dt><dd>Exact W1 between the truth's values and all members' values of the frame.</dd>
</dl>
<script>${CHECK_SCRIPT}</script>
</body>
</html>
`;
}
