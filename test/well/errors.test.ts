/**
 * Bad input: missing, non-HDF5 and truncated files, missing groups/attributes/datasets, shapes that disagree
 * with n_trajectories/time/grid, non-finite values (error by default, counted when asked), a crashing worker,
 * and writer misuse. Each error must name the file, the HDF5 path and what was expected; nothing may hang.
 */
import t from 'tap';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import h5wasm from 'h5wasm/node';
import { writeWell, type WellTrajectory } from '../../src/formats/well/index.js';
import {
  closeWellPool,
  computeWellStats,
  openWell,
  openWellDataset,
  parseWellMeta,
  wellPool,
  WorkerCrashError,
} from '../../src/formats/well/index.js';
import type { RawGroup, WindowReadPlan } from '../../src/formats/well/raw.js';
import type { H5OpName } from '../../src/formats/well/protocol.js';
import { demoSpec, demoTrajectories, fixtures, tempDir } from './helpers.js';

t.teardown(closeWellPool);
const rb = join(fixtures, 'rayleigh_benard/data/train/rayleigh_benard_Rayleigh_1e6_Prandtl_1_mini.hdf5');

t.test('unreadable files', async (t) => {
  const dir = tempDir(t);
  await t.rejects(openWell(join(dir, 'missing.hdf5')), new RegExp(`${dir}/missing.hdf5: no such file`));
  writeFileSync(join(dir, 'text.hdf5'), 'not hdf5 at all\n'.repeat(100));
  await t.rejects(openWell(join(dir, 'text.hdf5')), /text\.hdf5: not an HDF5 file \(no HDF5 signature\)/);
  writeFileSync(join(dir, 'cut.hdf5'), readFileSync(rb).subarray(0, 100_000));
  await t.rejects(openWell(join(dir, 'cut.hdf5')), /cut\.hdf5: the HDF5 library could not open it \(HDF5: truncated file: eof = 100000.*stored_eof = 185744/);
  await t.rejects(openWellDataset(join(dir, 'nothing-here')), /nothing-here: no such file or directory/);
  const empty = tempDir(t);
  await t.rejects(openWellDataset(empty), new RegExp(`${empty}: directory has no \\.hdf5 files`));
});

t.test('structural problems name the HDF5 path and the expectation', async (t) => {
  const raw: RawGroup = await wellPool().call('describe', { path: rb }, 'test');
  const mutate = (fn: (r: RawGroup) => void) => {
    const copy = structuredClone(raw);
    fn(copy);
    return () => parseWellMeta('f.hdf5', copy);
  };
  t.doesNotThrow(mutate(() => undefined));
  t.throws(mutate((r) => delete r.children.t1_fields), /f\.hdf5: \/t1_fields: missing group/);
  t.throws(mutate((r) => delete r.attrs.n_trajectories), /f\.hdf5: \/: missing attribute "n_trajectories"/);
  t.throws(mutate((r) => delete (r.children.dimensions as RawGroup).children.time), /f\.hdf5: \/dimensions\/time: missing dataset/);
  t.throws(mutate((r) => delete (r.children.dimensions as RawGroup).children.y), /\/dimensions\/y: missing coordinate dataset/);
  t.throws(mutate((r) => delete (r.children.t0_fields as RawGroup).children.pressure), /\/t0_fields\/pressure: listed in field_names but missing/);
  t.throws(
    mutate((r) => delete ((r.children.t0_fields as RawGroup).children.buoyancy as { attrs: Record<string, unknown> }).attrs.dim_varying),
    /\/t0_fields\/buoyancy: missing attribute "dim_varying"/,
  );
  t.throws(mutate((r) => (r.attrs.n_spatial_dims = 3)), /\/dimensions: spatial_dims lists 2 names but n_spatial_dims is 3/);
  t.throws(mutate((r) => (r.attrs.n_trajectories = 'two')), /attribute "n_trajectories" should be a non-negative integer/);
  t.throws(
    mutate((r) => (((r.children.boundary_conditions as RawGroup).children.x_periodic as RawGroup).attrs.bc_type = 'SLIPPERY')),
    /\/boundary_conditions\/x_periodic: bc_type "SLIPPERY" is not WALL, OPEN or PERIODIC/,
  );
  t.throws(
    mutate((r) => ((((r.children.dimensions as RawGroup).children.time) as { shape: number[] }).shape = [9])),
    /\/t0_fields\/buoyancy: shape \[2,10,32,16\] does not match \[2,9,32,16\] \(n_trajectories=2, T=9/,
  );
  // a real file whose n_trajectories disagrees with the data
  const dir = tempDir(t);
  const bad = join(dir, 'bad.hdf5');
  copyFileSync(rb, bad);
  await h5wasm.ready;
  const f = new h5wasm.File(bad, 'a');
  f.delete_attribute('n_trajectories');
  f.create_attribute('n_trajectories', new BigInt64Array([5n]), [], '<q');
  f.close();
  await t.rejects(openWell(bad), /bad\.hdf5: \/t0_fields\/buoyancy: shape \[2,10,32,16\] does not match \[5,10,32,16\] \(n_trajectories=5, T=10, grid \[32,16\]/);
});

function nanTrajectories(): WellTrajectory[] {
  const spec = demoSpec(4, 3, 3);
  return demoTrajectories(spec, 2).map((tr, b) => ({
    constantFields: tr.constantFields!,
    frames: (function* () {
      let t = 0;
      for (const f of tr.frames as Iterable<{ fields: Record<string, Float32Array> }>) {
        if (b === 1 && t === 2) f.fields.pressure![5] = NaN;
        if (b === 1 && t === 2) f.fields.velocity![0] = Infinity;
        t++;
        yield f;
      }
    })(),
  }));
}

t.test('non-finite values: an error by default, counted when asked', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(4, 3, 3);
  await t.rejects(
    writeWell(nanTrajectories(), join(dir, 'nan.hdf5'), spec),
    /field pressure has 1 non-finite value\(s\) at trajectory 1, frame 2 \(expected finite numbers\)/,
  );
  t.same(readdirSync(dir), [], 'the failed write left nothing behind');
  const path = join(dir, 'nan.hdf5');
  const r = await writeWell(nanTrajectories(), path, spec, { nonFinite: 'count' });
  t.equal(r.nonFinite, 2);
  const ds = await openWellDataset(path, { nIn: 1, nOut: 1 });
  await t.rejects(
    (async () => {
      for await (const _ of ds.windows()) void _;
    })(),
    new RegExp(`${path}: /t0_fields/pressure has 1 non-finite value\\(s\\) in trajectory 1, frames 1\\.\\.2`),
  );
  const counting = await openWellDataset(path, { nIn: 1, nOut: 1, nonFinite: 'count' });
  const counts: number[] = [];
  for await (const s of counting.windows()) counts.push(s.nonFinite);
  t.same(counts, [0, 0, 0, 2], 'the last window of trajectory 1 holds both');
  await t.rejects(computeWellStats(path), /nan\.hdf5: \/t0_fields\/pressure has 1 non-finite value\(s\) in trajectory 1, the first \(NaN\) in frame 2 \(expected/);
  const counted = await computeWellStats(path, { nonFinite: 'count' });
  t.equal(counted.nonFinite, 2);
});

t.test('a crashed worker rejects with an error naming the file, and the pool recovers', async (t) => {
  const pool = wellPool(); // the shared pool: the crash takes one of its workers down
  const pending = pool.call('readWindow', { nonsense: true } as unknown as WindowReadPlan, 'warming up');
  await t.rejects(pending, /./, 'a malformed request is an error, not a hang');
  const err = await pool.call('__crash', {}, `reading trajectory 3 of ${rb}`).then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, WorkerCrashError);
  t.match(
    (err as Error).message,
    /HDF5 worker (crashed: deliberate crash requested by a test|exited with code 1) while reading trajectory 3 of .*rayleigh_benard_Rayleigh_1e6_Prandtl_1_mini\.hdf5/,
  );
  const meta = await openWell(rb, pool);
  t.equal(meta.datasetName, 'rayleigh_benard', 'a fresh worker serves the next request');
  // a name outside H5Ops does not compile (protocol.test.ts); a worker still answers one that arrives anyway
  await t.rejects(pool.call('noSuchOp' as H5OpName, {} as never, 'x'), /unknown HDF5 worker operation "noSuchOp"/);
});

t.test('writer misuse', async (t) => {
  const dir = tempDir(t);
  const spec = demoSpec(4, 3, 3);
  const dest = join(dir, 'out.hdf5');
  writeFileSync(dest, 'previous contents');
  const fewer = demoTrajectories(spec, 1).map((tr) => ({ ...tr, frames: [...(tr.frames as Iterable<unknown>)].slice(0, 2) })) as WellTrajectory[];
  await t.rejects(writeWell(fewer, dest, spec), /out\.hdf5: trajectory 0 has 2 frames, expected 3 \(length of spec\.time\)/);
  const more = demoTrajectories(spec, 1).map((tr) => ({ ...tr, frames: [...(tr.frames as Iterable<unknown>), ...(demoTrajectories(spec, 1)[0]!.frames as Iterable<unknown>)] })) as WellTrajectory[];
  await t.rejects(writeWell(more, dest, spec), /trajectory 0 has more than the 3 frames of spec\.time/);
  const wrongSize = [{ constantFields: { obstacle: new Float32Array(12) }, frames: [{ fields: { density: new Float32Array(11) } }] }];
  await t.rejects(writeWell(wrongSize, dest, spec), /trajectory 0, frame 0: field density has 11 values, expected 12 \(shape \[4,3\]\)/);
  const missing = [{ constantFields: { obstacle: new Float32Array(12) }, frames: [{ fields: { density: new Float32Array(12) } }] }];
  await t.rejects(writeWell(missing, dest, spec), /field pressure must be a Float32Array/);
  await t.rejects(writeWell([{ frames: [] }], dest, spec), /trajectory 0 constant fields: field obstacle must be a Float32Array/);
  const failing = (async function* () {
    yield* demoTrajectories(spec, 1);
    throw new Error('simulator diverged');
  })();
  await t.rejects(writeWell(failing, dest, spec), /simulator diverged/);
  t.equal(readFileSync(dest, 'utf8'), 'previous contents', 'the existing destination is untouched by failed writes');
  t.same(readdirSync(dir), ['out.hdf5'], 'no temporary files left');
  // spec validation
  const bad = (patch: object) => writeWell([], join(dir, 'x.hdf5'), { ...spec, ...patch });
  await t.rejects(bad({ spatialDims: [] }), /spatialDims must list 1 to 3 names/);
  await t.rejects(bad({ coords: { x: [0, 1] } }), /coords\.y is missing or empty/);
  await t.rejects(bad({ time: [] }), /time must have at least one entry/);
  await t.rejects(bad({ fields: [{ name: 'a', order: 0 }, { name: 'a', order: 1 }] }), /field "a" is listed twice/);
  await t.rejects(bad({ fields: [{ name: 'a', order: 3 }] }), /field a has order 3, expected 0, 1 or 2/);
  await t.rejects(bad({ boundaryConditions: [{ dim: 'z', bcType: 'WALL' }] }), /boundary condition on unknown dim "z"/);
  await t.rejects(bad({ boundaryConditions: [{ dim: 'x', bcType: 'WALL', mask: [true] }] }), /boundary mask for x_wall has 1 entries, expected 4/);
  t.notOk(existsSync(join(dir, 'x.hdf5')));
});

t.test('dataset argument errors', async (t) => {
  await t.rejects(openWellDataset(rb, { nIn: 0 }), /nIn must be a positive integer, got 0/);
  await t.rejects(openWellDataset(rb, { nIn: 9, nOut: 9 }).then((d) => d.locate(0)), /sample index 0 out of range \[0, 0\)/);
  await t.rejects(openWellDataset(rb, { fields: ['temperature'] }), /no time-varying field or channel "temperature" \(have buoyancy, pressure, velocity_x, velocity_y\)/);
  await t.rejects(openWellDataset(rb, { nIn: 10, fullTrajectory: true }), /trajectories of 10 frames are too short for nIn=10, dt=1/);
});
