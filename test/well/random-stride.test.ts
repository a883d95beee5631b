/**
 * The random time stride (`dt < maxDt`) against The Well's reference loader (`random_stride_*.json`, recorded by
 * test/fixtures/well/make_random_stride_oracle.py from the unmodified reference on the fixture files): the same
 * windows and index mapping, the same set of strides each sample draws from, the same sample read for a given
 * stride; and the seeded draw: reproducible, independent of read order, every allowed stride about equally often.
 */
import t, { type Test } from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openWellDataset, closeWellPool, type WellSample } from '../../src/formats/well/index.js';
import { fixtures, worst } from './helpers.js';

interface Summary { shape: number[]; sum: number[]; sum_abs: number[]; head: number[] }
interface OracleSample {
  index: number; file_index: number; trajectory: number; time_index: number; randint: [number, number] | null; dt_stride: number;
  input_fields: Summary; output_fields: Summary; input_time_grid: number[]; output_time_grid: number[];
}
interface Oracle {
  dataset: string; config_name: string; length: number; n_windows_per_trajectory: number[];
  reader_args: { n_steps_input: number; n_steps_output: number; min_dt_stride: number; max_dt_stride: number };
  samples: OracleSample[];
}

const files = readdirSync(fixtures).filter((f) => /^random_stride_.*\.json$/.test(f)).sort();
t.equal(files.length, 3, 'three recorded configurations');
t.teardown(closeWellPool);

function checkSummary(t: Test, where: string, got: WellSample['inputFields'], ref: Summary): void {
  t.same(got.shape, ref.shape, `${where}: shape`);
  const C = ref.shape.at(-1)!;
  const sum = new Array<number>(C).fill(0);
  for (let i = 0; i < got.data.length; i++) sum[i % C] += got.data[i]!;
  const bad = sum.findIndex((s, c) => Math.abs(s - ref.sum[c]!) > 1e-5 * ref.sum_abs[c]! + 1e-9);
  t.equal(bad, -1, `${where}: per-channel sums`, { got: sum, expected: ref.sum });
  const v = worst(got.data.subarray(0, ref.head.length), ref.head, 2e-6, 2e-6);
  t.ok(v.ratio <= 1, `${where}: first values`, v);
}

for (const file of files) {
  t.test(file, async (t) => {
    const o = JSON.parse(readFileSync(join(fixtures, file), 'utf8')) as Oracle;
    const ra = o.reader_args;
    t.ok(ra.min_dt_stride < ra.max_dt_stride, 'a random stride');
    const ds = await openWellDataset(join(fixtures, o.dataset, 'data', 'train'), {
      nIn: ra.n_steps_input, nOut: ra.n_steps_output, dt: ra.min_dt_stride, maxDt: ra.max_dt_stride,
    });
    t.equal(ds.length, o.length, 'length');
    t.same(ds.windowsPerTrajectory, o.n_windows_per_trajectory, 'windows per trajectory (counted with the smallest stride)');
    let draws = 0;
    for (const s of o.samples) {
      const where = `sample ${s.index}`;
      t.same(ds.locate(s.index), { fileIndex: s.file_index, trajectory: s.trajectory, t0: s.time_index }, `${where}: location`);
      const range = ds.strideRange(s.index);
      // The reference draws randint(low, high) (high exclusive) or, without room for a longer stride, uses low.
      const expected = s.randint ? { min: s.randint[0], max: s.randint[1] - 1 } : { min: ra.min_dt_stride, max: ra.min_dt_stride };
      t.same(range, expected, `${where}: strides drawn from`);
      if (s.randint) draws++;
      const drawn = ds.strideOf(s.index, { seed: 3, epoch: 1 });
      t.ok(drawn >= range.min && drawn <= range.max, `${where}: seeded stride ${drawn} in range`);
      const sample = await ds.sample(s.index, { dt: s.dt_stride });
      t.equal(sample.origin.dt, s.dt_stride, `${where}: stride recorded in origin`);
      checkSummary(t, `${where} (stride ${s.dt_stride}) input`, sample.inputFields, s.input_fields);
      checkSummary(t, `${where} (stride ${s.dt_stride}) output`, sample.outputFields, s.output_fields);
      const grid = worst([...sample.inputTimeGrid.data, ...sample.outputTimeGrid.data], [...s.input_time_grid, ...s.output_time_grid], 1e-6, 1e-7);
      t.ok(grid.ratio <= 1, `${where}: time grids`, grid);
    }
    t.ok(draws > 0 && draws < o.samples.length, `some samples draw (${draws}) and some cannot`);
    await t.rejects(ds.sample(0, { dt: ra.max_dt_stride + 1 }), /stride .* outside/);
  });
}

t.test('the seeded stride draw: reproducible, order-free, uniform over the allowed strides', async (t) => {
  const dir = join(fixtures, 'euler_multi_quadrants_periodicBC', 'data', 'train');
  const ds = await openWellDataset(dir, { nIn: 2, nOut: 1, dt: 1, maxDt: 3 });
  const inOrder: number[] = [];
  for await (const s of ds.windows({ seed: 5, epoch: 2 })) inOrder.push(s.origin.dt);
  const shuffled = new Map<number, number>();
  for await (const s of ds.windows({ seed: 5, epoch: 2, shuffle: true, prefetch: 1 })) shuffled.set(s.origin.index, s.origin.dt);
  t.same(inOrder, inOrder.map((_, i) => shuffled.get(i)), 'the same stride per sample whatever the order of reads');
  t.same(inOrder, inOrder.map((_, i) => ds.strideOf(i, { seed: 5, epoch: 2 })), 'windows use strideOf');
  const other: number[] = [];
  for await (const s of ds.windows({ seed: 5, epoch: 3 })) other.push(s.origin.dt);
  t.not(other.join(), inOrder.join(), 'another epoch draws other strides');
  // Sample 0 (t0 = 0 of 12 frames) may take 1, 2 or 3: over many epochs each about a third of the time.
  const counts = [0, 0, 0];
  const n = 3000;
  for (let e = 0; e < n; e++) counts[ds.strideOf(0, { seed: 9, epoch: e }) - 1]!++;
  for (const c of counts) t.ok(Math.abs(c / n - 1 / 3) < 0.04, `frequency ${c / n} near 1/3`);
  await t.rejects(openWellDataset(dir, { dt: 2, maxDt: 1 }), /maxDt \(1\) must be at least dt \(2\)/);
  await t.rejects(openWellDataset(dir, { dt: 1, maxDt: 2, fullTrajectory: true }), /not available in full-trajectory mode/);
});
