/**
 * Normalisation statistics in The Well's `stats.yaml` form: for each core field name, `mean`, `std`
 * (population), `rms` (root of the second moment) and the same three for one-step time differences
 * (`*_delta`). A scalar field maps to a number, a vector field to D numbers, a tensor field to a DxD list.
 * Computed from pooled moments (see moments.ts), read and written as YAML with `%.4E` numbers, keys sorted.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { FieldMoments, MomentSet } from './moments.js';

export type StatValue = number | number[] | number[][];
export const STAT_KEYS = ['mean', 'mean_delta', 'rms', 'rms_delta', 'std', 'std_delta'] as const;
export type StatKey = (typeof STAT_KEYS)[number];
export type WellStats = Record<StatKey, Record<string, StatValue>>;

/** Shapes a flat per-component list as the field's tensor order: number, list or nested list. */
function shaped(values: number[], order: number, nDims: number): StatValue {
  if (order === 0) return values[0]!;
  if (order === 1) return values;
  const rows: number[][] = [];
  for (let i = 0; i < nDims; i++) rows.push(values.slice(i * nDims, (i + 1) * nDims));
  return rows;
}

function summarise(m: FieldMoments) {
  const mean = m.mean;
  const std = m.m2.map((v) => Math.sqrt(Math.max(0, v / m.count)));
  const rms = m.m2.map((v, c) => Math.sqrt(Math.max(0, v / m.count + mean[c]! * mean[c]!)));
  return { mean, std, rms };
}

/**
 * Turns pooled moments into stats. `orders` gives each field's tensor order (0, 1, 2), `nDims` the number of
 * spatial dimensions. Fields without time differences (constant fields) get no `*_delta` entries.
 */
export function statsFromMoments(moments: MomentSet, orders: Record<string, number>, nDims: number): WellStats {
  const out = Object.fromEntries(STAT_KEYS.map((k) => [k, {}])) as WellStats;
  const groups = [
    [moments.fields, out.mean, out.std, out.rms],
    [moments.deltas, out.mean_delta, out.std_delta, out.rms_delta],
  ] as const;
  for (const [group, mean, std, rms] of groups) {
    for (const [name, m] of Object.entries(group)) {
      if (m.count === 0) continue;
      const order = orders[name] ?? 0;
      const s = summarise(m);
      mean[name] = shaped(s.mean, order, nDims);
      std[name] = shaped(s.std, order, nDims);
      rms[name] = shaped(s.rms, order, nDims);
    }
  }
  return out;
}

/** `%.4E` as Python prints it: `8.6877E-01`, `-3.0603E-12`, `0.0000E+00`. */
export function formatSci(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? '.inf' : x < 0 ? '-.inf' : '.nan';
  const [mant, exp] = x.toExponential(4).split('e') as [string, string];
  const e = Number(exp);
  return `${mant}E${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** Writes stats as YAML in the layout of The Well's files (block style, keys sorted, `%.4E` numbers). */
export function formatStatsYaml(stats: WellStats): string {
  const lines: string[] = [];
  for (const key of [...STAT_KEYS].sort()) {
    const entries = Object.entries(stats[key] ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) {
      lines.push(`${key}: {}`);
      continue;
    }
    lines.push(`${key}:`);
    for (const [name, value] of entries) {
      if (typeof value === 'number') lines.push(`  ${name}: ${formatSci(value)}`);
      else {
        lines.push(`  ${name}:`);
        for (const item of value) {
          if (typeof item === 'number') lines.push(`  - ${formatSci(item)}`);
          else item.forEach((v, j) => lines.push(`  ${j === 0 ? '- - ' : '  - '}${formatSci(v)}`));
        }
      }
    }
  }
  return lines.join('\n') + '\n';
}

function isStatValue(v: unknown): v is StatValue {
  if (typeof v === 'number') return true;
  if (!Array.isArray(v) || v.length === 0) return false;
  if (v.every((x) => typeof x === 'number')) return true;
  return v.every((row) => Array.isArray(row) && row.length === v.length && row.every((x) => typeof x === 'number'));
}

/** Parses and checks a stats.yaml text; `source` names the file in errors. */
export function parseStatsYaml(text: string, source = 'stats.yaml'): WellStats {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`${source}: not valid YAML (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!doc || typeof doc !== 'object') throw new Error(`${source}: expected a mapping with keys ${STAT_KEYS.join(', ')}`);
  const out = {} as WellStats;
  for (const key of STAT_KEYS) {
    const section = (doc as Record<string, unknown>)[key];
    if (section === undefined) {
      if (key.endsWith('_delta')) {
        out[key] = {};
        continue;
      }
      throw new Error(`${source}: missing key "${key}"`);
    }
    if (!section || typeof section !== 'object' || Array.isArray(section)) {
      throw new Error(`${source}: "${key}" must map field names to numbers or lists`);
    }
    out[key] = {};
    for (const [name, value] of Object.entries(section as Record<string, unknown>)) {
      if (!isStatValue(value)) {
        throw new Error(`${source}: ${key}.${name} must be a number, a list of numbers or a square list of lists`);
      }
      out[key][name] = value;
    }
  }
  return out;
}

/** Reads `stats.yaml` (a file, or a dataset directory containing one). */
export async function readStats(path: string): Promise<WellStats> {
  const file = path.endsWith('.yaml') || path.endsWith('.yml') ? path : `${path.replace(/\/$/, '')}/stats.yaml`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read statistics (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseStatsYaml(text, file);
}

/** The flat per-component list of a stat entry (number -> [n], DxD -> row-major D*D). */
export function flatStat(value: StatValue): number[] {
  if (typeof value === 'number') return [value];
  return (value as (number | number[])[]).flat();
}
