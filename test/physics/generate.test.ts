import t from 'tap';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import h5wasm from 'h5wasm/node';
import { simulate, simulatedFrames, taskSpec } from '../../src/physics/simulate/index.js';
import { generateDataset, parameterSets } from '../../pipelines/jobs/generate.js';
import { collect } from '../../src/sinks/basic.js';
import { pipe } from '../../src/streams/core.js';
import { parseStatsYaml } from '../../src/formats/well/stats.js';
import { closeWellPool, openWellDataset, wellSplitDir } from '../../src/formats/well/index.js';
import { runJob, runTask, simulationTasks, trajectoryCachePath } from '../../src/physics/simulate/index.js';
import { writeWell } from '../../src/formats/well/index.js';

await h5wasm.ready;

interface Opened {
  attrs: Record<string, unknown>;
  get(path: string): { attrs: Record<string, { value: unknown }>; shape?: number[]; value?: unknown } | null;
  close(): void;
}

function open(path: string): Opened {
  const f = new h5wasm.File(path, 'r') as unknown as Opened & { attrs: Record<string, { value: unknown }> };
  return f;
}

function attr(node: { attrs: Record<string, { value: unknown }> }, name: string): unknown {
  const v = node.attrs[name]?.value;
  if (typeof v === 'bigint') return Number(v);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  return v;
}

const dir = await mkdtemp(join(tmpdir(), 'wellspring-generate-'));
t.teardown(async () => {
  await closeWellPool();
  await rm(dir, { recursive: true, force: true });
});

t.test('Euler dataset: The Well layout, names, attributes, splits and stats', async (t) => {
  const out = join(dir, 'euler');
  const reports: number[] = [];
  const result = await generateDataset({
    system: 'euler',
    out,
    resolution: 16,
    trajectories: 10,
    steps: 6,
    seed: 3,
    gammas: [1.4, 1.13],
    threads: 2,
    progress: (info) => reports.push(info.count),
  });
  const stems = ['euler_multi_quadrants_periodicBC_gamma_1.4_Dry_air_20', 'euler_multi_quadrants_periodicBC_gamma_1.13_C3H8_16'];
  t.same(result.generated, stems);
  t.equal(result.simulated, 20);
  t.ok(reports.length >= 2 && reports.at(-1) === 10, 'progress was reported');
  const counts: Record<string, number> = {};
  for (const split of ['train', 'valid', 'test']) {
    const names = (await readdir(join(out, 'data', split))).sort();
    t.same(names, stems.map((s) => `${s}.hdf5`).sort(), `${split} holds one file per gamma, no temporaries`);
    const f = open(join(out, 'data', split, `${stems[0]}.hdf5`));
    const root = f as unknown as { attrs: Record<string, { value: unknown }> };
    counts[split] = attr(root, 'n_trajectories') as number;
    t.equal(attr(root, 'dataset_name'), 'euler_multi_quadrants_periodicBC');
    t.equal(attr(root, 'n_spatial_dims'), 2);
    t.equal(attr(root, 'gamma'), 1.4);
    t.same(attr(root, 'simulation_parameters'), ['gamma']);
    t.same(attr(f.get('/t0_fields')!, 'field_names'), ['energy', 'density', 'pressure']);
    t.same(attr(f.get('/t1_fields')!, 'field_names'), ['momentum']);
    t.same(f.get('/t0_fields/density')!.shape, [counts[split], 6, 16, 16]);
    t.same(f.get('/t1_fields/momentum')!.shape, [counts[split], 6, 16, 16, 2]);
    t.equal(attr(f.get('/boundary_conditions/x_periodic')!, 'bc_type'), 'PERIODIC');
    t.equal(attr(f.get('/boundary_conditions/y_periodic')!, 'bc_type'), 'PERIODIC');
    const x = Array.from(f.get('/dimensions/x')!.value as Float32Array);
    t.ok(Math.abs(x[0] - 1 / 32) < 1e-7 && Math.abs(x[15] - 31 / 32) < 1e-7, 'cell centres on [0,1)');
    const time = Array.from(f.get('/dimensions/time')!.value as Float32Array);
    t.ok(Math.abs(time[5] - 0.075) < 1e-7);
    // pressure is consistent with the conservative fields, and mass is conserved (periodic)
    const rho = f.get('/t0_fields/density')!.value as Float32Array;
    const e = f.get('/t0_fields/energy')!.value as Float32Array;
    const p = f.get('/t0_fields/pressure')!.value as Float32Array;
    const m = f.get('/t1_fields/momentum')!.value as Float32Array;
    for (let k = 0; k < 256; k += 13) {
      const expected = 0.4 * (e[k] - (m[2 * k] ** 2 + m[2 * k + 1] ** 2) / (2 * rho[k]));
      if (Math.abs(expected - p[k]) > 1e-5 * Math.max(1, e[k])) t.fail(`pressure at ${k}`);
    }
    let first = 0;
    let last = 0;
    for (let k = 0; k < 256; k++) {
      first += rho[k];
      last += rho[5 * 256 + k];
    }
    t.ok(Math.abs(first - last) < 1e-4 * first, `mass conserved in trajectory 0 (${first} vs ${last})`);
    f.close();
  }
  t.same(counts, { train: 8, valid: 1, test: 1 }, '0.8 / 0.1 / 0.1 split');
  const stats = parseStatsYaml(await readFile(join(out, 'stats.yaml'), 'utf8'));
  t.ok((stats.mean.density as number) > 0.1 && (stats.mean.density as number) < 2.5, 'density mean is plausible');
  t.equal((stats.mean.momentum as number[]).length, 2);
  t.ok((stats.std_delta.energy as number) > 0);

  // the Well reader validates the files and reads back exactly what was simulated (trajectory 0 is in train)
  const dataset = await openWellDataset(wellSplitDir(out, 'train'), { nIn: 1, nOut: 1 });
  t.same(dataset.layout.names, ['energy', 'density', 'pressure', 'momentum_x', 'momentum_y']);
  t.equal(dataset.length, 2 * 8 * 5, 'two files x 8 trajectories x 5 windows');
  const sample = await dataset.sample(dataset.length / 2);
  t.same(sample.boundaryConditions.data, Float32Array.from([2, 2, 2, 2]), 'periodic on both axes');
  t.same(Array.from(sample.constantScalars!.data), [1.4]);
  const direct = runTask(simulationTasks(parameterSets({ system: 'euler', out, resolution: 16, trajectories: 10, steps: 6, gammas: [1.4] })[0], 10, 3)[0]);
  let mismatch = 0;
  for (let s = 0; s < 256; s++) {
    const c = sample.inputFields.data;
    mismatch = Math.max(mismatch, Math.abs(c[s * 5] - direct.energy[s]), Math.abs(c[s * 5 + 1] - direct.density[s]));
    mismatch = Math.max(mismatch, Math.abs(c[s * 5 + 3] - direct.momentum[2 * s]), Math.abs(c[s * 5 + 4] - direct.momentum[2 * s + 1]));
    mismatch = Math.max(mismatch, Math.abs(sample.outputFields.data[s * 5 + 2] - direct.pressure[256 + s]));
  }
  t.equal(mismatch, 0, 'round-trip through the Well reader is exact');

  // resuming keeps completed files and simulates nothing
  const before = (await stat(join(out, 'data', 'train', `${stems[0]}.hdf5`))).mtimeMs;
  const again = await generateDataset({ system: 'euler', out, resolution: 16, trajectories: 10, steps: 6, seed: 3, gammas: [1.4, 1.13], threads: 2, progress: false });
  t.same(again.kept, stems);
  t.equal(again.simulated, 0);
  t.equal((await stat(join(out, 'data', 'train', `${stems[0]}.hdf5`))).mtimeMs, before, 'completed file untouched');
  t.same(again.stats, result.stats, 'stats pooled from the kept records');

  // an interrupted set (missing file, stale temporary) is regenerated identically
  const trainPath = join(out, 'data', 'train', `${stems[1]}.hdf5`);
  const original = open(trainPath);
  const originalDensity = Float32Array.from(original.get('/t0_fields/density')!.value as Float32Array);
  original.close();
  await rm(join(out, 'data', 'test', `${stems[1]}.hdf5`));
  await writeFile(join(out, 'data', 'train', `.${stems[1]}.hdf5.tmp-1-dead`), 'partial');
  const resumed = await generateDataset({ system: 'euler', out, resolution: 16, trajectories: 10, steps: 6, seed: 3, gammas: [1.4, 1.13], threads: 1, progress: false });
  t.same(resumed.kept, [stems[0]]);
  t.same(resumed.generated, [stems[1]]);
  t.same((await readdir(join(out, 'data', 'train'))).filter((n) => n.startsWith('.')), [], 'stale temporary removed');
  const regenerated = open(trainPath);
  t.same(Float32Array.from(regenerated.get('/t0_fields/density')!.value as Float32Array), originalDensity, 'deterministic across thread counts');
  regenerated.close();

  // other settings in the same root are refused
  await t.rejects(
    generateDataset({ system: 'euler', out, resolution: 8, trajectories: 10, steps: 6, seed: 3, gammas: [1.4], progress: false }),
    /other settings/,
  );
});

t.test('an aborted generation leaves no dataset file, temporary or stats behind (only the trajectory cache)', async (t) => {
  const out = join(dir, 'aborted');
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('stop')), 1000);
  await t.rejects(
    generateDataset({ system: 'euler', out, resolution: 96, trajectories: 16, steps: 101, seed: 1, threads: 2, progress: false, signal: controller.signal }),
  );
  clearTimeout(timer);
  const left: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else left.push(join(d, e.name));
    }
  };
  await walk(out);
  t.same(left.filter((f) => f.includes(`${join(out, 'data')}`)), [], 'no dataset file or temporary');
  t.same(left.filter((f) => f.includes('.tmp-')), [], 'no temporary anywhere');
  t.notOk(left.some((f) => f.endsWith('stats.yaml')), 'no stats.yaml');
  // what may remain is the trajectory cache of the interrupted set: complete trajectories and their settings
  for (const f of left) t.match(f, /\.wellspring\/euler_multi_quadrants_periodicBC_gamma_1\.4_Dry_air_20\/(settings\.json|\d+\.f32)$/);
});

t.test('an interrupted set resumes from its trajectory cache with identical results', async (t) => {
  const out = join(dir, 'cached');
  const stem = 'euler_multi_quadrants_periodicBC_gamma_1.4_Dry_air_20';
  const template = parameterSets({ system: 'euler', out, resolution: 16, trajectories: 10, steps: 6, gammas: [1.4] })[0];
  const tasks = simulationTasks(template, 10, 3);
  // trajectories 0 and 3 were done before the interruption
  for (const i of [0, 3]) t.equal(runJob({ task: tasks[i], cache: trajectoryCachePath(out, stem, i) }).cached, false);
  t.equal(runJob({ task: tasks[3], cache: trajectoryCachePath(out, stem, 3) }).cached, true, 'a cached job is read back');
  const result = await generateDataset({ system: 'euler', out, resolution: 16, trajectories: 10, steps: 6, seed: 3, gammas: [1.4], threads: 2, progress: false });
  t.equal(result.fromCache, 2);
  t.equal(result.simulated, 8);
  const a = open(join(out, 'data', 'train', `${stem}.hdf5`));
  const b = open(join(dir, 'euler', 'data', 'train', `${stem}.hdf5`));
  t.same(
    Float32Array.from(a.get('/t1_fields/momentum')!.value as Float32Array),
    Float32Array.from(b.get('/t1_fields/momentum')!.value as Float32Array),
    'same data as an uninterrupted run',
  );
  a.close();
  b.close();
  t.same(await readdir(join(out, '.wellspring')), [`${stem}.json`], 'the cache is removed once the set is complete');
});

t.test('Rayleigh-Benard dataset: Chebyshev y grid, wall boundary group, scalars', async (t) => {
  const out = join(dir, 'rb');
  await generateDataset({
    system: 'rayleigh-benard',
    out,
    resolution: 8,
    trajectories: 3,
    steps: 5,
    seed: 1,
    rayleighs: [1e6],
    prandtls: [1],
    threads: 2,
    fractions: { train: 1, valid: 0, test: 0 },
    progress: false,
  });
  const f = open(join(out, 'data', 'train', 'rayleigh_benard_Rayleigh_1e6_Prandtl_1.hdf5'));
  const root = f as unknown as { attrs: Record<string, { value: unknown }> };
  t.equal(attr(root, 'dataset_name'), 'rayleigh_benard');
  t.same(attr(root, 'simulation_parameters'), ['Rayleigh', 'Prandtl']);
  t.equal(attr(root, 'Rayleigh'), 1e6);
  t.same(attr(f.get('/t0_fields')!, 'field_names'), ['buoyancy', 'pressure']);
  t.same(attr(f.get('/t1_fields')!, 'field_names'), ['velocity']);
  t.same(f.get('/t0_fields/buoyancy')!.shape, [3, 5, 32, 8]);
  t.equal(attr(f.get('/boundary_conditions/y_wall_dirichlet')!, 'bc_type'), 'WALL');
  t.equal(attr(f.get('/boundary_conditions/x_periodic')!, 'bc_type'), 'PERIODIC');
  const y = Array.from(f.get('/dimensions/y')!.value as Float32Array);
  t.ok(Math.abs(y[0] - 0.5 * (1 - Math.cos(Math.PI / 16))) < 1e-7, 'Chebyshev-Gauss nodes');
  const x = Array.from(f.get('/dimensions/x')!.value as Float32Array);
  t.same([x[0], x[1]], [0, 0.125]);
  const b = f.get('/t0_fields/buoyancy')!.value as Float32Array;
  // first frame: linear profile plus 1e-3 noise
  t.ok(Math.abs(b[0] - (1 - y[0])) < 0.01);
  t.equal(attr(f.get('/dimensions/time')!, 'time_varying'), 1);
  f.close();
  const dataset = await openWellDataset(wellSplitDir(out, 'train'), { nIn: 2, nOut: 1 });
  t.same(dataset.layout.names, ['buoyancy', 'pressure', 'velocity_x', 'velocity_y']);
  const sample = await dataset.sample(0);
  t.same(sample.boundaryConditions.data, Float32Array.from([2, 2, 0, 0]), 'periodic x, walls in y');
  t.same(Array.from(sample.constantScalars!.data), [1e6, 1]);
  t.ok((await readdir(out)).includes('stats.yaml'));
});

t.test('simulate source yields lazy trajectories that match the generator', async (t) => {
  const template = { system: 'euler' as const, resolution: 8, gamma: 1.4, boundary: 'open' as const, snapshots: 3, dt: 0.015 };
  const frames = await collect(pipe(simulate(template, 2, 5), simulatedFrames()));
  t.equal(frames.length, 6);
  t.same(frames.map((f) => [f.trajectory, f.t]), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
  t.equal(frames[0].fields.momentum.length, 128);
  const spec = taskSpec({ ...template, seed: 0 });
  t.same(spec.boundaryConditions?.map((b) => b.bcType), ['OPEN', 'OPEN']);
  // the documented path: simulate -> writeWell -> the Well reader
  const file = join(dir, 'single', 'euler_open.hdf5');
  const written = await writeWell(simulate(template, 2, 5), file, spec);
  t.equal(written.nTrajectories, 2);
  const dataset = await openWellDataset(file, { nIn: 1, nOut: 1 });
  t.equal(dataset.length, 2 * 2);
  const sample = await dataset.sample(2); // trajectory 1, frames 0 -> 1
  t.same(sample.boundaryConditions.data, Float32Array.from([1, 1, 1, 1]), 'open on both axes');
  t.equal(sample.outputFields.data[1], frames[4].fields.density[0]);
  t.throws(() => parameterSets({ system: 'rayleigh-benard', out: dir, resolution: 12, trajectories: 1 }), /power of two/);
  t.throws(() => parameterSets({ system: 'euler', out: dir, resolution: 8, trajectories: 0 }), /trajectories/);
  t.throws(() => parameterSets({ system: 'navier' as 'euler', out: dir, resolution: 8, trajectories: 1 }), /unknown system/);
});

t.test('stats.yaml covers every set in the root: a later generate that adds a gamma pools both', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-stats-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const base = { system: 'euler' as const, out, resolution: 16, trajectories: 5, steps: 6, seed: 3, threads: 1 };
  await generateDataset({ ...base, gammas: [1.4] });
  const alone = parseStatsYaml(await readFile(join(out, 'stats.yaml'), 'utf8'));
  const second = await generateDataset({ ...base, gammas: [1.13] });
  t.same(second.generated.length, 1);
  t.same(second.kept.length, 1, 'the earlier set is kept and pooled');
  const both = parseStatsYaml(await readFile(join(out, 'stats.yaml'), 'utf8'));
  const { computeWellStats } = await import('../../src/formats/well/compute-stats.js');
  const { stats: direct } = await computeWellStats(wellSplitDir(out, 'train'));
  for (const key of ['mean', 'std', 'rms'] as const) {
    for (const field of Object.keys(direct[key])) {
      const a = [direct[key][field]].flat(2) as number[];
      const b = [both[key][field]].flat(2) as number[];
      a.forEach((v, i) => t.ok(Math.abs(v - b[i]!) <= 2e-4 * Math.abs(v) + 1e-9, `${key}.${field}[${i}]: stats.yaml ${b[i]} = a pass over both train files ${v}`));
    }
  }
  t.not(JSON.stringify(both.mean), JSON.stringify(alone.mean), 'the pooled statistics differ from the first set alone');
  await closeWellPool();
});
