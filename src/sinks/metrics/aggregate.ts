/**
 * Aggregation of per-lead results into lead-time bands (e.g. 1-20 / 21-60 / 61-100) and over fields. Both pool
 * the per-frame values: a band's mean is the mean over every frame whose lead lies in the band, and the "all"
 * field pools every field, which for complete rollouts equals the mean over fields of the per-field means (the
 * way the reference tables average over fields and lead times).
 */
import { METRICS, type MetricName } from './frame.js';
import type { LeadRow, MetricSummary, MetricsResult } from './reducer.js';

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

/** Pools per-frame summaries (mean, population std, count) into one. */
export function poolSummaries(parts: readonly MetricSummary[]): MetricSummary {
  let count = 0;
  let sum = 0;
  let sumSq = 0;
  for (const s of parts) {
    if (s.count === 0) continue;
    count += s.count;
    sum += s.mean * s.count;
    sumSq += (s.std * s.std + s.mean * s.mean) * s.count;
  }
  if (count === 0) return { mean: NaN, std: NaN, count: 0 };
  const mean = sum / count;
  return { mean, std: Math.sqrt(Math.max(sumSq / count - mean * mean, 0)), count };
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
  return { bands: [...bands], leadsOverFields, bandRows };
}
