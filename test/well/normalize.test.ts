/**
 * Normalisers and their inverses on real fixture windows: z-score and RMS values against an independent
 * float64 formula, delta variants against explicit differences, inverses recovering the physical values,
 * log1p transforms, model-output denormalisation, and channel/field selection (stage and read-time).
 */
import t from 'tap';
import { join } from 'node:path';
import { pipe } from '../../src/streams/core.js';
import { collect } from '../../src/sinks/basic.js';
import {
  closeWellPool,
  denormalizeWindows,
  flatStat,
  normalizeWindows,
  openWellDataset,
  readStats,
  selectChannels,
  wellWindows,
  WellNormalizer,
  type WellSample,
  type WellStats,
} from '../../src/formats/well/index.js';
import { fixtures, worst } from './helpers.js';

t.teardown(closeWellPool);
const euler = join(fixtures, 'euler_multi_quadrants_periodicBC');
const split = join(euler, 'data/train');

async function someWindows(): Promise<{ samples: WellSample[]; stats: WellStats }> {
  const samples = await collect(wellWindows(split, { nIn: 2, nOut: 3, indices: [0, 7, 20] }));
  return { samples, stats: await readStats(euler) };
}

t.test('z-score and RMS follow the formula per channel; inverses restore the values', async (t) => {
  const { samples, stats } = await someWindows();
  const channels = samples[0]!.layout;
  t.same(channels.fields, ['energy', 'density', 'pressure', 'momentum', 'momentum']);
  t.same(channels.components, [0, 0, 0, 0, 1]);
  for (const kind of ['zscore', 'rms'] as const) {
    const normalized = await collect(pipe(samples, normalizeWindows(stats, { kind })));
    const restored = await collect(pipe(normalized, denormalizeWindows(stats, { kind })));
    normalized.forEach((n, i) => {
      const raw = samples[i]!;
      t.same(n.normalization, { kind, delta: false, transforms: {} });
      const C = 5;
      const expected = Array.from(raw.outputFields.data, (x, j) => {
        const f = channels.fields[j % C]!;
        const c = channels.components[j % C]!;
        const mean = kind === 'zscore' ? flatStat(stats.mean[f]!)[c]! : 0;
        const scale = flatStat((kind === 'zscore' ? stats.std : stats.rms)[f]!)[c]!;
        return (x - mean) / Math.max(scale, 1e-4);
      });
      const v = worst(n.outputFields.data, expected, 1e-5, 1e-5);
      t.ok(v.ratio <= 1, `${kind}: outputs of sample ${raw.origin.index}`, v);
      const back = worst(restored[i]!.inputFields.data, raw.inputFields.data, 1e-6, 1e-6);
      t.ok(back.ratio <= 1, `${kind}: inverse restores inputs`, back);
      const backOut = worst(restored[i]!.outputFields.data, raw.outputFields.data, 1e-6, 1e-6);
      t.ok(backOut.ratio <= 1, `${kind}: inverse restores outputs`, backOut);
      t.equal(restored[i]!.normalization, undefined);
      t.equal(raw.normalization, undefined, 'the input sample is not modified');
    });
  }
  const n = new WellNormalizer(stats, { kind: 'zscore' });
  t.throws(() => n.normalizeSample(n.normalizeSample(samples[0]!)), /already normalised/);
  t.throws(() => n.denormalizeSample(samples[0]!), /is not normalised/);
  t.throws(() => new WellNormalizer(stats, { kind: 'rms' }).denormalizeSample(n.normalizeSample(samples[0]!)), /normalised with zscore, this normaliser is rms/);
  t.throws(() => new WellNormalizer(stats, { kind: 'minmax' as 'rms' }), /must be "zscore" or "rms"/);
  const partial = { ...stats, std: { ...stats.std } };
  delete partial.std.pressure;
  t.throws(() => new WellNormalizer(partial, { kind: 'zscore' }).normalizeSample(samples[0]!), /no std entry for field "pressure"/);
});

t.test('delta variants normalise output differences and invert by accumulation', async (t) => {
  const { samples, stats } = await someWindows();
  const s = samples[1]!;
  const C = 5;
  const frame = s.inputFields.data.length / 2;
  for (const kind of ['zscore', 'rms'] as const) {
    const n = new WellNormalizer(stats, { kind, delta: true });
    const out = n.normalizeSample(s);
    const expected = Array.from(s.outputFields.data, (y, j) => {
      const prev = j < frame ? s.inputFields.data[frame + j]! : s.outputFields.data[j - frame]!;
      const f = s.layout.fields[j % C]!;
      const c = s.layout.components[j % C]!;
      const mean = kind === 'zscore' ? flatStat(stats.mean_delta[f]!)[c]! : 0;
      const scale = flatStat((kind === 'zscore' ? stats.std_delta : stats.rms_delta)[f]!)[c]!;
      return (y - prev - mean) / Math.max(scale, 1e-4);
    });
    const v = worst(out.outputFields.data, expected, 1e-4, 1e-3);
    t.ok(v.ratio <= 1, `${kind} delta outputs`, v);
    const inputsPlain = new WellNormalizer(stats, { kind }).normalizeSample(s).inputFields.data;
    t.same(Array.from(out.inputFields.data), Array.from(inputsPlain), 'inputs use the plain statistics');
    const back = n.denormalizeSample(out);
    const r = worst(back.outputFields.data, s.outputFields.data, 1e-5, 1e-6);
    t.ok(r.ratio <= 1, `${kind} delta inverse restores the outputs`, r);
    // model outputs: the same inverse from normalised predictions and the last physical input frame
    const pred = n.denormalizeOutputs(out.outputFields, s.layout, s.inputFields.data.subarray(frame));
    const p = worst(pred, s.outputFields.data, 1e-5, 1e-6);
    t.ok(p.ratio <= 1, `${kind} denormalizeOutputs`, p);
    t.throws(() => n.denormalizeOutputs(out.outputFields, s.layout), /needs the last input frame/);
  }
});

t.test('log1p transforms apply before normalising and are undone after', async (t) => {
  const { samples, stats } = await someWindows();
  const s = samples[0]!;
  const n = new WellNormalizer(stats, { kind: 'rms', transforms: { density: 'log1p' } });
  const out = n.normalizeSample(s);
  const C = 5;
  const densityChannel = 1;
  const rmsDensity = stats.rms.density as number;
  for (let j = densityChannel; j < 40; j += C) {
    const want = Math.log1p(s.inputFields.data[j]!) / rmsDensity;
    t.ok(Math.abs(out.inputFields.data[j]! - want) <= 1e-5 * Math.abs(want), `density value ${j}`);
  }
  t.equal(out.inputFields.data[0], Math.fround(s.inputFields.data[0]! / (stats.rms.energy as number)), 'other fields untouched by the transform');
  const back = n.denormalizeSample(out);
  const r = worst(back.inputFields.data, s.inputFields.data, 1e-5, 1e-6);
  t.ok(r.ratio <= 1, 'expm1 inverse', r);
  const negative = { ...s, inputFields: { data: s.inputFields.data.map(() => -2), shape: s.inputFields.shape } };
  t.throws(() => n.normalizeSample(negative), /log1p transform of channel density: value -2 <= -1/);
});

t.test('channel and field selection', async (t) => {
  const { samples } = await someWindows();
  const picked = await collect(pipe(samples, selectChannels(['momentum', 'density'])));
  t.same(picked[0]!.layout.names, ['momentum_x', 'momentum_y', 'density']);
  t.same(picked[0]!.inputFields.shape, [2, 32, 32, 3]);
  const C = 5;
  for (let s = 0; s < 50; s++) {
    t.equal(picked[0]!.outputFields.data[s * 3 + 0], samples[0]!.outputFields.data[s * C + 3]);
    t.equal(picked[0]!.outputFields.data[s * 3 + 2], samples[0]!.outputFields.data[s * C + 1]);
  }
  await t.rejects(collect(pipe(samples, selectChannels(['vorticity']))), /no channel or field "vorticity"/);
  // read-time selection reads only the named fields and keeps only named channels
  const ds = await openWellDataset(split, { nIn: 2, nOut: 3, fields: ['pressure', 'momentum_y'] });
  t.same(ds.layout.names, ['pressure', 'momentum_y']);
  const [s0] = await collect(ds.windows({ indices: [7] }));
  for (let s = 0; s < 50; s++) {
    t.equal(s0!.inputFields.data[s * 2], samples[1]!.inputFields.data[s * C + 2]);
    t.equal(s0!.inputFields.data[s * 2 + 1], samples[1]!.inputFields.data[s * C + 4]);
  }
});

t.test('read-time normalisation in the workers equals the stage, bit for bit, and inverts', async (t) => {
  const stats = await readStats(euler);
  const indices = [0, 7, 20];
  const raw = await collect(wellWindows(split, { nIn: 2, nOut: 3, indices }));
  for (const options of [
    { kind: 'zscore' as const },
    { kind: 'rms' as const },
    { kind: 'zscore' as const, delta: true },
    { kind: 'rms' as const, delta: true, transforms: { density: 'log1p' as const } },
  ]) {
    const normalizer = new WellNormalizer(stats, options);
    const atRead = await collect(wellWindows(split, { nIn: 2, nOut: 3, indices, normalize: normalizer }));
    const staged = await collect(pipe(raw, normalizeWindows(stats, options)));
    const label = JSON.stringify(options);
    atRead.forEach((s, i) => {
      t.same(s.normalization, staged[i]!.normalization, `${label}: recorded`);
      t.ok(Buffer.from(s.inputFields.data.buffer, s.inputFields.data.byteOffset, s.inputFields.data.byteLength).equals(
        Buffer.from(staged[i]!.inputFields.data.buffer, staged[i]!.inputFields.data.byteOffset, staged[i]!.inputFields.data.byteLength)), `${label}: inputs identical`);
      t.same(Array.from(s.outputFields.data), Array.from(staged[i]!.outputFields.data), `${label}: outputs identical`);
    });
    const back = await collect(pipe(atRead, denormalizeWindows(stats, options)));
    const r = worst(back[2]!.outputFields.data, raw[2]!.outputFields.data, 1e-5, 1e-6);
    t.ok(r.ratio <= 1, `${label}: inverse`, r);
  }
  // trajectory frames get the plain normalisation
  const normalizer = new WellNormalizer(stats, { kind: 'zscore', delta: true });
  const ds = await openWellDataset(split, { normalize: normalizer });
  for await (const tr of ds.trajectories({ trajectories: [{ fileIndex: 0, trajectory: 1 }], start: 3 })) {
    t.same(tr.normalization, { kind: 'zscore', delta: false, transforms: {} });
    for await (const f of tr.frames) {
      if (f.t !== 3) continue;
      const plain = await openWellDataset(split, { nIn: 1, nOut: 1 });
      const [w] = await collect(plain.windows({ indices: [plain.windowsPerTrajectory[0]! + 3] }));
      t.same(Array.from(f.channels), Array.from(normalizer.normalize(w!.inputFields.data, tr.layout)), 'frame 3 of trajectory 1');
    }
  }
});
