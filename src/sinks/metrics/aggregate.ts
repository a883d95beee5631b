/**
 * Aggregation of per-lead results into lead-time bands (e.g. 1-20 / 21-60 / 61-100) and over fields. Both pool
 * the per-frame values: a band's mean is the mean over every frame whose lead lies in the band, and the "all"
 * field pools every field, which for complete rollouts equals the mean over fields of the per-field means (the
 * way the reference tables average over fields and lead times).
 */
import { METRICS, type MetricName } from './frame.js';
import type { FrameSnapshot, LeadRow, MetricSummary, MetricsResult, SpectrumRow } from './reducer.js';
import { DATA_MODEL, sortResidualRows, type ResidualBandRow, type ResidualResult, type ResidualRow } from './residual.js';

/** An inclusive range of lead times. */
export interface LeadBand {
  from: number;
  to: number;
  /** Display name; default "from-to". */
  label?: string;
}

export const DEFAULT_BANDS: readonly LeadBand[] = [
  { from: 1, to: 20 },
  { from: 21, to: 60 },
  { from: 61, to: 100 },
];

/** The name a field takes when it stands for all fields pooled. */
export const ALL_FIELDS = 'all';

export interface BandRow {
  model: string;
  field: string;
  band: string;
  from: number;
  to: number;
  frames: number;
  metrics: Record<MetricName, MetricSummary>;
}

export interface Aggregates {
  bands: LeadBand[];
  /** Per lead time, all fields pooled (field = "all"). */
  leadsOverFields: LeadRow[];
  /** Per band, for every field and for "all". */
  bandRows: BandRow[];
  /** The PDE residual per band and equation, where the result has it. */
  residualBands?: ResidualBandRow[];
}

export const bandLabel = (band: LeadBand): string => band.label ?? `${band.from}-${band.to}`;

/** Parses "1-20,21-60,61-100" into bands; throws a readable error on anything else. */
export function parseBands(text: string): LeadBand[] {
  return text.split(',').map((part) => {
    const match = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(part);
    if (!match) throw new Error(`lead bands: "${part}" is not of the form FROM-TO (e.g. 1-20,21-60,61-100)`);
    const from = Number(match[1]);
    const to = Number(match[2]);
    if (to < from) throw new Error(`lead bands: "${part}" ends before it starts`);
    return { from, to };
  });
}

/**
 * Pools per-frame summaries (mean, population std, count) into the summary of their union, combining means and
 * squared deviations pairwise (Chan et al.), which stays accurate when the spread is tiny next to the mean.
 */
export function poolSummaries(parts: readonly MetricSummary[]): MetricSummary {
  let count = 0;
  let mean = 0;
  let m2 = 0;
  for (const s of parts) {
    if (s.count === 0) continue;
    const total = count + s.count;
    const delta = s.mean - mean;
    mean += (delta * s.count) / total;
    m2 += s.std * s.std * s.count + (delta * delta * count * s.count) / total;
    count = total;
  }
  if (count === 0) return { mean: NaN, std: NaN, count: 0 };
  return { mean, std: Math.sqrt(m2 / count), count };
}

function poolRows(rows: readonly LeadRow[]): { frames: number; metrics: Record<MetricName, MetricSummary> } {
  const metrics = {} as Record<MetricName, MetricSummary>;
  for (const name of METRICS) metrics[name] = poolSummaries(rows.map((r) => r.metrics[name]));
  return { frames: rows.reduce((s, r) => s + r.frames, 0), metrics };
}

/** Lead-band and over-field aggregates of a reduction. Bands with no lead time in the data are left out. */
export function aggregate(result: MetricsResult, bands: readonly LeadBand[] = DEFAULT_BANDS): Aggregates {
  const leadsOverFields: LeadRow[] = [];
  const bandRows: BandRow[] = [];
  for (const model of result.models) {
    const ofModel = result.rows.filter((r) => r.model === model);
    for (const lead of result.leads) {
      const rows = ofModel.filter((r) => r.lead === lead);
      if (rows.length > 0) leadsOverFields.push({ model, field: ALL_FIELDS, lead, ...poolRows(rows) });
    }
    for (const field of [...result.fields, ALL_FIELDS]) {
      const ofField = field === ALL_FIELDS ? ofModel : ofModel.filter((r) => r.field === field);
      for (const band of bands) {
        const rows = ofField.filter((r) => r.lead >= band.from && r.lead <= band.to);
        if (rows.length === 0) continue;
        bandRows.push({ model, field, band: bandLabel(band), from: band.from, to: band.to, ...poolRows(rows) });
      }
    }
  }
  const residual = result.residual ? { residualBands: residualBands(result.residual, bands) } : {};
  return { bands: [...bands], leadsOverFields, bandRows, ...residual };
}

/**
 * Merges reductions of disjoint sets of trajectories (e.g. evaluation shards) into the reduction of their union:
 * per-frame summaries are pooled by count, mean spectra weighted by frames, and the first snapshot seen for a
 * (model, field, lead) is kept. Equal to reducing all chunks at once up to floating-point rounding.
 */
export function mergeResults(parts: readonly MetricsResult[]): MetricsResult {
  if (parts.length === 0) throw new Error('mergeResults: nothing to merge');
  const convention = parts[0]!.convention;
  const odd = parts.findIndex((p) => p.convention !== convention);
  if (odd >= 0) throw new Error(`mergeResults: part ${odd} uses convention "${parts[odd]!.convention}", part 0 "${convention}"`);
  const withResidual = parts.filter((p) => p.residual).length;
  if (withResidual !== 0 && withResidual !== parts.length) {
    throw new Error(`mergeResults: ${withResidual} of ${parts.length} parts hold the PDE residual; evaluate every shard with the same residual setting`);
  }
  const key = (r: { model: string; field: string; lead: number }) => `${r.model}\u0000${r.field}\u0000${r.lead}`;
  const rows = new Map<string, LeadRow[]>();
  const spectra = new Map<string, { row: SpectrumRow; frames: number }[]>();
  const snapshots = new Map<string, FrameSnapshot>();
  for (const part of parts) {
    const framesOf = new Map(part.rows.map((r) => [key(r), r.frames]));
    for (const r of part.rows) rows.set(key(r), [...(rows.get(key(r)) ?? []), r]);
    for (const s of part.spectra) {
      const k = key(s);
      const list = spectra.get(k) ?? [];
      const first = list[0]?.row;
      if (first && first.frequencies.length !== s.frequencies.length) {
        throw new Error(`mergeResults: ${s.model}/${s.field}/lead ${s.lead}: spectra of different grids cannot be merged`);
      }
      list.push({ row: s, frames: framesOf.get(k) ?? 0 });
      spectra.set(k, list);
    }
    for (const s of part.snapshots) if (!snapshots.has(key(s))) snapshots.set(key(s), s);
  }
  const models = [...new Set(parts.flatMap((p) => p.models))];
  const fields = [...new Set(parts.flatMap((p) => p.fields))];
  const order = (a: { model: string; field: string; lead: number }, b: typeof a): number =>
    models.indexOf(a.model) - models.indexOf(b.model) || fields.indexOf(a.field) - fields.indexOf(b.field) || a.lead - b.lead;
  const mergedRows: LeadRow[] = [...rows.values()].map((list) => ({ model: list[0]!.model, field: list[0]!.field, lead: list[0]!.lead, ...poolRows(list) }));
  const mergedSpectra: SpectrumRow[] = [...spectra.values()].map((list) => {
    const total = list.reduce((s, x) => s + x.frames, 0) || 1;
    const weighted = (pick: (r: SpectrumRow) => number[]) =>
      pick(list[0]!.row).map((_, i) => list.reduce((s, x) => s + x.frames * pick(x.row)[i]!, 0) / total);
    return { ...list[0]!.row, truth: weighted((r) => r.truth), prediction: weighted((r) => r.prediction) };
  });
  return {
    schema: 'wellspring-metrics/1',
    convention,
    metrics: [...METRICS],
    models,
    fields,
    leads: [...new Set(parts.flatMap((p) => p.leads))].sort((a, b) => a - b),
    rows: mergedRows.sort(order),
    spectra: mergedSpectra.sort(order),
    snapshots: [...snapshots.values()].sort(order),
    ...(withResidual ? { residual: mergeResidualResults(parts.map((p) => p.residual!)) } : {}),
  };
}

/** Pools residual rows into lead-time bands (bands with no lead in the data are left out). */
export function residualBands(result: ResidualResult, bands: readonly LeadBand[]): ResidualBandRow[] {
  const out: ResidualBandRow[] = [];
  for (const model of result.models) {
    for (const equation of result.equations) {
      const rows = result.rows.filter((r) => r.model === model && r.equation === equation);
      for (const band of bands) {
        const inBand = rows.filter((r) => r.lead >= band.from && r.lead <= band.to);
        if (inBand.length === 0) continue;
        out.push({ model, equation, band: bandLabel(band), from: band.from, to: band.to, meanSquare: poolSummaries(inBand.map((r) => r.meanSquare)) });
      }
    }
  }
  return out;
}

/** Merges residual reductions of disjoint sets of trajectories (evaluation shards); they must share a system. */
export function mergeResidualResults(parts: readonly ResidualResult[]): ResidualResult {
  if (parts.length === 0) throw new Error('mergeResidualResults: nothing to merge');
  const { system } = parts[0]!;
  const odd = parts.findIndex((p) => p.system !== system);
  if (odd >= 0) throw new Error(`mergeResidualResults: part ${odd} holds the ${parts[odd]!.system} residual, part 0 the ${system} residual`);
  const models = [...new Set(parts.flatMap((p) => p.models))];
  // the data's rows stay last
  if (models.includes(DATA_MODEL)) models.push(...models.splice(models.indexOf(DATA_MODEL), 1));
  const equations = [...new Set(parts.flatMap((p) => p.equations))];
  const groups = new Map<string, ResidualRow[]>();
  for (const p of parts) {
    for (const r of p.rows) {
      const key = `${r.model}\u0000${r.equation}\u0000${r.lead}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
  }
  const rows = [...groups.values()].map((list) => ({ ...list[0]!, meanSquare: poolSummaries(list.map((r) => r.meanSquare)) }));
  return { system, equations, models, rows: sortResidualRows(rows, models, equations) };
}
