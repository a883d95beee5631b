/**
 * The study report: one self-contained HTML page (inline SVG, no external resource) with the study tables (see
 * src/sinks/metrics/study.ts) and two Vega-Lite plots:
 *
 * - VRMSE against compression rate (log axis), one panel per lead band, one line per model with error bars of
 *   one standard deviation over seeds; shared models (the baselines) as dashed horizontal rules.
 * - spread/skill against lead band, one line per (stochastic model, compression) with error bars over seeds;
 *   1 (calibrated) as a dashed rule.
 */
import type { TopLevelSpec } from 'vega-lite';
import { compressionLabel, formatCell, type StudyTable } from '../metrics/study.js';
import { PLOT_CONFIG, renderSvg, type Plot, type PlotDatum } from './plots.js';
import { escapeHtml, STYLE } from './html.js';

/** Points of a study table: one per (row, band) with a finite mean; `lo`/`hi` are mean -/+ std (mean with one seed). */
export function studyData(table: StudyTable): PlotDatum[] {
  return table.rows.flatMap((r) =>
    table.bands
      .map((band, i) => ({ cell: r.cells[band]!, band, order: i }))
      .filter(({ cell }) => Number.isFinite(cell.mean))
      .map(({ cell, band, order }) => {
        const std = Number.isFinite(cell.std) ? cell.std : 0;
        return {
          model: r.model,
          compression: r.compression ?? 0,
          label: compressionLabel(r.compression),
          series: r.compression === null ? r.model : `${r.model} ${compressionLabel(r.compression)}`,
          band: `lead ${band}`,
          order,
          value: cell.mean,
          lo: cell.mean - std,
          hi: cell.mean + std,
        };
      }),
  );
}

/** The metric against compression rate, one panel per band (see the module header). */
export async function metricVsCompression(table: StudyTable, title = 'VRMSE'): Promise<Plot> {
  const data = studyData(table);
  const perModel = data.filter((d) => d.compression !== 0);
  const shared = data.filter((d) => d.compression === 0);
  const bands = table.bands.map((b) => `lead ${b}`);
  const x = { field: 'compression', type: 'quantitative' as const, scale: { type: 'log' as const }, title: 'compression rate' };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: [...perModel, ...shared] },
    facet: { field: 'band', type: 'nominal', title: null, sort: bands },
    columns: 4,
    spec: {
      width: 210,
      height: 170,
      layer: [
        {
          transform: [{ filter: 'datum.compression > 0' }],
          mark: { type: 'line', point: true },
          encoding: { x, y: { field: 'value', type: 'quantitative', title }, color: { field: 'model', type: 'nominal', title: 'model' } },
        },
        {
          transform: [{ filter: 'datum.compression > 0' }],
          mark: { type: 'rule' },
          encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: { field: 'model', type: 'nominal' } },
        },
        {
          transform: [{ filter: 'datum.compression == 0' }],
          mark: { type: 'rule', strokeDash: [5, 3] },
          encoding: { y: { field: 'value', type: 'quantitative' }, color: { field: 'model', type: 'nominal' } },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: `study-${table.metric}-compression`,
    title: `${title} vs compression rate`,
    caption:
      `Mean over seeds of each evaluation's ${title} (all fields pooled, band mean over frames), bars one standard ` +
      'deviation over seeds; dashed rules: the baselines, which do not depend on the autoencoder.',
    svg: await renderSvg(spec, `study-${table.metric}-compression`),
  };
}

/** Spread/skill per lead band, one line per (model, compression), with the calibrated value 1 drawn. */
export async function spreadSkillByBand(table: StudyTable): Promise<Plot> {
  const data = studyData(table);
  const bands = table.bands.map((b) => `lead ${b}`);
  const x = { field: 'band', type: 'ordinal' as const, sort: bands, title: 'lead-time band' };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: data },
    width: 320,
    height: 200,
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'value', type: 'quantitative', title: 'spread / skill' }, color: { field: 'series', type: 'nominal', title: 'model' } } },
      { mark: { type: 'rule' }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: { field: 'series', type: 'nominal' } } },
      { mark: { type: 'rule', strokeDash: [4, 3], color: '#666' }, encoding: { y: { datum: 1 } } },
    ],
    config: PLOT_CONFIG,
  };
  return {
    id: 'study-spread-skill',
    title: 'Spread / skill by lead band',
    caption: 'Ensemble spread over the error of the ensemble mean, mean over seeds (bars: one standard deviation); 1 (dashed) is calibrated, below 1 over-confident.',
    svg: await renderSvg(spec, 'study-spread-skill'),
  };
}

function tableHtml(table: StudyTable, caption: string): string {
  const head = `<tr><th>model</th><th>compression</th>${table.bands.map((b) => `<th>lead ${escapeHtml(b)}</th>`).join('')}</tr>`;
  const body = table.rows
    .map((r) => `<tr data-model="${escapeHtml(r.model)}"><td>${escapeHtml(r.model)}</td><td>${compressionLabel(r.compression)}</td>${table.bands.map((b) => `<td>${escapeHtml(formatCell(r.cells[b]))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table class="bands" data-metric="${table.metric}"><caption>${escapeHtml(caption)}</caption>\n${head}\n${body}\n</table>`;
}

export interface StudyReportInput {
  title: string;
  /** Lines of context shown under the title (system, data, budgets, seeds). */
  notes: string[];
  vrmse: StudyTable;
  spreadSkill: StudyTable;
}

/** Renders the study report page. A spread/skill table with no row (no stochastic model) gets a note instead of a plot. */
export async function renderStudyReport(input: StudyReportInput): Promise<string> {
  const figure = (p: Plot) =>
    `<figure class="plot" data-plot="${p.id}"><h3>${escapeHtml(p.title)}</h3><figcaption>${escapeHtml(p.caption)}</figcaption>\n${p.svg}\n</figure>`;
  const vrmsePlot = figure(await metricVsCompression(input.vrmse));
  const ssPlot = input.spreadSkill.rows.length > 0 ? figure(await spreadSkillByBand(input.spreadSkill)) : '<p class="note">No stochastic model: no spread/skill to plot.</p>';
  const seeds = input.vrmse.seeds.length;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(input.title)}</h1>
${input.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
<h2>VRMSE by lead-time band</h2>
${tableHtml(input.vrmse, `VRMSE (all fields pooled), mean \u00b1 standard deviation over ${seeds} seed${seeds === 1 ? '' : 's'}`)}
${vrmsePlot}
<h2>Ensemble calibration</h2>
${input.spreadSkill.rows.length > 0 ? tableHtml(input.spreadSkill, 'Spread / skill, mean \u00b1 standard deviation over seeds') : ''}
${ssPlot}
<p class="note">Baselines (compression "-"): persistence repeats the last context state; spatial-mean predicts each field's spatial mean of the true frame (VRMSE 1 up to 1/(2N) by construction). Each evaluation's own report is in its run directory.</p>
</body>
</html>
`;
}
