/**
 * The study table: a metric by lead-time band, mean and standard deviation over seeds, per compression rate and
 * model, in the layout of the reference study's main table (rows: model x compression; columns: lead bands).
 *
 * Input: one saved evaluation (`SavedResults`) per (compression, seed). Each cell takes, from every seed's
 * evaluation of that compression, the band's mean over frames of the metric with all fields pooled (the band row
 * of field "all", as the evaluation report shows it), then their mean and their sample standard deviation over
 * seeds (n - 1 in the denominator; NaN with one seed). Models listed as `shared` (the baselines, which act on the
 * truth and do not depend on the autoencoder or the seed) get one row with no compression, pooled over every
 * evaluation. A model whose metric is undefined everywhere (spread/skill of a deterministic model) gets no row.
 */
import { ALL_FIELDS } from './aggregate.js';
import type { MetricName } from './frame.js';
import type { SavedResults } from './results.js';

/** One evaluation of the study: the results of one compression rate and seed. */
export interface StudyEvaluation {
  /** Compression rate of the autoencoder (physical values per latent value), e.g. 20 for 20x. */
  compression: number;
  seed: number;
  saved: SavedResults;
}

/** One cell: a band's metric over seeds. */
export interface StudyCell {
  mean: number;
  /** Sample standard deviation over seeds (NaN with fewer than two). */
  std: number;
  /** One value per seed (per evaluation, for shared models), in seed order. */
  values: number[];
}

export interface StudyRow {
  model: string;
  /** The compression rate, or null for a shared model (a baseline). */
  compression: number | null;
  cells: Record<string, StudyCell>;
}

export interface StudyTable {
  metric: MetricName;
  /** Band labels in order (e.g. "1-10"). */
  bands: string[];
  seeds: number[];
  compressions: number[];
  rows: StudyRow[];
}

function cellOf(values: number[]): StudyCell {
  const finite = values.filter(Number.isFinite);
  const n = finite.length;
  const mean = n > 0 ? finite.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(finite.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, std, values };
}

/** The value of `metric` for `model` in `band` (all fields pooled), NaN when the evaluation has none. */
function bandValue(saved: SavedResults, model: string, band: string, metric: MetricName): number {
  const row = saved.aggregates.bandRows.find((r) => r.model === model && r.field === ALL_FIELDS && r.band === band);
  return row ? row.metrics[metric].mean : NaN;
}

/**
 * Builds the table of `metric` over the evaluations (see the module header). Models keep their order of first
 * appearance; rows are grouped by compression (ascending), shared models last. Throws on evaluations with
 * different lead bands, or on two evaluations of one (compression, seed).
 */
export function studyTable(evaluations: readonly StudyEvaluation[], metric: MetricName, options: { shared?: readonly string[] } = {}): StudyTable {
  if (evaluations.length === 0) throw new Error('studyTable: no evaluation to tabulate');
  const bandsOf = (e: StudyEvaluation) => e.saved.aggregates.bands.map((b) => b.label ?? `${b.from}-${b.to}`);
  const bands = bandsOf(evaluations[0]!);
  const seen = new Set<string>();
  for (const e of evaluations) {
    if (bandsOf(e).join() !== bands.join()) throw new Error(`studyTable: compression ${e.compression}, seed ${e.seed} has bands [${bandsOf(e)}], the first evaluation [${bands}]`);
    const key = `${e.compression}/${e.seed}`;
    if (seen.has(key)) throw new Error(`studyTable: two evaluations of compression ${e.compression}, seed ${e.seed}`);
    seen.add(key);
  }
  const shared = new Set(options.shared ?? []);
  const compressions = [...new Set(evaluations.map((e) => e.compression))].sort((a, b) => a - b);
  const seeds = [...new Set(evaluations.map((e) => e.seed))].sort((a, b) => a - b);
  const models = [...new Set(evaluations.flatMap((e) => e.saved.result.models))];
  const bySeed = (list: StudyEvaluation[]) => [...list].sort((a, b) => a.seed - b.seed || a.compression - b.compression);
  const rows: StudyRow[] = [];
  const add = (model: string, compression: number | null, list: StudyEvaluation[]) => {
    const cells = Object.fromEntries(bands.map((band) => [band, cellOf(bySeed(list).map((e) => bandValue(e.saved, model, band, metric)))]));
    if (Object.values(cells).some((c) => Number.isFinite(c.mean))) rows.push({ model, compression, cells });
  };
  for (const compression of compressions) {
    const list = evaluations.filter((e) => e.compression === compression);
    for (const model of models) if (!shared.has(model)) add(model, compression, list);
  }
  for (const model of models) if (shared.has(model)) add(model, null, [...evaluations]);
  return { metric, bands, seeds, compressions, rows };
}

/** "20x" (or "-" for a shared row). */
export const compressionLabel = (c: number | null): string => (c === null ? '-' : `${Number.isInteger(c) ? c : c.toPrecision(3)}x`);

/** "0.412 ± 0.031" (or "0.412" with one seed, "-" when undefined). */
export function formatCell(cell: StudyCell | undefined, digits = 3): string {
  if (!cell || !Number.isFinite(cell.mean)) return '-';
  return Number.isFinite(cell.std) ? `${cell.mean.toFixed(digits)} ± ${cell.std.toFixed(digits)}` : cell.mean.toFixed(digits);
}

/** The table as Markdown: | model | compression | lead <band> ... |. */
export function formatStudyTable(table: StudyTable, title?: string): string {
  const head = `| model | compression | ${table.bands.map((b) => `lead ${b}`).join(' | ')} |`;
  const rule = `|---|---|${table.bands.map(() => '---|').join('')}`;
  const body = table.rows.map((r) => `| ${r.model} | ${compressionLabel(r.compression)} | ${table.bands.map((b) => formatCell(r.cells[b])).join(' | ')} |`);
  return [...(title ? [title, ''] : []), head, rule, ...body].join('\n');
}
