/**
 * The results directory: everything a report needs, written atomically (each file to a temporary name, then
 * renamed), so a crash never leaves a half-written file under a final name.
 *
 * ```
 * <dir>/results.json    schema "wellspring-results/1": title, convention, bands, models, fields, leads, metric
 *                       names, per-lead rows, lead-band and over-field aggregates, mean power spectra; and, when
 *                       known, `provenance` (run name -> provenance record, see sinks/provenance.ts), `curves`
 *                       (training curves of the runs evaluated) and `dt` (physical time of one lead step)
 * <dir>/snapshots.json  schema "wellspring-snapshots/1": 2D frames (truth, ensemble mean, one member) per model,
 *                       field and snapshot lead, as base64 little-endian float32 with their [H, W] shape
 * <dir>/metrics.csv     the long table below, with a header line
 * <dir>/metrics.arrow   the same long table as an Arrow IPC file (schema metadata "wellspring.schema")
 * ```
 *
 * Long table schema (`wellspring-metrics-table/1`), one row per (level, model, field, lead range, metric):
 * | column    | type    | meaning                                                                  |
 * |-----------|---------|--------------------------------------------------------------------------|
 * | level     | Utf8    | "lead" (one lead time) or "band" (a lead-time band)                       |
 * | model     | Utf8    | emulator name                                                             |
 * | field     | Utf8    | channel name, or "all" for all fields pooled                              |
 * | lead_from | Int32   | first lead time of the row (= lead_to for level "lead")                   |
 * | lead_to   | Int32   | last lead time of the row (inclusive)                                     |
 * | metric    | Utf8    | metric name (see METRICS), or "pde_residual" (field: the equation)        |
 * | mean      | Float64 | mean over frames (trajectories x lead times in range) of per-frame values |
 * | std       | Float64 | population standard deviation of those per-frame values                  |
 * | count     | Int32   | number of finite per-frame values pooled                                  |
 * NaN (CSV: empty) where no finite value exists, e.g. an empty spectral band. The PDE residual's rows (where the
 * evaluation computed it) give the mean square residual of one equation; model "data" is the simulated truth's.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RecordBatch, Schema, Table, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { aggregate, DEFAULT_BANDS, type Aggregates, type BandRow, type LeadBand } from './aggregate.js';
import { METRICS, type MetricName } from './frame.js';
import type { FrameSnapshot, LeadRow, MetricSummary, MetricsResult, SpectrumRow } from './reducer.js';
import { writeFileAtomic } from '../../streams/atomic.js';
import { PDE_RESIDUAL, type ResidualBandRow, type ResidualResult } from './residual.js';
import { checkProvenance, type Provenance, type TrainingCurve } from '../provenance.js';

export const RESULTS_FILE = 'results.json';
export const SNAPSHOTS_FILE = 'snapshots.json';
export const CSV_FILE = 'metrics.csv';
export const ARROW_FILE = 'metrics.arrow';
export const TABLE_SCHEMA = 'wellspring-metrics-table/1';

/** A reduction with its aggregates and a title: what a results directory holds and a report shows. */
export interface SavedResults {
  title: string;
  result: MetricsResult;
  aggregates: Aggregates;
  /** Provenance of the evaluation and of the runs it read, by name (e.g. eval, autoencoder, diffusion). */
  provenance?: Record<string, Provenance>;
  /** Training curves of the runs evaluated. */
  curves?: TrainingCurve[];
  /** Physical time between two lead steps (the data's time step), when known. */
  dt?: number;
}

/** What a results file carries besides the metrics (see SavedResults). */
export interface ResultsContext {
  title?: string;
  bands?: readonly LeadBand[];
  provenance?: Record<string, Provenance>;
  curves?: TrainingCurve[];
  dt?: number;
}

/** Aggregates a reduction with the given bands. */
export function summarize(result: MetricsResult, options: ResultsContext = {}): SavedResults {
  return {
    title: options.title ?? 'wellspring evaluation',
    result,
    aggregates: aggregate(result, options.bands ?? DEFAULT_BANDS),
    ...(options.provenance ? { provenance: options.provenance } : {}),
    ...(options.curves ? { curves: options.curves } : {}),
    ...(options.dt !== undefined && Number.isFinite(options.dt) ? { dt: options.dt } : {}),
  };
}

/** One row of the long table. */
export interface TableRow {
  level: 'lead' | 'band';
  model: string;
  field: string;
  lead_from: number;
  lead_to: number;
  metric: MetricName | typeof PDE_RESIDUAL;
  mean: number;
  std: number;
  count: number;
}

/** The long table of a saved result: per-lead rows (per field and "all"), then band rows. */
export function longTable(saved: SavedResults): TableRow[] {
  const rows: TableRow[] = [];
  const push = (level: 'lead' | 'band', r: { model: string; field: string; metrics: Record<MetricName, MetricSummary> }, from: number, to: number) => {
    for (const metric of METRICS) {
      const s = r.metrics[metric];
      rows.push({ level, model: r.model, field: r.field, lead_from: from, lead_to: to, metric, mean: s.mean, std: s.std, count: s.count });
    }
  };
  for (const r of [...saved.result.rows, ...saved.aggregates.leadsOverFields]) push('lead', r, r.lead, r.lead);
  for (const r of saved.aggregates.bandRows) push('band', r, r.from, r.to);
  const residual = (level: 'lead' | 'band', r: { model: string; equation: string; meanSquare: MetricSummary }, from: number, to: number) =>
    rows.push({ level, model: r.model, field: r.equation, lead_from: from, lead_to: to, metric: PDE_RESIDUAL, ...r.meanSquare });
  for (const r of saved.result.residual?.rows ?? []) residual('lead', r, r.lead, r.lead);
  for (const r of saved.aggregates.residualBands ?? []) residual('band', r, r.from, r.to);
  return rows;
}

const csvCell = (v: string | number): string => {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
};

export function toCsv(rows: readonly TableRow[]): string {
  const header = ['level', 'model', 'field', 'lead_from', 'lead_to', 'metric', 'mean', 'std', 'count'] as const;
  const lines = [header.join(',')];
  for (const r of rows) lines.push(header.map((h) => csvCell(r[h])).join(','));
  return lines.join('\n') + '\n';
}

export function toArrow(rows: readonly TableRow[]): Uint8Array {
  const table = new Table({
    level: vectorFromArray(rows.map((r) => r.level), new Utf8()),
    model: vectorFromArray(rows.map((r) => r.model), new Utf8()),
    field: vectorFromArray(rows.map((r) => r.field), new Utf8()),
    lead_from: vectorFromArray(Int32Array.from(rows, (r) => r.lead_from)),
    lead_to: vectorFromArray(Int32Array.from(rows, (r) => r.lead_to)),
    metric: vectorFromArray(rows.map((r) => r.metric), new Utf8()),
    mean: vectorFromArray(Float64Array.from(rows, (r) => r.mean)),
    std: vectorFromArray(Float64Array.from(rows, (r) => r.std)),
    count: vectorFromArray(Int32Array.from(rows, (r) => r.count)),
  });
  const schema = new Schema(table.schema.fields, new Map([['wellspring.schema', TABLE_SCHEMA]]));
  return tableToIPC(new Table(schema, table.batches.map((b) => new RecordBatch(schema, b.data))), 'file');
}

function encodeFloats(values: Float32Array): string {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return Buffer.from(bytes).toString('base64');
}

function decodeFloats(text: string, expected: number, where: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== expected * 4) throw new Error(`${where}: ${bytes.length / 4} float32 values, expected ${expected}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: expected }, (_, i) => view.getFloat32(i * 4, true));
}

/** Writes a results directory (creating it); every file atomically. Returns the paths written. */
export async function writeResults(dir: string, saved: SavedResults): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const { snapshots, ...rest } = saved.result;
  const results = {
    schema: 'wellspring-results/1',
    created: new Date().toISOString(),
    title: saved.title,
    result: rest,
    aggregates: saved.aggregates,
    ...(saved.provenance ? { provenance: saved.provenance } : {}),
    ...(saved.curves ? { curves: saved.curves } : {}),
    ...(saved.dt !== undefined ? { dt: saved.dt } : {}),
  };
  const snapshotDoc = {
    schema: 'wellspring-snapshots/1',
    snapshots: snapshots.map((s) => ({
      model: s.model,
      field: s.field,
      lead: s.lead,
      trajectory: s.trajectory,
      shape: s.shape,
      truth: encodeFloats(s.truth),
      mean: encodeFloats(s.mean),
      member: encodeFloats(s.member),
    })),
  };
  const rows = longTable(saved);
  const files: [string, string | Uint8Array][] = [
    [RESULTS_FILE, JSON.stringify(results)],
    [SNAPSHOTS_FILE, JSON.stringify(snapshotDoc)],
    [CSV_FILE, toCsv(rows)],
    [ARROW_FILE, toArrow(rows)],
  ];
  const written: string[] = [];
  for (const [name, data] of files) {
    const path = join(dir, name);
    try {
      await writeFileAtomic(path, data);
    } catch (err) {
      throw new PartialWriteError(dir, written, files.map(([n]) => n).slice(written.length), err);
    }
    written.push(path);
  }
  return written;
}

/**
 * A results directory written only in part (a full disk, say): names the files that are complete and those that
 * are not. Every file is whole or absent (atomic writes); `wellspring report <dir>` re-renders the report from
 * results.json and snapshots.json once they are there.
 */
export class PartialWriteError extends Error {
  override readonly name = 'PartialWriteError';
  constructor(
    readonly dir: string,
    readonly written: string[],
    readonly missing: string[],
    cause: unknown,
  ) {
    const done = written.length > 0 ? written.map((p) => p.slice(dir.length + 1)).join(', ') : 'none';
    super(`${cause instanceof Error ? cause.message : String(cause)}; in ${dir}, written: ${done}; not written: ${missing.join(', ')}`, { cause });
  }
}

// --- reading back, with errors that say which file and which path inside it is wrong ---

type Json = unknown;

function expect(cond: boolean, file: string, path: string, what: string): asserts cond {
  if (!cond) throw new Error(`${file}: ${path}: expected ${what}`);
}

const num = (v: Json): number => (v === null ? NaN : (v as number));

function readSummary(v: Json, file: string, path: string): MetricSummary {
  const s = v as Record<string, Json> | null;
  expect(typeof s === 'object' && s !== null, file, path, 'a {mean, std, count} summary');
  return { mean: num(s.mean), std: num(s.std), count: s.count as number };
}

function readSummaries(v: Json, file: string, path: string): Record<MetricName, MetricSummary> {
  expect(typeof v === 'object' && v !== null, file, path, 'an object of metric summaries');
  const out = {} as Record<MetricName, MetricSummary>;
  for (const name of METRICS) {
    out[name] = readSummary((v as Record<string, Json>)[name], file, `${path}.${name}`);
  }
  return out;
}

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${path}: cannot read (${(err as Error).message}); is this a results directory?`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** Reads a results directory written by writeResults. */
export async function readResults(dir: string): Promise<SavedResults> {
  const file = join(dir, RESULTS_FILE);
  const doc = (await readJson(file)) as Record<string, Json>;
  expect(doc.schema === 'wellspring-results/1', file, 'schema', '"wellspring-results/1"');
  const r = doc.result as Record<string, Json>;
  expect(typeof r === 'object' && r !== null, file, 'result', 'an object');
  for (const key of ['models', 'fields', 'leads', 'rows', 'spectra'] as const) {
    expect(Array.isArray(r[key]), file, `result.${key}`, 'an array');
  }
  const rows = (r.rows as Record<string, Json>[]).map((row, i) => ({
    ...(row as unknown as LeadRow),
    metrics: readSummaries(row.metrics, file, `result.rows[${i}].metrics`),
  }));
  const spectra = (r.spectra as Record<string, Json>[]).map((s, i) => {
    expect(Array.isArray(s.truth) && Array.isArray(s.prediction), file, `result.spectra[${i}]`, 'truth and prediction arrays');
    return { ...(s as unknown as SpectrumRow), truth: (s.truth as Json[]).map(num), prediction: (s.prediction as Json[]).map(num) };
  });
  const agg = doc.aggregates as Record<string, Json>;
  expect(typeof agg === 'object' && agg !== null && Array.isArray(agg.bandRows), file, 'aggregates', 'an object with bandRows');
  const aggregates: Aggregates = {
    bands: agg.bands as LeadBand[],
    leadsOverFields: (agg.leadsOverFields as Record<string, Json>[]).map((row, i) => ({
      ...(row as unknown as LeadRow),
      metrics: readSummaries(row.metrics, file, `aggregates.leadsOverFields[${i}].metrics`),
    })),
    bandRows: (agg.bandRows as Record<string, Json>[]).map((row, i) => ({
      ...(row as unknown as BandRow),
      metrics: readSummaries(row.metrics, file, `aggregates.bandRows[${i}].metrics`),
    })),
  };
  if (agg.residualBands !== undefined) {
    expect(Array.isArray(agg.residualBands), file, 'aggregates.residualBands', 'an array');
    aggregates.residualBands = (agg.residualBands as Record<string, Json>[]).map((row, i) => ({
      ...(row as unknown as ResidualBandRow),
      meanSquare: readSummary(row.meanSquare, file, `aggregates.residualBands[${i}].meanSquare`),
    }));
  }
  let residual: ResidualResult | undefined;
  if (r.residual !== undefined) {
    const res = r.residual as Record<string, Json>;
    expect(typeof res === 'object' && res !== null && typeof res.system === 'string', file, 'result.residual', 'an object with the residual system');
    for (const key of ['equations', 'models', 'rows'] as const) expect(Array.isArray(res[key]), file, `result.residual.${key}`, 'an array');
    residual = {
      system: res.system as string,
      equations: res.equations as string[],
      models: res.models as string[],
      rows: (res.rows as Record<string, Json>[]).map((row, i) => ({
        model: row.model as string,
        equation: row.equation as string,
        lead: row.lead as number,
        meanSquare: readSummary(row.meanSquare, file, `result.residual.rows[${i}].meanSquare`),
      })),
    };
  }

  const snapFile = join(dir, SNAPSHOTS_FILE);
  const snapDoc = (await readJson(snapFile)) as Record<string, Json>;
  expect(snapDoc.schema === 'wellspring-snapshots/1', snapFile, 'schema', '"wellspring-snapshots/1"');
  expect(Array.isArray(snapDoc.snapshots), snapFile, 'snapshots', 'an array');
  const snapshots: FrameSnapshot[] = (snapDoc.snapshots as Record<string, Json>[]).map((s, i) => {
    const where = `${snapFile}: snapshots[${i}]`;
    const shape = s.shape as [number, number];
    expect(Array.isArray(shape) && shape.length === 2, snapFile, `snapshots[${i}].shape`, '[H, W]');
    const size = shape[0] * shape[1];
    return {
      model: s.model as string,
      field: s.field as string,
      lead: s.lead as number,
      trajectory: s.trajectory as string,
      shape,
      truth: decodeFloats(s.truth as string, size, `${where}.truth`),
      mean: decodeFloats(s.mean as string, size, `${where}.mean`),
      member: decodeFloats(s.member as string, size, `${where}.member`),
    };
  });
  const result: MetricsResult = {
    schema: 'wellspring-metrics/1',
    convention: r.convention as MetricsResult['convention'],
    metrics: r.metrics as MetricName[],
    models: r.models as string[],
    fields: r.fields as string[],
    leads: r.leads as number[],
    rows,
    spectra,
    snapshots,
    ...(residual ? { residual } : {}),
  };
  const extra: Pick<SavedResults, 'provenance' | 'curves' | 'dt'> = {};
  if (doc.provenance !== undefined) {
    expect(typeof doc.provenance === 'object' && doc.provenance !== null, file, 'provenance', 'an object of provenance records by run');
    extra.provenance = Object.fromEntries(
      Object.entries(doc.provenance as Record<string, Json>).map(([name, p]) => [name, checkProvenance(p, `${file}: provenance.${name}`)]),
    );
  }
  if (doc.curves !== undefined) {
    expect(Array.isArray(doc.curves), file, 'curves', 'an array of training curves');
    extra.curves = (doc.curves as Record<string, Json>[]).map((c, i) => {
      const keys = ['step', 'loss', 'gradNorm', 'lr'] as const;
      expect(typeof c.run === 'string' && keys.every((k) => Array.isArray(c[k])), file, `curves[${i}]`, 'a curve {run, step, loss, gradNorm, lr}');
      return { run: c.run as string, step: c.step as number[], loss: (c.loss as Json[]).map(num), gradNorm: (c.gradNorm as Json[]).map(num), lr: (c.lr as Json[]).map(num) };
    });
  }
  if (doc.dt !== undefined) {
    expect(typeof doc.dt === 'number', file, 'dt', 'a number (the time of one lead step)');
    extra.dt = doc.dt;
  }
  return { title: (doc.title as string) ?? 'wellspring evaluation', result, aggregates, ...extra };
}
