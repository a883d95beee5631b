/**
 * Tiny grids (2 x 2, 1 x 8, 8 x 1) and deterministic models (one member) through the report sink: the run
 * completes and writes every file; metrics that do not exist on such grids or models (empty spectral bins and
 * bands, spread / skill of a deterministic model) are NaN, shown as a dash in the tables and left out of CSV
 * means and plots, while every value that exists is finite; plots with nothing to draw are replaced by a note.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import {
  isotropicBinning,
  METRICS,
  reduceMetrics,
  scoreFrame,
  summarize,
  syntheticRollouts,
  wellBinning,
  type MetricName,
  type RolloutChunk,
} from '../../src/sinks/metrics/index.js';
import { MISSING_CELL, renderReport, reportFigures, reportSink } from '../../src/sinks/report/index.js';

const fields = ['density', 'pressure'];
const leads = 6;
const trajectories = 2;
const bands = [
  { from: 1, to: 3 },
  { from: 4, to: 6 },
];

/** An ensemble model (M = 4) and a deterministic one (M = 1) on the same h x w grid. */
async function* twoModels(h: number, w: number): AsyncGenerator<RolloutChunk> {
  const base = { trajectories, leads, height: h, width: w, fields, seed: 7 };
  yield* syntheticRollouts({ ...base, model: 'ensemble', members: 4, chunk: 4 });
  yield* syntheticRollouts({ ...base, model: 'deterministic', members: 1 });
}

const BAND_ERRORS = (['psd', 'coherence'] as const).flatMap((k) => (['low', 'mid', 'high'] as const).map((b) => `${k}_error_${b}` as MetricName));
const CORNER_ERRORS: MetricName[] = ['psd_error_corner', 'coherence_error_corner'];

interface Case {
  h: number;
  w: number;
  /** Isotropic bins above DC. */
  bins: number;
  /** Metrics with no finite value for the ensemble model (the deterministic one adds spread_skill). */
  undefinedMetrics: MetricName[];
  drawn: string[];
  omitted: string[];
}

const ERROR_PLOTS = ['error-vrmse', 'error-rmse', 'error-crps', 'error-w1'];
const cases: Case[] = [
  {
    // One isotropic bin (k = 0.707, corner band only); The Well's middle bin holds no wavenumber.
    h: 2,
    w: 2,
    bins: 1,
    undefinedMetrics: ['spectral_mse_1', 'spectral_nmse_1', ...BAND_ERRORS],
    drawn: [...ERROR_PLOTS, 'spread-skill', 'power-spectra'],
    omitted: ['spectral-error-bands'],
  },
  // A single-cell axis: no isotropic bin at all (floor(sqrt(2) * 1 / 2) = 0); The Well's bins are all populated.
  { h: 1, w: 8, bins: 0, undefinedMetrics: [...BAND_ERRORS, ...CORNER_ERRORS], drawn: [...ERROR_PLOTS, 'spread-skill'], omitted: ['power-spectra', 'spectral-error-bands'] },
  { h: 8, w: 1, bins: 0, undefinedMetrics: [...BAND_ERRORS, ...CORNER_ERRORS], drawn: [...ERROR_PLOTS, 'spread-skill'], omitted: ['power-spectra', 'spectral-error-bands'] },
];

const work = await mkdtemp(join(tmpdir(), 'wellspring-tiny-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

/** The cells of the band-table row of (model, field) for `metric`, as raw <td> strings. */
function tableCells(html: string, metric: MetricName, model: string, field: string): string[] {
  const start = html.indexOf(`<table class="bands" data-metric="${metric}">`);
  if (start < 0) return [];
  const table = html.slice(start, html.indexOf('</table>', start));
  const row = table.split('\n').find((line) => line.includes(`<td>${model}</td><td>${field}</td>`));
  return row ? (row.match(/<td[^>]*>[^<]*<\/td>/g) ?? []).slice(2) : [];
}

const cellText = (cell: string): string => cell.replace(/<[^>]+>/g, '');

for (const c of cases) {
  t.test(`${c.h}x${c.w} grid, ensemble (M = 4) and deterministic (M = 1) models`, async (t) => {
    const dir = join(work, `grid-${c.h}x${c.w}`);
    const out = await reportSink(twoModels(c.h, c.w), { dir, title: `tiny ${c.h}x${c.w}`, bands, snapshotLeads: [1, leads] });

    // Every file of the results directory and the report.
    for (const name of ['report.html', 'results.json', 'snapshots.json', 'metrics.csv', 'metrics.arrow']) {
      t.ok(existsSync(join(dir, name)), `${name} written`);
    }
    t.same(out.frameGrids.map((p) => p.slice(dir.length + 1)), ['frames-ensemble.png', 'frames-deterministic.png'], 'one frame grid per model');
    for (const path of out.frameGrids) {
      const png = PNG.sync.read(await readFile(path));
      t.ok(png.width > 0 && png.height > 0, `${path.slice(dir.length + 1)} decodes (${png.width}x${png.height})`);
    }

    // results.json: both models, every (model, field, lead), spectra of the expected length.
    const doc = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as {
      result: { models: string[]; fields: string[]; leads: number[]; rows: { model: string; frames: number }[]; spectra: { frequencies: number[]; truth: number[] }[] };
    };
    t.same(doc.result.models, ['ensemble', 'deterministic'], 'results.json holds both models');
    t.same(doc.result.fields, fields);
    t.same(doc.result.leads, [1, 2, 3, 4, 5, 6]);
    t.equal(doc.result.rows.length, 2 * fields.length * leads, 'one row per model, field and lead');
    t.ok(doc.result.rows.every((r) => r.frames === trajectories), `${trajectories} frames per row`);
    t.ok(doc.result.spectra.every((s) => s.frequencies.length === c.bins && s.truth.length === c.bins), `spectra have ${c.bins} bin(s)`);
    if (c.bins > 0) t.ok(doc.result.spectra.every((s) => s.truth.every((v) => Number.isFinite(v) && v > 0)), 'spectra are finite and positive');

    // In memory: exactly the expected metrics are undefined; everything else is finite.
    for (const model of ['ensemble', 'deterministic']) {
      const expected = new Set<string>(model === 'deterministic' ? [...c.undefinedMetrics, 'spread_skill'] : c.undefinedMetrics);
      const rows = [...out.saved.result.rows, ...out.saved.aggregates.leadsOverFields, ...out.saved.aggregates.bandRows].filter((r) => r.model === model);
      const undefinedSeen = new Set<string>();
      let finite = true;
      for (const r of rows) {
        for (const name of METRICS) {
          const s = r.metrics[name];
          if (s.count === 0) undefinedSeen.add(name);
          else if (!(Number.isFinite(s.mean) && Number.isFinite(s.std))) finite = false;
          if (s.count === 0 && !Number.isNaN(s.mean)) finite = false;
        }
      }
      t.same([...undefinedSeen].sort(), [...expected].sort(), `${model}: undefined metrics are exactly ${[...expected].join(', ')}`);
      t.ok(finite, `${model}: every defined summary is finite, every undefined one NaN`);
      const spread = out.saved.aggregates.bandRows.filter((r) => r.model === model).map((r) => r.metrics.spread.mean);
      t.ok(spread.every((v) => (model === 'ensemble' ? v > 0 : v === 0)), `${model}: spread ${model === 'ensemble' ? '> 0' : '= 0'}`);
    }

    // metrics.csv: spread_skill has no mean for the deterministic model, a positive one for the ensemble.
    const csv = (await readFile(join(dir, 'metrics.csv'), 'utf8')).trim().split('\n');
    t.equal(csv[0], 'level,model,field,lead_from,lead_to,metric,mean,std,count');
    const spreadSkill = (model: string) => csv.filter((l) => l.startsWith(`band,${model},all,`) && l.split(',')[5] === 'spread_skill').map((l) => l.split(','));
    t.same(spreadSkill('deterministic').map((cols) => [cols[6], cols[7], cols[8]]), bands.map(() => ['', '', '0']), 'deterministic spread_skill: empty mean and std, count 0');
    t.ok(spreadSkill('ensemble').length === bands.length && spreadSkill('ensemble').every((cols) => Number(cols[6]) > 0 && Number(cols[8]) > 0), 'ensemble spread_skill: positive means');
    t.notMatch(csv.join('\n'), /NaN|Infinity/, 'no NaN or Infinity text in the CSV');

    // report.html: the spread / skill table has a dash for the deterministic model, numbers for the ensemble.
    const html = await readFile(out.report, 'utf8');
    t.notMatch(html, />\s*(NaN|-?Infinity)\s*</, 'no NaN or Infinity shown in the page');
    for (const field of [...fields, 'all']) {
      const det = tableCells(html, 'spread_skill', 'deterministic', field);
      t.equal(det.length, bands.length, `deterministic/${field}: one spread/skill cell per band`);
      t.ok(det.every((cell) => cellText(cell) === MISSING_CELL && /class="missing"/.test(cell) && /deterministic model/.test(cell)), `deterministic/${field}: spread/skill shown as "${MISSING_CELL}"`);
      const ens = tableCells(html, 'spread_skill', 'ensemble', field);
      t.ok(ens.length === bands.length && ens.every((cell) => Number(cellText(cell)) > 0), `ensemble/${field}: spread/skill values ${ens.map(cellText).join(' ')}`);
      const vrmse = tableCells(html, 'vrmse', 'deterministic', field);
      t.ok(vrmse.length === bands.length && vrmse.every((cell) => Number.isFinite(Number(cellText(cell)))), `deterministic/${field}: VRMSE is a number`);
    }

    // Plots: those with data drawn (with marks), the others replaced by a note saying why.
    for (const id of c.drawn) {
      const start = html.indexOf(`data-plot="${id}"`);
      t.ok(start > 0, `plot ${id} drawn`);
      t.match(html.slice(start, html.indexOf('</figure>', start)), /<svg[^>]*>[\s\S]*<path[^>]*d="M/, `plot ${id} has marks`);
    }
    for (const id of c.omitted) {
      t.notMatch(html, new RegExp(`data-plot="${id}"`), `plot ${id} not drawn`);
      t.match(html, new RegExp(`data-omitted-plot="${id}">[^<]*not drawn, [^<]*${c.h}x${c.w}`), `plot ${id}: a note naming the grid`);
    }
    t.equal(html.match(/<figure class="plot"/g)?.length, c.drawn.length, `${c.drawn.length} figures`);
    // Snapshot frames: 2 models x 2 fields x 2 leads x 4 panels, at the grid's aspect ratio.
    const frames = [...html.matchAll(/<img class="frame" data-panel="truth" src="[^"]*" width="(\d+)" height="(\d+)"/g)];
    t.equal(frames.length, 2 * fields.length * 2, 'truth panel of every snapshot');
    t.ok(frames.every((m) => Number(m[1]) * c.h === Number(m[2]) * c.w), 'frames keep the grid aspect ratio');
  });
}

t.test('only deterministic models: the spread / skill plot is left out with a reason', async (t) => {
  const source = syntheticRollouts({ trajectories: 1, leads: 3, members: 1, height: 2, width: 2, fields, seed: 2, model: 'det' });
  const saved = summarize(await reduceMetrics(source, { skipW1: true }));
  const { plots, omitted } = await reportFigures(saved);
  t.same(plots.map((p) => p.id), ['error-vrmse', 'error-rmse', 'error-crps', 'power-spectra']);
  t.same(omitted.map((o) => o.id), ['error-w1', 'spread-skill', 'spectral-error-bands'], 'w1 skipped, no ensemble, no band');
  t.match(omitted.find((o) => o.id === 'spread-skill')!.reason, /deterministic/);
  const html = await renderReport(saved);
  t.match(html, /data-omitted-plot="spread-skill">Spread \/ skill vs lead time: not drawn, spread \/ skill is undefined for deterministic models/);
  t.match(html, /data-omitted-plot="error-w1">/);
});

t.test('binnings of tiny grids are well-defined', async (t) => {
  for (const shape of [[1, 8], [8, 1], [1, 2, 4]]) {
    const iso = isotropicBinning(shape);
    const n = shape.reduce((a, b) => a * b, 1);
    t.same(iso.frequencies, [], `${shape.join('x')}: no isotropic bin`);
    t.same(iso.edges, [0]);
    t.same([...iso.counts], [n], 'every frequency in the dropped DC bin');
    t.same(iso.bands, [[], [], [], []], 'every band empty');
  }
  const two = isotropicBinning([2, 2]);
  t.equal(two.frequencies.length, 1);
  t.ok(Math.abs(two.frequencies[0]! - Math.SQRT1_2) < 1e-6, '2x2: one bin at sqrt(1/2)');
  t.same(two.bands, [[], [], [], [0]], '2x2: corner band only');
  t.same(wellBinning([2, 2]).counts, [3, 0, 1], "2x2: The Well's middle bin is empty");

  // scoreFrame on a 1 x 8 grid: spectra empty, band errors NaN, the rest finite; M = 1: spread/skill NaN.
  const truth = Float64Array.from({ length: 8 }, (_, i) => 1 + Math.sin(i));
  const member = truth.map((v, i) => v + 0.1 * Math.cos(3 * i));
  const one = scoreFrame(truth, [member], [1, 8]);
  t.equal(one.truthPower.length, 0);
  t.equal(one.predictionPower.length, 0);
  const nan = METRICS.filter((_, i) => Number.isNaN(one.values[i]!));
  t.same(nan, ['spread_skill', ...BAND_ERRORS.filter((m) => m.startsWith('psd')), 'psd_error_corner', ...BAND_ERRORS.filter((m) => m.startsWith('coherence')), 'coherence_error_corner']);
  t.ok(METRICS.every((m, i) => nan.includes(m) || Number.isFinite(one.values[i]!)), 'all other metrics finite');
  const two2 = scoreFrame(truth.subarray(0, 4), [member.subarray(0, 4), truth.subarray(0, 4).map((v) => v - 0.05)], [2, 2]);
  t.ok(Number.isNaN(two2.values[METRICS.indexOf('spectral_mse_1')]!), '2x2: empty Well bin gives NaN, not 0');
  t.ok(Number.isFinite(two2.values[METRICS.indexOf('spread_skill')]!), '2x2, M = 2: spread/skill defined');
  t.ok(Number.isFinite(two2.values[METRICS.indexOf('psd_error_corner')]!), '2x2: corner band error defined');
});

t.test('grids the metrics cannot score are rejected with a readable error', async (t) => {
  const chunk = (spatialShape: number[]): RolloutChunk => {
    const n = spatialShape.reduce((a, b) => a * b, 1);
    return { fields: ['u'], spatialShape, lead: 1, truth: new Float32Array(n), ensemble: [new Float32Array(n)] };
  };
  await t.rejects(reduceMetrics([chunk([1, 1])]), /"spatialShape" must be a list of grid sizes >= 1 with at least 2 grid points, got \[1,1\]/);
  await t.rejects(reduceMetrics([chunk([0, 8])]), /"spatialShape"/);
  t.equal((await reduceMetrics([chunk([1, 2])])).rows.length, 1, 'a 1 x 2 grid is scored');
});
