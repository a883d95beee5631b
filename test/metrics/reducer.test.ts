/**
 * The streaming reducer and the ensemble metrics: chunked streams give the whole-array result, ensemble scores
 * match brute-force definitions, the FFT matches a direct DFT on non-power-of-two grids, bad input is named,
 * and the state does not grow with the number of trajectories.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import {
  METRICS,
  MetricsReducer,
  fairCrps,
  fftnReal,
  fftnRealPair,
  pooledW1,
  reduceMetrics,
  scoreFrame,
  syntheticRollouts,
  type MetricsResult,
  type RolloutChunk,
} from '../../src/sinks/metrics/index.js';
import { collect } from '../../src/sinks/basic.js';

const idx = (name: (typeof METRICS)[number]): number => METRICS.indexOf(name);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

t.test('FFT: radix-2 + Bluestein equal a direct DFT (2D 6x5, 3D 4x3x5), paired real transforms, Parseval', async (t) => {
  const next = rng(3);
  for (const shape of [[6, 5], [4, 3, 5], [16, 12]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = Float64Array.from({ length: n }, () => next() - 0.5);
    const f = fftnReal(x, shape);
    // Direct DFT over every axis.
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const coords = (p: number) => shape.map((s, i) => Math.floor(p / strides[i]!) % s);
    let maxErr = 0;
    let scale = 0;
    for (let k = 0; k < n; k++) {
      const kc = coords(k);
      let re = 0;
      let im = 0;
      for (let p = 0; p < n; p++) {
        const pc = coords(p);
        const angle = -2 * Math.PI * shape.reduce((s, size, i) => s + (kc[i]! * pc[i]!) / size, 0);
        re += x[p]! * Math.cos(angle);
        im += x[p]! * Math.sin(angle);
      }
      maxErr = Math.max(maxErr, Math.hypot(f.re[k]! - re, f.im[k]! - im));
      scale = Math.max(scale, Math.hypot(re, im));
    }
    t.ok(maxErr / scale < 1e-12, `shape ${shape.join('x')}: max |FFT - DFT| / max |DFT| = ${maxErr / scale}`);
    // Two real transforms packed in one complex transform give the same spectra.
    const y = Float64Array.from({ length: n }, () => next() - 0.5);
    const [pa, pb] = fftnRealPair(x, y, shape);
    const fy = fftnReal(y, shape);
    const pairErr = Math.max(
      ...Array.from({ length: n }, (_, k) => Math.max(Math.hypot(pa.re[k]! - f.re[k]!, pa.im[k]! - f.im[k]!), Math.hypot(pb.re[k]! - fy.re[k]!, pb.im[k]! - fy.im[k]!))),
    );
    t.ok(pairErr / scale < 1e-12, `shape ${shape.join('x')}: paired real transforms match (${pairErr / scale})`);
    const energy = x.reduce((s, v) => s + v * v, 0);
    const spectral = f.re.reduce((s, v, i) => s + v * v + f.im[i]! ** 2, 0) / n;
    t.ok(Math.abs(spectral - energy) / energy < 1e-12, `Parseval on ${shape.join('x')}`);
  }
});

t.test('ensemble scores match brute-force definitions', async (t) => {
  const next = rng(11);
  const shape = [12, 10];
  const n = 120;
  const m = 5;
  const truth = Float64Array.from({ length: n }, () => next() * 2 - 1);
  const members = Array.from({ length: m }, () => Float64Array.from(truth, (u) => u + 0.3 * (next() - 0.5) + 0.1));
  const scores = scoreFrame(truth, members, shape);

  // CRPS with the O(M^2) pairwise form.
  let crps = 0;
  for (let p = 0; p < n; p++) {
    let a = 0;
    let pairs = 0;
    for (let i = 0; i < m; i++) {
      a += Math.abs(members[i]![p]! - truth[p]!);
      for (let j = 0; j < m; j++) if (i !== j) pairs += Math.abs(members[i]![p]! - members[j]![p]!);
    }
    crps += a / m - pairs / (2 * m * (m - 1));
  }
  t.ok(Math.abs(scores.values[idx('crps')]! - crps / n) < 1e-12, 'fair CRPS = pairwise formula');
  t.ok(Math.abs(fairCrps(truth, [members[0]!]) - members[0]!.reduce((s, v, p) => s + Math.abs(v - truth[p]!), 0) / n) < 1e-12,
    'CRPS of one member = MAE');

  // Spread: sqrt((M+1)/(M-1) * mean over members and grid of squared deviation from the mean).
  const mean = Float64Array.from(truth, (_, p) => members.reduce((s, v) => s + v[p]!, 0) / m);
  let dev = 0;
  for (const v of members) for (let p = 0; p < n; p++) dev += (v[p]! - mean[p]!) ** 2;
  const spread = Math.sqrt(((m + 1) / (m - 1)) * (dev / (m * n)));
  t.ok(Math.abs(scores.values[idx('spread')]! - spread) < 1e-12, 'spread');
  const rmse = Math.sqrt(mean.reduce((s, v, p) => s + (v - truth[p]!) ** 2, 0) / n);
  t.ok(Math.abs(scores.values[idx('skill')]! - rmse) < 1e-12, 'skill = RMSE of the ensemble mean');
  t.ok(Math.abs(scores.values[idx('spread_skill')]! - (spread + 1e-3) / (rmse + 1e-3)) < 1e-12, 'spread/skill');
  const sumMean = mean.reduce((a, b) => a + b, 0);
  const sumTruth = truth.reduce((a, b) => a + b, 0);
  t.ok(Math.abs(scores.values[idx('conservation')]! - (1 - sumMean / sumTruth)) < 1e-12, 'conservation');

  // The Well's three bins partition the spectrum below pi sqrt(2): they sum to the MSE (Parseval).
  const binSum = [0, 1, 2].reduce((s, b) => s + scores.values[idx('spectral_mse_0') + b]!, 0);
  t.ok(Math.abs(binSum - rmse * rmse) / (rmse * rmse) < 1e-6, `spectral bins sum to MSE (${binSum} vs ${rmse * rmse})`);

  // lola convention changes only NRMSE/VRMSE epsilon.
  const lola = scoreFrame(truth, members, shape, { convention: 'lola' });
  const varU = truth.reduce((s, v) => s + (v - sumTruth / n) ** 2, 0) / (n - 1);
  t.ok(Math.abs(lola.values[idx('vrmse')]! - Math.sqrt((rmse * rmse) / (varU + 1e-6))) < 1e-12, 'VRMSE with eps 1e-6');
  t.ok(Math.abs(scores.values[idx('vrmse')]! - Math.sqrt((rmse * rmse) / (varU + 1e-7))) < 1e-12, 'VRMSE with eps 1e-7');
});

t.test('Wasserstein-1: exact on known cases and equal to the CDF integral', async (t) => {
  const a = Float64Array.from([0, 1, 2, 3]);
  t.equal(pooledW1(a, [Float64Array.from([0.5, 1.5, 2.5, 3.5])]), 0.5, 'a shift by 0.5 costs 0.5');
  t.equal(pooledW1(a, [a, a]), 0, 'same values pooled twice cost nothing');
  // Independent: integral of |F_u - F_v| over the merged breakpoints.
  const next = rng(5);
  const u = Float64Array.from({ length: 37 }, () => next());
  const vs = [Float64Array.from({ length: 37 }, () => next() * 1.5), Float64Array.from({ length: 37 }, () => next() + 0.2)];
  const pooled = [...vs[0]!, ...vs[1]!];
  const points = [...u, ...pooled].sort((x, y) => x - y);
  const cdf = (xs: ArrayLike<number>, x: number) => Array.from(xs).filter((v) => v <= x).length / xs.length;
  let integral = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    integral += Math.abs(cdf(u, points[i]!) - cdf(pooled, points[i]!)) * (points[i + 1]! - points[i]!);
  }
  t.ok(Math.abs(pooledW1(u, vs) - integral) < 1e-12, `W1 ${pooledW1(u, vs)} = CDF integral ${integral}`);
});

function sameResult(t: Test, a: MetricsResult, b: MetricsResult, what: string): void {
  t.same(a.models, b.models, `${what}: models`);
  t.same(a.leads, b.leads, `${what}: leads`);
  t.equal(a.rows.length, b.rows.length, `${what}: row count`);
  let maxRel = 0;
  a.rows.forEach((row, i) => {
    const other = b.rows[i]!;
    for (const name of METRICS) {
      const x = row.metrics[name].mean;
      const y = other.metrics[name].mean;
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
      maxRel = Math.max(maxRel, Math.abs(x - y) / Math.max(Math.abs(y), 1e-300));
    }
  });
  t.ok(maxRel <= 1e-12, `${what}: max relative difference ${maxRel}`);
  t.same(a.spectra, b.spectra, `${what}: spectra`);
  t.same(a.snapshots, b.snapshots, `${what}: snapshots`);
}

t.test('streaming over chunks equals the whole-array result', async (t) => {
  const base = { trajectories: 3, leads: 9, members: 3, height: 16, width: 12, seed: 7, fields: ['a', 'b'] };
  const whole = await reduceMetrics(syntheticRollouts({ ...base }), { snapshotLeads: [1, 5, 9] });
  for (const chunk of [1, 4]) {
    const chunked = await reduceMetrics(syntheticRollouts({ ...base, chunk }), { snapshotLeads: [1, 5, 9] });
    sameResult(t, chunked, whole, `chunks of ${chunk} lead(s)`);
  }
  // Scored in two worker threads: the same result, folded in input order.
  const threaded = await reduceMetrics(syntheticRollouts({ ...base, chunk: 2 }), { snapshotLeads: [1, 5, 9], threads: 2 });
  sameResult(t, threaded, whole, 'two worker threads');
  // And the reduction equals the mean of per-frame scores computed directly on whole rollouts.
  const items = await collect(syntheticRollouts({ ...base }));
  const [h, w] = [16, 12];
  const lead = 5;
  const field = 1;
  let sum = 0;
  for (const item of items) {
    const frame = (arr: Float32Array | Float64Array) =>
      Float64Array.from({ length: h * w }, (_, p) => arr[((lead - 1) * h * w + p) * 2 + field]!);
    sum += scoreFrame(frame(item.truth), item.ensemble.map(frame), [h, w]).values[idx('vrmse')]!;
  }
  const row = whole.rows.find((r) => r.field === 'b' && r.lead === lead)!;
  t.ok(Math.abs(row.metrics.vrmse.mean - sum / items.length) < 1e-12, 'mean over trajectories of per-frame VRMSE');
  t.equal(row.frames, 3, 'one frame per trajectory');
});

t.test('fixture case with B = 2: the reducer averages the reference values over the batch', async (t) => {
  const fixture = JSON.parse(
    readFileSync(new URL('../fixtures/metrics/the_well_metrics.json', import.meta.url), 'utf8'),
  ) as { cases: { name: string; x: { shape: number[]; values: number[] }; y: { values: number[] }; the_well: Record<string, { values: number[] }> }[] };
  const c = fixture.cases.find((x) => x.name === 'correlated')!;
  const [B, T, H, W, C] = c.x.shape as [number, number, number, number, number];
  const size = T * H * W * C;
  const chunks: RolloutChunk[] = Array.from({ length: B }, (_, b) => ({
    trajectory: b,
    fields: ['f0', 'f1'],
    spatialShape: [H, W],
    lead: 1,
    truth: Float64Array.from(c.y.values.slice(b * size, (b + 1) * size)),
    ensemble: [Float64Array.from(c.x.values.slice(b * size, (b + 1) * size))],
  }));
  const result = await reduceMetrics(chunks);
  for (const [ref, ours] of [['VRMSE', 'vrmse'], ['MSE', 'mse'], ['PearsonR', 'pearson_r']] as const) {
    for (let ch = 0; ch < C; ch++) {
      const expected = (c.the_well[ref]!.values[ch]! + c.the_well[ref]!.values[T * C + ch]!) / 2;
      const got = result.rows.find((r) => r.field === `f${ch}`)!.metrics[ours].mean;
      t.ok(Math.abs(got - expected) / Math.abs(expected) < 1e-6, `${ref} channel ${ch}: ${got} vs ${expected}`);
    }
  }
});

t.test('state is flat in the number of trajectories', async (t) => {
  const base = { leads: 4, members: 2, height: 8, width: 8, fields: ['a'] };
  const sizes: number[] = [];
  for (const trajectories of [2, 12]) {
    const reducer = new MetricsReducer({ snapshotLeads: [1] });
    for await (const chunk of syntheticRollouts({ ...base, trajectories })) reducer.add(chunk);
    const r = reducer.result();
    t.equal(r.rows.length, 4, `${trajectories} trajectories: one row per lead`);
    t.equal(r.snapshots.length, 1, `${trajectories} trajectories: one snapshot`);
    t.equal(r.rows[0]!.frames, trajectories, 'frames counted');
    sizes.push(reducer.stateSize());
  }
  t.equal(sizes[0], sizes[1], `reducer holds ${sizes[0]} numbers for 2 and for 12 trajectories`);
});

t.test('3D grids: spectra over three axes, snapshots are the middle slice of the last axis', async (t) => {
  const shape = [6, 5, 4];
  const n = 120;
  const truth = Float64Array.from({ length: n }, (_, p) => Math.sin(p) + (p % 4) * 10);
  const member = Float64Array.from(truth, (v, p) => v + 0.1 * Math.cos(3 * p));
  const result = await reduceMetrics([{ fields: ['q'], spatialShape: shape, lead: 1, truth, ensemble: [member] }], { snapshotLeads: [1] });
  const row = result.rows[0]!;
  t.ok(Number.isFinite(row.metrics.vrmse.mean) && Number.isFinite(row.metrics.spectral_mse_2.mean), 'scores are finite');
  const bins = [0, 1, 2].reduce((s, b) => s + row.metrics[`spectral_mse_${b}` as 'spectral_mse_0'].mean, 0);
  t.ok(Math.abs(bins - row.metrics.mse.mean) / row.metrics.mse.mean < 1e-6, 'the three bins still sum to the MSE in 3D');
  t.equal(result.spectra[0]!.frequencies.length, Math.floor((Math.sqrt(3) * 4) / 2), 'floor(sqrt(3) min(n) / 2) bins');
  const snap = result.snapshots[0]!;
  t.same(snap.shape, [6, 5]);
  t.same([...snap.truth], [...Float32Array.from({ length: 30 }, (_, i) => truth[i * 4 + 2]!)], 'slice at index 2 of the last axis');
});

t.test('bad input is named: chunk, model, trajectory, what was expected', async (t) => {
  const good: RolloutChunk = {
    model: 'm',
    trajectory: 3,
    fields: ['a'],
    spatialShape: [4, 4],
    lead: 1,
    truth: new Float32Array(16),
    ensemble: [new Float32Array(16)],
  };
  const reducer = new MetricsReducer();
  t.throws(() => reducer.add({ ...good, truth: new Float32Array(15) }), /rollout chunk 0, model "m", trajectory 3: "truth" has 15 values/);
  t.throws(() => reducer.add({ ...good, ensemble: [] }), /"ensemble" must hold at least one member/);
  t.throws(() => reducer.add({ ...good, ensemble: [new Float32Array(8)] }), /ensemble member 0 must be .* of 16 values/);
  t.throws(() => reducer.add({ ...good, spatialShape: [4, 0] }), /"spatialShape"/);
  reducer.add(good);
  t.throws(() => reducer.add({ ...good, spatialShape: [2, 8] }), /spatial shape 2x8 differs from the 4x4/);
  await t.rejects(reduceMetrics([{ ...good, fields: [] }]), /"fields" must list the channel names/);
});

t.test('synthetic rollouts: the seed fixes the truth, whatever the ensemble', async (t) => {
  const base = { trajectories: 2, leads: 3, height: 8, width: 8, seed: 5 };
  const a = await collect(syntheticRollouts({ ...base, members: 1 }));
  const b = await collect(syntheticRollouts({ ...base, members: 4, drift: 0.1 }));
  t.same(a.map((c) => [...c.truth]), b.map((c) => [...c.truth]), 'same truth');
  t.notSame([...a[0]!.ensemble[0]!], [...b[0]!.ensemble[0]!], 'different ensembles');
  const c = await collect(syntheticRollouts({ ...base, members: 1, seed: 6 }));
  t.notSame([...a[0]!.truth], [...c[0]!.truth], 'another seed, another truth');
});
