/**
 * The report's plots, as Vega-Lite specifications rendered to SVG strings in Node (vega's headless SVG renderer,
 * no canvas, no browser, no network). The SVG is inlined into the page, so the report needs no script to draw.
 *
 * A plot function draws the data it is given; given none, renderSvg refuses it (an error naming the plot). The `...Data` functions expose each plot's points so that the report (`reportFigures`)
 * can leave out, with a reason, a plot with nothing to draw: w1 skipped, only deterministic models (no
 * spread / skill), grids too small for an isotropic spectrum or for the low/mid/high bands.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { ALL_FIELDS, type SavedResults } from '../metrics/index.js';
import type { MetricName } from '../metrics/index.js';

export interface Plot {
  /** Stable identifier (used as the figure's data-plot attribute). */
  id: string;
  title: string;
  /** What the plot shows and how to read it. */
  caption: string;
  svg: string;
}

const PANEL = { width: 210, height: 150 };

/**
 * Renders a Vega-Lite spec to an SVG string. Vega's own errors (which it would only log) become an exception
 * naming the plot; its warnings are dropped.
 */
export async function renderSvg(spec: TopLevelSpec, name = 'plot'): Promise<string> {
  const inline = (spec as { data?: { values?: unknown } }).data?.values;
  if (Array.isArray(inline) && inline.length === 0) throw new Error(`plot "${name}": no data to draw`);
  const { spec: vgSpec } = compile(spec);
  const errors: string[] = [];
  const logger = {
    level(_?: number) {
      return arguments.length ? logger : vega.Error;
    },
    error(...args: unknown[]) {
      errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
      return logger;
    },
    warn: () => logger,
    info: () => logger,
    debug: () => logger,
  };
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logger });
  try {
    const svg = await view.toSVG();
    if (errors.length > 0) throw new Error(`plot "${name}": vega failed: ${errors.join('; ')}`);
    return svg;
  } finally {
    view.finalize();
  }
}

/** The Vega-Lite look every report plot shares (fonts, axes, facet headers, legends). */
export const PLOT_CONFIG = {
  font: 'sans-serif',
  axis: { labelFontSize: 10, titleFontSize: 11, grid: true, gridOpacity: 0.5 },
  header: { labelFontSize: 12, labelFontWeight: 'bold' as const },
  legend: { labelFontSize: 11, titleFontSize: 11 },
  view: { stroke: '#bbb' },
};

export const METRIC_LABELS: Partial<Record<MetricName, string>> = {
  mse: 'MSE',
  rmse: 'RMSE',
  nrmse: 'NRMSE',
  vrmse: 'VRMSE',
  linf: 'L-infinity error',
  pearson_r: 'Pearson r',
  spread: 'ensemble spread',
  skill: 'skill (RMSE of the ensemble mean)',
  spread_skill: 'spread / skill',
  crps: 'CRPS (fair)',
  conservation: 'conservation error',
  w1: 'Wasserstein-1',
};

export const metricLabel = (m: MetricName): string => METRIC_LABELS[m] ?? m.replace(/_/g, ' ');

/** Line colours of the models, in `result.models` order; the truth is drawn in TRUTH_COLOR. */
export const MODEL_PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
export const TRUTH_COLOR = '#111111';

/** One colour per model across every figure of a report: the model's place in `result.models` picks it. */
export function modelColors(saved: SavedResults): { domain: string[]; range: string[] } {
  // the results' models, then names that appear only in the PDE residual (the data's own)
  const extra = (saved.result.residual?.models ?? []).filter((m) => !saved.result.models.includes(m));
  const models = [...saved.result.models, ...extra];
  return { domain: [...models], range: models.map((_, i) => MODEL_PALETTE[i % MODEL_PALETTE.length]!) };
}

/** The lead-time axis title: steps, with the physical time of one step when the results know it. */
export function leadTitle(saved: SavedResults): string {
  return saved.dt !== undefined ? `lead time (steps of Δt = ${Number(saved.dt.toPrecision(4))})` : 'lead time (steps)';
}

/** One data point of a plot: named values, as Vega-Lite reads them. */
export type PlotDatum = Record<string, string | number>;

/**
 * Per-lead rows of every field and of all fields pooled, flattened for plotting; non-finite means (a metric
 * undefined for a model, e.g. spread_skill of a deterministic one, or skipped, e.g. w1 with skipW1) are left out.
 */
export function leadData(saved: SavedResults, metric: MetricName): PlotDatum[] {
  const rows = [...saved.result.rows, ...saved.aggregates.leadsOverFields];
  return rows
    .filter((r) => Number.isFinite(r.metrics[metric].mean))
    .map((r) => ({ model: r.model, field: r.field, lead: r.lead, value: r.metrics[metric].mean }));
}

const fieldSort = (saved: SavedResults): string[] => [...saved.result.fields, ALL_FIELDS];

/** A metric against lead time, one panel per field (and "all"), one line per model. */
export async function errorVsLead(saved: SavedResults, metric: MetricName): Promise<Plot> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: leadData(saved, metric) },
    facet: { field: 'field', type: 'nominal', title: null, sort: fieldSort(saved) },
    columns: 4,
    spec: {
      ...PANEL,
      mark: { type: 'line', point: saved.result.leads.length <= 30 },
      encoding: {
        x: { field: 'lead', type: 'quantitative', title: leadTitle(saved) },
        y: { field: 'value', type: 'quantitative', title: metricLabel(metric) },
        color: { field: 'model', type: 'nominal', title: 'model', sort: saved.result.models, scale: modelColors(saved) },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: `error-${metric}`,
    title: `${metricLabel(metric)} vs lead time`,
    caption: `Mean over trajectories of the per-frame ${metricLabel(metric)}, per field and for all fields pooled.`,
    svg: await renderSvg(spec, `error-${metric}`),
  };
}

/** Spread/skill against lead time, with the calibrated value 1 drawn as a rule. */
export async function spreadSkillVsLead(saved: SavedResults): Promise<Plot> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: leadData(saved, 'spread_skill') },
    facet: { field: 'field', type: 'nominal', title: null, sort: fieldSort(saved) },
    columns: 4,
    spec: {
      ...PANEL,
      layer: [
        {
          mark: { type: 'line', point: saved.result.leads.length <= 30 },
          encoding: {
            x: { field: 'lead', type: 'quantitative', title: leadTitle(saved) },
            y: { field: 'value', type: 'quantitative', title: 'spread / skill' },
            color: { field: 'model', type: 'nominal', title: 'model', sort: saved.result.models, scale: modelColors(saved) },
          },
        },
        {
          mark: { type: 'rule', strokeDash: [4, 3], color: '#666' },
          encoding: { y: { datum: 1 } },
        },
      ],
    },
    config: PLOT_CONFIG,
  };
  return {
    id: 'spread-skill',
    title: 'Spread / skill vs lead time',
    caption:
      'Per-frame (spread + 0.001) / (RMSE + 0.001) averaged over trajectories; 1 (dashed) is a calibrated ensemble, ' +
      'below 1 over-confident. Undefined for deterministic models (one member), which are not drawn.',
    svg: await renderSvg(spec, 'spread-skill'),
  };
}

/** The snapshot leads present in the data, or up to three spread over the lead range. */
export function spectrumLeads(saved: SavedResults): number[] {
  const leads = saved.result.leads;
  const fromSnapshots = [...new Set(saved.result.snapshots.map((s) => s.lead))].sort((a, b) => a - b);
  if (fromSnapshots.length > 0) return fromSnapshots;
  if (leads.length <= 3) return leads;
  return [leads[0]!, leads[Math.floor(leads.length / 2)]!, leads[leads.length - 1]!];
}

/**
 * The points of the power-spectra plot at the given leads: positive powers only (log scale). Empty when the grid
 * has no isotropic bin (a single-cell axis, see isotropicBinning).
 */
export function powerSpectraData(saved: SavedResults, leads: readonly number[] = spectrumLeads(saved)): PlotDatum[] {
  const values: PlotDatum[] = [];
  const truthDone = new Set<string>();
  for (const s of saved.result.spectra) {
    if (!leads.includes(s.lead)) continue;
    const key = `${s.field}\u0000${s.lead}`;
    s.frequencies.forEach((k, i) => {
      const base = { field: s.field, lead: `lead ${s.lead}`, frequency: k };
      if (!truthDone.has(key) && s.truth[i]! > 0) values.push({ ...base, series: 'truth', power: s.truth[i]! });
      if (s.prediction[i]! > 0) values.push({ ...base, series: s.model, power: s.prediction[i]! });
    });
    truthDone.add(key);
  }
  return values;
}

/** Mean isotropic power spectra of truth and prediction, log-log, per field (rows) and lead (columns). */
export async function powerSpectra(saved: SavedResults): Promise<Plot> {
  const leads = spectrumLeads(saved);
  const values = powerSpectraData(saved, leads);
  // A spectrum of one or two bins (e.g. a 2 x 2 grid) is barely a line: mark its points.
  const bins = Math.max(0, ...saved.result.spectra.map((s) => s.frequencies.length));
  const series = ['truth', ...saved.result.models];
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    facet: {
      row: { field: 'field', type: 'nominal', title: null, sort: saved.result.fields },
      column: { field: 'lead', type: 'nominal', title: null, sort: leads.map((l) => `lead ${l}`) },
    },
    spec: {
      width: 180,
      height: 120,
      mark: { type: 'line', strokeWidth: 1.5, point: bins <= 2 },
      encoding: {
        x: { field: 'frequency', type: 'quantitative', scale: { type: 'log' }, title: 'frequency (cycles / cell)' },
        y: { field: 'power', type: 'quantitative', scale: { type: 'log' }, title: 'power' },
        color: {
          field: 'series',
          type: 'nominal',
          title: null,
          sort: series,
          scale: { domain: series, range: [TRUTH_COLOR, ...modelColors(saved).range] },
        },
        strokeDash: { field: 'series', type: 'nominal', sort: series, title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: 'power-spectra',
    title: 'Power spectra: truth vs prediction',
    caption:
      'Isotropic power spectra (orthonormal FFT, DC dropped) averaged over trajectories; predictions average ' +
      'the members\u2019 spectra. Missing high frequencies mean over-smoothed emulations.',
    svg: await renderSvg(spec, 'power-spectra'),
  };
}

/**
 * The points of the spectral-error-bands plot: finite positive psd and coherence errors of the low, mid and high
 * bands (log axis), all fields pooled. Empty on grids whose bins all fall in the corner band or in none (2 x 2, 1 x N).
 */
export function spectralErrorData(saved: SavedResults): PlotDatum[] {
  const values: PlotDatum[] = [];
  for (const r of saved.aggregates.leadsOverFields) {
    for (const band of ['low', 'mid', 'high'] as const) {
      for (const kind of ['psd', 'coherence'] as const) {
        const v = r.metrics[`${kind}_error_${band}`].mean;
        if (Number.isFinite(v) && v > 0) values.push({ model: r.model, lead: r.lead, band, kind: `${kind} error`, value: v });
      }
    }
  }
  return values;
}

/** Spectral power errors per band (low / mid / high) against lead time, all fields pooled. */
export async function spectralErrorBands(saved: SavedResults): Promise<Plot> {
  const values = spectralErrorData(saved);
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    facet: {
      row: { field: 'kind', type: 'nominal', title: null },
      column: { field: 'band', type: 'nominal', title: null, sort: ['low', 'mid', 'high'] },
    },
    spec: {
      ...PANEL,
      mark: { type: 'line', point: saved.result.leads.length <= 30 },
      encoding: {
        x: { field: 'lead', type: 'quantitative', title: leadTitle(saved) },
        y: { field: 'value', type: 'quantitative', title: 'error (log)', scale: { type: 'log' } },
        color: { field: 'model', type: 'nominal', title: 'model', sort: saved.result.models, scale: modelColors(saved) },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: 'spectral-error-bands',
    title: 'Spectral errors per frequency band vs lead time (all fields)',
    caption:
      'sqrt of the mean over a band\u2019s isotropic bins of (1 - P_pred / P_truth)^2 (power) and of ' +
      '(1 - C / sqrt(P_truth P_pred))^2 (coherence); bands log-spaced up to 0.5 cycles per cell. Log axis, one ' +
      'scale per panel, so that the small low-band errors are not flattened by the high band.',
    svg: await renderSvg(spec, 'spectral-error-bands'),
  };
}

/** The points of the training-curves plot: positive loss, gradient norm and learning rate per run and step. */
export function trainingCurveData(saved: SavedResults): PlotDatum[] {
  const values: PlotDatum[] = [];
  for (const c of saved.curves ?? []) {
    const series = [['loss', c.loss], ['gradient norm', c.gradNorm], ['learning rate', c.lr]] as const;
    for (const [quantity, ys] of series) {
      c.step.forEach((step, i) => {
        const v = ys[i]!;
        if (Number.isFinite(v) && v > 0) values.push({ run: c.run, quantity, step, value: v });
      });
    }
  }
  return values;
}

/** Training loss, gradient norm and learning rate against the step, one line per run (coloured as its model). */
export async function trainingCurves(saved: SavedResults): Promise<Plot> {
  const runs = (saved.curves ?? []).map((c) => c.run);
  const colors = modelColors(saved);
  const range = runs.map((r, i) => {
    const k = colors.domain.indexOf(r);
    return k >= 0 ? colors.range[k]! : MODEL_PALETTE[(colors.domain.length + i) % MODEL_PALETTE.length]!;
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: trainingCurveData(saved) },
    facet: { column: { field: 'quantity', type: 'nominal', title: null, sort: ['loss', 'gradient norm', 'learning rate'] } },
    spec: {
      ...PANEL,
      mark: { type: 'line', strokeWidth: 1.2 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'training step' },
        y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: null },
        color: { field: 'run', type: 'nominal', title: 'run', sort: runs, scale: { domain: runs, range } },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: 'training-curves',
    title: 'Training curves',
    caption:
      'Per-step training loss, global gradient norm (before clipping) and learning rate of the runs evaluated, ' +
      'as logged (train.logEvery); log axes. Losses of different models are different quantities.',
    svg: await renderSvg(spec, 'training-curves'),
  };
}

/** Per-lead RMS PDE residual (sqrt of the mean square over trajectories) per model and equation, where computed. */
export function residualData(saved: SavedResults): PlotDatum[] {
  const residual = saved.result.residual;
  if (!residual) return [];
  return residual.rows
    .filter((r) => Number.isFinite(r.meanSquare.mean) && r.meanSquare.mean > 0)
    .map((r) => ({ model: r.model, equation: r.equation, lead: r.lead, value: Math.sqrt(r.meanSquare.mean) }));
}

/** The RMS PDE residual against lead time, one panel per equation, one line per model (the data's included). */
export async function residualVsLead(saved: SavedResults): Promise<Plot> {
  const residual = saved.result.residual!;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: residualData(saved) },
    facet: { field: 'equation', type: 'nominal', title: null, sort: residual.equations },
    columns: 4,
    spec: {
      ...PANEL,
      mark: { type: 'line', point: saved.result.leads.length <= 30 },
      encoding: {
        x: { field: 'lead', type: 'quantitative', title: leadTitle(saved) },
        y: { field: 'value', type: 'quantitative', title: 'RMS residual', scale: { type: 'log' } },
        color: { field: 'model', type: 'nominal', title: 'model', sort: residual.models, scale: modelColors(saved) },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: PLOT_CONFIG,
  };
  return {
    id: 'pde-residual',
    title: `PDE residual (${residual.system}) vs lead time`,
    caption:
      'Root of the mean over trajectories (and members) of the grid-mean squared residual of each equation, log scale. ' +
      '"data" is the simulated truth\'s own residual: the discretisation error, the level a perfect emulator would reach.',
    svg: await renderSvg(spec, 'pde-residual'),
  };
}
