/**
 * Writer -> reader round trips on random data: every frame of every trajectory reads back bit-exact through
 * windows and through trajectory streams, with metadata, constant fields, scalars, boundary codes and times;
 * non-varying axes (dim_varying false) are broadcast; the dataset-root writer's splits and stats.yaml agree
 * with a separate streaming pass over the written train split; h5dump sees the expected structure.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import h5wasm from 'h5wasm/node';
import { writeWell, writeWellDataset, channelsToFields, splitFor, type WellFileSpec } from '../../src/formats/well/index.js';
import { seededPermutation } from '../../src/streams/random.js';
import {
  closeWellPool,
  computeWellStats,
  flatStat,
  formatSci,
  openWell,
  openWellDataset,
  readStats,
  wellTrajectories,
  wellWindows,
  STAT_KEYS,
} from '../../src/formats/well/index.js';
import { demoSpec, demoTrajectories, randomArray, tempDir } from './helpers.js';

t.teardown(closeWellPool);

/** Reference channel-last frame built independently from the per-field arrays written. */
function expectedFrame(spec: WellFileSpec, fields: Record<string, Float32Array>): Float32Array {
  const X = spec.coords.x!.length;
  const Y = spec.coords.y!.length;
  const parts = [
    ['density', 1],
    ['pressure', 1],
    ['velocity', 2],
    ['stress', 4],
  ] as const;
  const C = 8;
  const out = new Float32Array(X * Y * C);
  for (let s = 0; s < X * Y; s++) {
    let c = 0;
    for (const [name, k] of parts) for (let j = 0; j < k; j++) out[s * C + c++] = fields[name]![s * k + j]!;
  }
  return out;
}

t.test('writeWell -> windows and trajectories read back exactly', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(6, 5, 7);
  const path = join(dir, 'demo.hdf5');
  const seen: number[] = [];
  const result = await writeWell(demoTrajectories(spec, 3, 5), path, spec, { compression: 4, onTrajectory: (i) => seen.push(i) });
  t.same(seen, [0, 1, 2]);
  t.match(result, { path, nTrajectories: 3, nSteps: 7, nonFinite: 0, moments: null });
  t.same(readdirSync(dir), ['demo.hdf5'], 'no temporary file left');

  const meta = await openWell(path);
  t.equal(meta.datasetName, 'demo');
  t.equal(meta.nTrajectories, 3);
  t.equal(meta.nSteps, 7);
  t.same(meta.spatialDims, ['x', 'y']);
  t.same(meta.spatialShape, [6, 5]);
  t.same(Array.from(meta.time), Array.from(Float32Array.from(spec.time)));
  t.same(meta.layout.names, ['density', 'pressure', 'velocity_x', 'velocity_y', 'stress_xx', 'stress_xy', 'stress_yx', 'stress_yy']);
  t.same(meta.constantLayout.names, ['obstacle']);
  t.same(meta.constantScalars.map((s) => [s.name, s.values[0], s.dtype]), [['gamma', 1.4, 'float64'], ['Reynolds', 1000, 'float64']]);
  t.same(meta.simulationParameters, { gamma: 1.4, Reynolds: 1000 });
  t.same(Array.from(meta.boundaryTable), [2, 2, 0, 0], 'x periodic, y wall');
  t.equal(meta.fields.find((f) => f.name === 'stress')!.symmetric, true);

  // independent expectation of every frame
  const frames = demoTrajectories(spec, 3, 5).map((tr) => [...(tr.frames as Iterable<{ fields: Record<string, Float32Array> }>)].map((f) => expectedFrame(spec, f.fields)));
  const constants = demoTrajectories(spec, 3, 5).map((tr) => tr.constantFields!.obstacle!);

  const ds = await openWellDataset(path, { nIn: 2, nOut: 2, dt: 2 });
  t.equal(ds.length, 3 * (7 - 2 * 3), 'windows: T - dt (nIn + nOut - 1) per trajectory');
  let checked = 0;
  for await (const s of ds.windows()) {
    const { trajectory: b, t0 } = s.origin;
    const want = [0, 1, 2, 3].map((k) => frames[b]![t0 + 2 * k]!);
    const got = [s.inputFields.data, s.outputFields.data];
    t.same(Array.from(got[0]!), [...want[0]!, ...want[1]!], `inputs of trajectory ${b} t0 ${t0}`);
    t.same(Array.from(got[1]!), [...want[2]!, ...want[3]!], `outputs of trajectory ${b} t0 ${t0}`);
    t.same(Array.from(s.constantFields!.data), Array.from(constants[b]!), 'constant field');
    t.same(Array.from(s.inputTimeGrid.data), [0, 0.25]);
    t.same(Array.from(s.outputTimeGrid.data), [0.5, 0.75]);
    t.same(Array.from(s.constantScalars!.data), [1.4, 1000]);
    checked++;
  }
  t.equal(checked, ds.length);

  // trajectories from a start offset, read in blocks that do not divide the length
  let n = 0;
  for await (const tr of wellTrajectories(path, { start: 2, framesPerRead: 3 })) {
    const b = tr.origin.trajectory;
    t.equal(tr.nFrames, 5);
    const got: number[] = [];
    for await (const f of tr.frames) {
      t.same(Array.from(f.channels), Array.from(frames[b]![f.t]!), `trajectory ${b} frame ${f.t}`);
      got.push(f.t);
    }
    t.same(got, [2, 3, 4, 5, 6]);
    n++;
  }
  t.equal(n, 3);

  // channel-last frames written back through the writer give the same file contents
  const copy = join(dir, 'copy.hdf5');
  await writeWell(
    (async function* () {
      for await (const tr of wellTrajectories(path)) {
        yield { frames: (async function* () { for await (const f of tr.frames) yield { channels: f.channels }; })(), constantFields: { obstacle: tr.constantFields!.data } };
      }
    })(),
    copy,
    spec,
  );
  const again = await openWellDataset(copy, { nIn: 2, nOut: 2, dt: 2 });
  for await (const s of again.windows({ indices: [0, again.length - 1] })) {
    t.same(Array.from(s.inputFields.data.subarray(0, 40)), Array.from(frames[s.origin.trajectory]![s.origin.t0]!.subarray(0, 40)), 'copy reads back');
  }
});

t.test('shuffled windows: a seeded permutation covering every sample once', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(4, 3, 6);
  const path = join(dir, 'a.hdf5');
  await writeWell(demoTrajectories(spec, 4, 9), path, spec);
  const order = async (seed: number, epoch = 0) => {
    const out: number[] = [];
    for await (const s of wellWindows([path, path], { nIn: 1, nOut: 1, shuffle: true, seed, epoch })) out.push(s.origin.index);
    return out;
  };
  const a = await order(3);
  t.same([...a].sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i), 'two copies of the file: 2 x 4 x 5 samples, each once');
  t.same(await order(3), a, 'same seed, same order');
  t.not((await order(3, 1)).join(), a.join(), 'another epoch, another order');
  t.not((await order(4)).join(), a.join(), 'another seed, another order');
  t.same(Array.from(seededPermutation(5, 1)).sort(), [0, 1, 2, 3, 4]);
});

t.test('fields with a non-varying axis (dim_varying false) are stored without it and broadcast on read', async (t) => {
  const dir = tempDir(t);
  const X = 4, Y = 3, T = 3;
  const spec: WellFileSpec = {
    datasetName: 'profile',
    spatialDims: ['x', 'y'],
    coords: { x: [0, 1, 2, 3], y: [0, 0.5, 1] },
    time: [0, 1, 2],
    fields: [
      { name: 'u', order: 0 },
      { name: 'inflow', order: 0, dimVarying: [false, true] }, // varies along y only: stored (B, T, Y)
      { name: 'g', order: 1, timeVarying: false, sampleVarying: false, dimVarying: [false, false] }, // stored (2,)
    ],
  };
  const path = join(dir, 'p.hdf5');
  await writeWell(
    [0, 1].map((b) => ({
      constantFields: { g: new Float32Array([0, -9.81]) },
      frames: [0, 1, 2].map((tt) => ({
        fields: { u: randomArray(X * Y, b * 10 + tt), inflow: Float32Array.from([1, 2, 3], (v) => v + 10 * tt + 100 * b) },
      })),
    })),
    path,
    spec,
  );
  const meta = await openWell(path);
  const inflow = meta.fields.find((f) => f.name === 'inflow')!;
  t.same(inflow.shape, [2, T, Y], 'stored without the x axis');
  t.same(inflow.dimVarying, [false, true]);
  t.same(meta.constantFields[0]!.shape, [2], 'constant, not sample-varying vector: (D,)');
  const ds = await openWellDataset(path, { nIn: 1, nOut: 1 });
  for await (const s of ds.windows({ indices: [3] })) {
    t.same(s.origin, { file: path, fileIndex: 0, trajectory: 1, t0: 1, dt: 1, index: 3 });
    const C = 2;
    for (let x = 0; x < X; x++)
      for (let y = 0; y < Y; y++) t.equal(s.inputFields.data[(x * Y + y) * C + 1], y + 1 + 10 + 100, `inflow broadcast at x=${x}, y=${y}`);
    t.same(s.constantFields!.shape, [X, Y, 2]);
    t.same(Array.from(s.constantFields!.data.subarray(0, 4)), [0, Math.fround(-9.81), 0, Math.fround(-9.81)], 'broadcast everywhere');
  }
  // statistics pool the stored values (as The Well's script does), not broadcast copies
  const { stats } = await computeWellStats(path);
  t.ok(Math.abs((stats.mean.inflow as number) - meanOfInflow()) < 1e-9, `inflow mean over the 18 stored values: ${stats.mean.inflow}`);
  t.same(flatStat(stats.mean.g!), [0, Math.fround(-9.81)]);
});

function meanOfInflow(): number {
  let s = 0;
  let n = 0;
  for (const b of [0, 1]) for (const tt of [0, 1, 2]) for (const v of [1, 2, 3]) (s += v + 10 * tt + 100 * b), n++;
  return s / n;
}

t.test('writeWellDataset: splits by fraction, stats.yaml equals a separate pass over train', async (t) => {
  const root = tempDir(t);
  const spec = demoSpec(5, 4, 5);
  const r = await writeWellDataset(demoTrajectories(spec, 10, 3), root, spec, { fileName: 'demo_set' });
  t.same(
    Object.fromEntries(Object.entries(r.files).map(([k, v]) => [k, v!.nTrajectories])),
    { train: 8, valid: 1, test: 1 },
  );
  for (const split of ['train', 'valid', 'test']) t.ok(existsSync(join(root, 'data', split, 'demo_set.hdf5')), `${split} file`);
  const written = await readStats(root);
  const { stats } = await computeWellStats(join(root, 'data/train'));
  for (const key of STAT_KEYS) {
    for (const [field, v] of Object.entries(stats[key])) {
      t.same(flatStat(written[key][field]!).map(formatSci), flatStat(v).map(formatSci), `${key}.${field}`);
    }
  }
  t.equal(Object.keys(written.mean_delta).includes('obstacle'), false, 'no delta stats for a constant field');
  // explicit per-split sources
  const root2 = tempDir(t);
  const r2 = await writeWellDataset({ train: demoTrajectories(spec, 2, 1), test: demoTrajectories(spec, 1, 2) }, root2, spec, { fileName: 'x.hdf5' });
  t.same([r2.files.train!.nTrajectories, r2.files.valid!.nTrajectories, r2.files.test!.nTrajectories], [2, 0, 1]);
  const empty = await openWellDataset(join(root2, 'data/valid'), { nIn: 1 });
  t.equal(empty.length, 0, 'an empty split reads as zero samples');
  // dealing keeps prefixes close to the fractions
  const counts = { train: 0, valid: 0, test: 0 };
  const f = { train: 0.8, valid: 0.1, test: 0.1 };
  const dealt = Array.from({ length: 20 }, (_, i) => {
    const s = splitFor(i, counts, f);
    counts[s]++;
    return s;
  });
  t.same(counts, { train: 16, valid: 2, test: 2 });
  t.equal(dealt.slice(0, 10).filter((s) => s === 'train').length, 8);
});

t.test('channelsToFields splits channel-last frames and checks sizes', async (t) => {
  const spec = demoSpec(2, 2, 1);
  const ch = Float32Array.from({ length: 4 * 8 }, (_, i) => i);
  const f = channelsToFields(spec, ch);
  t.same(Array.from(f.density!), [0, 8, 16, 24]);
  t.same(Array.from(f.velocity!), [2, 3, 10, 11, 18, 19, 26, 27]);
  t.throws(() => channelsToFields(spec, new Float32Array(5)), /expected 4 points x 8 channels/);
});

const hasH5dump = spawnSync('h5dump', ['--version']).status === 0;
t.test('written files pass h5dump structure checks', { skip: hasH5dump ? false : 'h5dump (Debian hdf5-tools) is not installed' }, async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(6, 5, 4);
  const path = join(dir, 'demo.hdf5');
  await writeWell(demoTrajectories(spec, 2), path, spec, { compression: 6, chunkFrames: 2 });
  const header = execFileSync('h5dump', ['-H', '-p', path], { encoding: 'utf8' });
  const datasetBlock = (name: string) => {
    const i = header.indexOf(`DATASET "${name}"`);
    t.ok(i >= 0, `dataset ${name} present`);
    return header.slice(i, header.indexOf('DATASET "', i + 10) >>> 0 || undefined);
  };
  for (const g of ['boundary_conditions', 'dimensions', 'scalars', 't0_fields', 't1_fields', 't2_fields']) {
    t.match(header, new RegExp(`GROUP "${g}"`), `group ${g}`);
  }
  t.match(datasetBlock('density'), /DATASPACE\s+SIMPLE \{ \( 2, 4, 6, 5 \) \/ \( H5S_UNLIMITED, 4, 6, 5 \) \}/, 'density: (B, T, X, Y), resizable along B');
  t.match(datasetBlock('density'), /CHUNKED \( 1, 2, 6, 5 \)/, 'chunked per trajectory and 2 frames');
  t.match(datasetBlock('density'), /COMPRESSION DEFLATE \{ LEVEL 6 \}/, 'gzip level 6');
  t.match(datasetBlock('velocity'), /\( 2, 4, 6, 5, 2 \)/);
  t.match(datasetBlock('stress'), /\( 2, 4, 6, 5, 2, 2 \)/);
  t.match(datasetBlock('obstacle'), /\( 2, 6, 5 \)/, 'constant field has no time axis');
  t.match(datasetBlock('time'), /H5T_IEEE_F32LE[\s\S]*\( 4 \) \/ \( 4 \)/);
  t.match(datasetBlock('mask'), /H5T_STD_I8LE/, 'boolean masks as int8');
  const attrs = execFileSync('h5dump', ['-A', '-a', '/n_trajectories', path], { encoding: 'utf8' });
  t.match(attrs, /H5T_STD_I64LE[\s\S]*\(0\): 2/, 'n_trajectories int64 = 2');
  const names = execFileSync('h5dump', ['-a', '/t0_fields/field_names', path], { encoding: 'utf8' });
  t.match(names, /"density", "pressure"/, 'field_names in spec order');
  const vals = execFileSync('h5dump', ['-d', '/boundary_conditions/y_wall_dirichlet/mask', path], { encoding: 'utf8' });
  t.match(vals, /\(0\): 1, 0, 0, 0, 1/, 'mask true at both ends');
  const fileBytes = readFileSync(path).subarray(0, 8);
  t.same([...fileBytes], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a], 'HDF5 signature');
});

t.test('time-varying and per-trajectory scalars become input/output/constant scalars', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(3, 2, 5);
  const path = join(dir, 's.hdf5');
  await writeWell(demoTrajectories(spec, 2), path, spec);
  // add scalars the writer does not produce, the way h5py files carry them
  await h5wasm.ready;
  const f = new h5wasm.File(path, 'a');
  const g = f.get('scalars') as InstanceType<typeof h5wasm.Group>;
  const forcing = g.create_dataset({ name: 'forcing', data: Float32Array.from({ length: 10 }, (_, i) => i * 0.5), shape: [2, 5], dtype: '<f' });
  forcing.create_attribute('sample_varying', new Int8Array([1]), [], '<b');
  forcing.create_attribute('time_varying', new Int8Array([1]), [], '<b');
  const seedDs = g.create_dataset({ name: 'seed', data: new Float64Array([11, 22]), shape: [2], dtype: '<d' });
  seedDs.create_attribute('sample_varying', new Int8Array([1]), [], '<b');
  seedDs.create_attribute('time_varying', new Int8Array([0]), [], '<b');
  g.delete_attribute('field_names');
  g.create_attribute('field_names', ['gamma', 'forcing', 'seed', 'Reynolds']);
  f.close();
  const ds = await openWellDataset(path, { nIn: 2, nOut: 1 });
  t.same(ds.files[0]!.scalars.map((s) => s.name), ['forcing']);
  t.same(ds.files[0]!.constantScalars.map((s) => s.name), ['gamma', 'seed', 'Reynolds']);
  const [s] = await collectSamples(ds.windows({ indices: [4] })); // trajectory 1, t0 1
  t.same(s!.origin.trajectory, 1);
  t.same(s!.inputScalars, { data: Float32Array.from([3, 3.5]), shape: [2, 1] });
  t.same(s!.outputScalars, { data: Float32Array.from([4]), shape: [1, 1] });
  t.same(Array.from(s!.constantScalars!.data), [1.4, 22, 1000]);
});

async function collectSamples<A>(it: AsyncIterable<A>): Promise<A[]> {
  const out: A[] = [];
  for await (const x of it) out.push(x);
  return out;
}

t.test('leaving window and trajectory streams early neither hangs nor leaks requests', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(4, 3, 8);
  const path = join(dir, 'e.hdf5');
  await writeWell(demoTrajectories(spec, 3), path, spec);
  let n = 0;
  for await (const s of wellWindows(path, { nIn: 2, nOut: 1, prefetch: 6 })) {
    t.ok(s.inputFields.data.length > 0);
    if (++n === 2) break;
  }
  t.equal(n, 2, 'broke out after two samples with six reads in flight');
  let frames = 0;
  for await (const tr of wellTrajectories(path, { framesPerRead: 2 })) {
    for await (const f of tr.frames) {
      frames++;
      if (f.t === 2) break; // abandon the trajectory mid-stream, one read ahead in flight
    }
    if (tr.origin.trajectory === 1) break;
  }
  t.equal(frames, 6, 'three frames of each of two trajectories');
  // the pool still answers promptly afterwards
  const meta = await openWell(path);
  t.equal(meta.nTrajectories, 3);
});
