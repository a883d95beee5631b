/**
 * Lead-band and over-field aggregation, and the results directory: JSON round trip, CSV and Arrow tables with
 * the documented schema, atomic writes, readable errors for broken directories.
 */
import t from 'tap';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import {
  ALL_FIELDS,
  METRICS,
  TABLE_SCHEMA,
  aggregate,
  mergeResults,
  parseBands,
  readResults,
  reduceMetrics,
  summarize,
  syntheticRollouts,
  writeResults,
} from '../../src/sinks/metrics/index.js';
import { collect } from '../../src/sinks/basic.js';

const result = await reduceMetrics(
  syntheticRollouts({ trajectories: 3, leads: 6, members: 2, height: 8, width: 8, fields: ['rho', 'p'], seed: 2 }),
  { snapshotLeads: [1, 6] },
);

t.test('bands pool every frame in range; "all" pools the fields', async (t) => {
  const agg = aggregate(result, parseBands('1-2,3-6,7-9'));
  t.same(agg.bands.map((b) => [b.from, b.to]), [[1, 2], [3, 6], [7, 9]], 'bands parsed');
  const row = agg.bandRows.find((r) => r.field === 'rho' && r.band === '3-6')!;
  const perLead = result.rows.filter((r) => r.field === 'rho' && r.lead >= 3 && r.lead <= 6);
  const expected = perLead.reduce((s, r) => s + r.metrics.vrmse.mean, 0) / perLead.length;
  t.ok(Math.abs(row.metrics.vrmse.mean - expected) < 1e-12, 'band mean = mean of per-lead means (equal counts)');
  t.equal(row.frames, 12, '4 leads x 3 trajectories');
  const all = agg.bandRows.find((r) => r.field === ALL_FIELDS && r.band === '1-2')!;
  const both = result.rows.filter((r) => r.lead <= 2);
  t.ok(Math.abs(all.metrics.rmse.mean - both.reduce((s, r) => s + r.metrics.rmse.mean, 0) / both.length) < 1e-12, 'all-field band');
  // Pooled std equals the std of the per-frame values, recomputed from per-lead means and stds.
  t.ok(all.metrics.rmse.std >= 0, 'std is defined');
  t.notOk(agg.bandRows.some((r) => r.band === '7-9'), 'a band with no data is left out');
  t.equal(agg.leadsOverFields.length, 6, 'one all-field row per lead');
  t.throws(() => parseBands('1-20,x'), /"x" is not of the form FROM-TO/);
  t.throws(() => parseBands('5-1'), /ends before it starts/);
});

t.test('merging shard reductions equals reducing everything at once', async (t) => {
  const chunks = await collect(syntheticRollouts({ trajectories: 5, leads: 4, members: 3, height: 8, width: 8, fields: ['rho', 'p'], seed: 8, chunk: 2 }));
  const whole = await reduceMetrics(chunks, { snapshotLeads: [1] });
  const shards = await Promise.all([
    reduceMetrics(chunks.filter((c) => Number(c.trajectory) < 2), { snapshotLeads: [1] }),
    reduceMetrics(chunks.filter((c) => Number(c.trajectory) >= 2), { snapshotLeads: [1] }),
  ]);
  const merged = mergeResults(shards);
  t.same(merged.leads, whole.leads);
  t.same(merged.snapshots, whole.snapshots, 'snapshots of the first shard (its first trajectory)');
  let maxRel = 0;
  merged.rows.forEach((row, i) => {
    const other = whole.rows[i]!;
    t.equal(row.frames, other.frames);
    for (const m of METRICS) {
      for (const k of ['mean', 'std'] as const) {
        const a = row.metrics[m][k];
        const b = other.metrics[m][k];
        if (Number.isNaN(a) && Number.isNaN(b)) continue;
        maxRel = Math.max(maxRel, Math.abs(a - b) / Math.max(Math.abs(b), 1e-12));
      }
    }
  });
  t.ok(maxRel < 1e-9, `pooled means and stds match (max relative difference ${maxRel})`);
  const spectrumErr = Math.max(...merged.spectra.flatMap((s, i) => s.truth.map((v, j) => Math.abs(v - whole.spectra[i]!.truth[j]!) / whole.spectra[i]!.truth[j]!)));
  t.ok(spectrumErr < 1e-12, 'mean spectra match');
  t.throws(() => mergeResults([]), /nothing to merge/);
  t.throws(() => mergeResults([whole, { ...whole, convention: 'lola' }]), /part 1 uses convention "lola"/);
});

t.test('results directory: round trip, CSV, Arrow schema, no temporary files left', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-results-'));
  const saved = summarize(result, { title: 'round trip', bands: parseBands('1-3,4-6') });
  const files = await writeResults(dir, saved);
  t.same((await readdir(dir)).sort(), ['metrics.arrow', 'metrics.csv', 'results.json', 'snapshots.json'], 'only final files');
  t.equal(files.length, 4);

  const back = await readResults(dir);
  t.equal(back.title, 'round trip');
  t.same(back.result.rows, saved.result.rows, 'per-lead rows (NaN survives as NaN)');
  t.same(back.result.spectra, saved.result.spectra, 'spectra');
  t.same(back.aggregates, saved.aggregates, 'aggregates');
  t.equal(back.result.snapshots.length, 2 * 2, 'two fields x two snapshot leads');
  t.same(back.result.snapshots[0]!.truth, saved.result.snapshots[0]!.truth, 'snapshot pixels are bit-exact float32');

  const csv = (await readFile(join(dir, 'metrics.csv'), 'utf8')).trim().split('\n');
  t.equal(csv[0], 'level,model,field,lead_from,lead_to,metric,mean,std,count', 'CSV header');
  // lead rows: (2 fields + all) x 6 leads; band rows: (2 fields + all) x 2 bands; each x METRICS.
  const expectedRows = (3 * 6 + 3 * 2) * METRICS.length;
  t.equal(csv.length - 1, expectedRows, 'CSV row count');
  const vrmseLine = csv.find((l) => l.startsWith('band,model,all,1,3,vrmse,'))!;
  const band = saved.aggregates.bandRows.find((r) => r.field === 'all' && r.band === '1-3')!;
  t.equal(Number(vrmseLine.split(',')[6]), band.metrics.vrmse.mean, 'CSV value');

  const table = tableFromIPC(await readFile(join(dir, 'metrics.arrow')));
  t.equal(table.schema.metadata.get('wellspring.schema'), TABLE_SCHEMA, 'schema metadata');
  t.same(
    table.schema.fields.map((f) => `${f.name}:${String(f.type)}`),
    ['level:Utf8', 'model:Utf8', 'field:Utf8', 'lead_from:Int32', 'lead_to:Int32', 'metric:Utf8', 'mean:Float64', 'std:Float64', 'count:Int32'],
    'column names and types',
  );
  t.equal(table.numRows, expectedRows, 'Arrow row count');
  const rows = table.toArray() as { level: string; field: string; lead_from: number; metric: string; mean: number }[];
  const lead2 = rows.find((r) => r.level === 'lead' && r.field === 'p' && r.lead_from === 2 && r.metric === 'crps')!;
  t.equal(lead2.mean, saved.result.rows.find((r) => r.field === 'p' && r.lead === 2)!.metrics.crps.mean, 'Arrow value');
});

t.test('broken results directories give errors naming the file and the path inside it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-results-bad-'));
  await t.rejects(readResults(dir), /results\.json: cannot read .* is this a results directory\?/);
  await writeFile(join(dir, 'results.json'), '{"schema": "other"}');
  await t.rejects(readResults(dir), /results\.json: schema: expected "wellspring-results\/1"/);
  await writeFile(join(dir, 'results.json'), '{not json');
  await t.rejects(readResults(dir), /results\.json: not valid JSON/);
  const good = await mkdtemp(join(tmpdir(), 'wellspring-results-good-'));
  await writeResults(good, summarize(result));
  const doc = JSON.parse(await readFile(join(good, 'results.json'), 'utf8'));
  delete doc.result.rows[3].metrics.w1;
  await writeFile(join(good, 'results.json'), JSON.stringify(doc));
  await t.rejects(readResults(good), /result\.rows\[3\]\.metrics\.w1: expected a \{mean, std, count\} summary/);
});
