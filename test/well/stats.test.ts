/**
 * Statistics: the streaming pass over each fixture split reproduces its stats.yaml to the 4 significant digits
 * it is written with (round-off-sized entries by absolute tolerance); YAML formatting/parsing; pooled moments
 * match a direct two-pass float64 computation, also across block boundaries and merges.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addBlock,
  closeWellPool,
  computeWellStats,
  emptyMoments,
  flatStat,
  formatSci,
  formatStatsYaml,
  mergeMoments,
  parseStatsYaml,
  readStats,
  STAT_KEYS,
  type StatValue,
} from '../../src/formats/well/index.js';
import { fixtures, randomArray } from './helpers.js';

t.teardown(closeWellPool);

for (const dataset of ['euler_multi_quadrants_periodicBC', 'rayleigh_benard']) {
  t.test(`${dataset}: computed stats match stats.yaml`, async (t) => {
    const dir = join(fixtures, dataset);
    const expected = await readStats(dir);
    let progressCalls = 0;
    // a small read block forces several blocks per trajectory (exercises the one-frame overlap for deltas)
    const { stats, nonFinite } = await computeWellStats(join(dir, 'data/train'), {
      maxValuesPerRead: 4000,
      onProgress: () => progressCalls++,
    });
    t.equal(nonFinite, 0);
    t.ok(progressCalls >= 2, 'progress reported per trajectory');
    for (const key of STAT_KEYS) {
      t.same(Object.keys(stats[key]).sort(), Object.keys(expected[key]).sort(), `${key}: same fields`);
      for (const [field, value] of Object.entries(expected[key])) {
        const want = flatStat(value);
        const got = flatStat(stats[key][field] as StatValue);
        t.equal(got.length, want.length, `${key}.${field} components`);
        want.forEach((w, c) => {
          if (Math.abs(w) < 1e-9) {
            t.ok(Math.abs(got[c]!) < 1e-9, `${key}.${field}[${c}] round-off sized: ${got[c]} vs ${w}`);
          } else {
            t.equal(formatSci(got[c]!), formatSci(w), `${key}.${field}[${c}] to 4 significant digits (${got[c]})`);
          }
        });
      }
    }
    // the YAML we write parses back to the same numbers and has the fixture's layout for non-tiny entries
    const text = formatStatsYaml(stats);
    const back = parseStatsYaml(text);
    t.same(flatStat(back.mean[Object.keys(stats.mean)[0]!]!).map(formatSci), flatStat(stats.mean[Object.keys(stats.mean)[0]!]!).map(formatSci));
    const fixtureLines = readFileSync(join(dir, 'stats.yaml'), 'utf8').split('\n');
    const ours = text.split('\n');
    t.equal(ours.length, fixtureLines.length, 'same number of YAML lines');
    const differing = ours.filter((l, i) => l !== fixtureLines[i] && !/E-(1[0-9]|[2-9][0-9])$/.test(fixtureLines[i] ?? ''));
    t.same(differing, [], 'YAML identical to the fixture except round-off-sized entries');
  });
}

t.test('formatSci matches Python %.4E', async (t) => {
  t.equal(formatSci(0.86877), '8.6877E-01');
  t.equal(formatSci(-3.0603e-12), '-3.0603E-12');
  t.equal(formatSci(0), '0.0000E+00');
  t.equal(formatSci(123456), '1.2346E+05');
  t.equal(formatSci(1e100), '1.0000E+100');
});

t.test('parseStatsYaml rejects malformed files with the file name', async (t) => {
  t.throws(() => parseStatsYaml('mean: {a: 1}\n', 'x/stats.yaml'), /x\/stats\.yaml: missing key "rms"/);
  t.throws(() => parseStatsYaml('mean: {a: [1, "b"]}\nrms: {}\nstd: {}\n', 's.yaml'), /s\.yaml: mean\.a must be/);
  t.throws(() => parseStatsYaml(': : :\n  - [', 'bad.yaml'), /bad\.yaml: not valid YAML/);
  await t.rejects(readStats('/nonexistent/dir'), /\/nonexistent\/dir\/stats\.yaml: cannot read statistics \(ENOENT\)/);
  const tensor = parseStatsYaml('mean: {s: [[1, 2], [3, 4]]}\nrms: {s: [[1, 2], [3, 4]]}\nstd: {s: [[1, 2], [3, 4]]}\n');
  t.same(flatStat(tensor.mean.s!), [1, 2, 3, 4], 'tensor entries flatten row-major');
});

t.test('pooled moments equal a two-pass float64 reference, whatever the blocking', async (t) => {
  const comps = 3;
  // a large mean and a small spread: where naive sum-of-squares loses everything
  const values = randomArray(3000 * comps, 42, 1e-3, 1e4);
  const ref = Array.from({ length: comps }, (_, c) => {
    let n = 0, s = 0;
    for (let i = c; i < values.length; i += comps) (s += values[i]!), n++;
    const mean = s / n;
    let m2 = 0;
    for (let i = c; i < values.length; i += comps) m2 += (values[i]! - mean) ** 2;
    return { mean, variance: m2 / n };
  });
  for (const block of [1, 7, 3000]) {
    const acc = emptyMoments(comps);
    for (let i = 0; i < 3000; i += block) addBlock(acc, values.subarray(i * comps, Math.min(3000, i + block) * comps), comps);
    t.equal(acc.count, 3000);
    ref.forEach((r, c) => {
      t.ok(Math.abs(acc.mean[c]! - r.mean) <= 1e-12 * Math.abs(r.mean), `block ${block}: mean[${c}]`);
      t.ok(Math.abs(acc.m2[c]! / acc.count - r.variance) <= 1e-8 * r.variance, `block ${block}: variance[${c}] ${acc.m2[c]! / acc.count} vs ${r.variance}`);
    });
  }
  // merging two halves equals one pass; merging an empty set changes nothing
  const a = emptyMoments(comps);
  const b = emptyMoments(comps);
  addBlock(a, values.subarray(0, 1000 * comps), comps);
  addBlock(b, values.subarray(1000 * comps), comps);
  mergeMoments(a, b);
  mergeMoments(a, emptyMoments(comps));
  ref.forEach((r, c) => t.ok(Math.abs(a.m2[c]! / a.count - r.variance) <= 1e-8 * r.variance, `merged variance[${c}]`));
  t.throws(() => mergeMoments(emptyMoments(2), { count: 1, mean: [1], m2: [0] }), /2 and 1 components/);
  // differences
  const d = emptyMoments(1);
  addBlock(d, [3, 5, 9], 1, [1, 1, 1]);
  t.same({ count: d.count, mean: d.mean }, { count: 3, mean: [(2 + 4 + 8) / 3] });
});
