/**
 * Every oracle JSON in test/fixtures/well (outputs of The Well's reference reader on the fixture files): the
 * dataset's length, metadata, channel names and index mapping, and for each recorded sample its keys, shapes,
 * dtypes, values, per-channel summaries and probes, within the README's suggested tolerances.
 */
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { openWellDataset, readStats, WellNormalizer, closeWellPool, type WellArray, type WellSample } from '../../src/formats/well/index.js';
import { fixtures, worst } from './helpers.js';

interface OracleTensor {
  shape: number[];
  dtype: string;
  values?: number[];
  summary: {
    per_channel: Record<'sum' | 'sum_abs' | 'sum_sq' | 'min' | 'max', number[]>;
    probes?: [number, number][];
  };
  probes?: { at: number[]; value: number[] }[];
}

const KEY_MAP: Record<string, keyof WellSample> = {
  input_fields: 'inputFields',
  output_fields: 'outputFields',
  constant_fields: 'constantFields',
  input_scalars: 'inputScalars',
  output_scalars: 'outputScalars',
  constant_scalars: 'constantScalars',
  boundary_conditions: 'boundaryConditions',
  space_grid: 'spaceGrid',
  input_time_grid: 'inputTimeGrid',
  output_time_grid: 'outputTimeGrid',
};

function referenceKeys(s: WellSample): string[] {
  return Object.entries(KEY_MAP)
    .filter(([, k]) => {
      const a = s[k] as WellArray<Float32Array | Float64Array> | undefined;
      return a !== undefined && a.data.length > 0;
    })
    .map(([ref]) => ref);
}

function perChannel(a: WellArray<Float32Array | Float64Array>) {
  const C = a.shape.length <= 1 ? 1 : a.shape.at(-1)!;
  const out = { sum: [] as number[], sum_abs: [] as number[], sum_sq: [] as number[], min: [] as number[], max: [] as number[] };
  for (let c = 0; c < C; c++) {
    let sum = 0, sumAbs = 0, sumSq = 0, min = Infinity, max = -Infinity;
    for (let i = c; i < a.data.length; i += C) {
      const v = a.data[i]!;
      sum += v;
      sumAbs += Math.abs(v);
      sumSq += v * v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    out.sum.push(sum);
    out.sum_abs.push(sumAbs);
    out.sum_sq.push(sumSq);
    out.min.push(min);
    out.max.push(max);
  }
  return out;
}

const oracleFiles = readdirSync(fixtures).filter((f) => /^oracle_.*\.json$/.test(f)).sort();
t.ok(oracleFiles.length >= 10, `found ${oracleFiles.length} oracle files`);
t.teardown(closeWellPool);

for (const file of oracleFiles) {
  t.test(file, async (t) => {
    const o = JSON.parse(readFileSync(join(fixtures, file), 'utf8'));
    const dir = join(fixtures, o.dataset_dir);
    const ra = o.reader_args;
    t.equal(ra.min_dt_stride, ra.max_dt_stride, 'fixed stride');
    const ds = await openWellDataset(join(dir, 'data', o.split), {
      nIn: ra.n_steps_input,
      nOut: ra.n_steps_output,
      dt: ra.min_dt_stride,
      fullTrajectory: ra.full_trajectory_mode,
      maxRolloutSteps: ra.max_rollout_steps,
    });
    t.equal(ds.length, o.length, 'length');
    t.same(ds.files.map((m) => relative(dir, m.path)), o.files, 'files in reader order');
    t.same(ds.windowsPerTrajectory, o.n_windows_per_trajectory, 'windows per trajectory');
    t.equal(ds.nOut, o.effective_n_steps_output, 'effective n_out');

    const meta = ds.files[0]!;
    const om = o.metadata;
    t.equal(meta.datasetName, om.dataset_name);
    t.equal(meta.nSpatialDims, om.n_spatial_dims);
    t.same(meta.spatialShape, om.spatial_resolution);
    t.equal(meta.gridType, om.grid_type);
    t.same(meta.scalars.map((s) => s.name), om.scalar_names);
    t.same(meta.constantScalars.map((s) => s.name), om.constant_scalar_names);
    for (const order of [0, 1, 2]) {
      t.same(meta.fields.filter((f) => f.order === order).flatMap((f) => f.channelNames), om.field_names[order], `t${order} channels`);
      t.same(
        meta.constantFields.filter((f) => f.order === order).flatMap((f) => f.channelNames),
        om.constant_field_names[order],
        `t${order} constant channels`,
      );
    }
    t.same([...new Set(meta.boundaryConditions.map((b) => b.bcType))].sort(), om.boundary_condition_types);
    t.equal(ds.files.length, om.n_files);
    t.same(ds.files.map((m) => m.nTrajectories), om.n_trajectories_per_file);
    t.same(ds.files.map((m) => m.nSteps), om.n_steps_per_trajectory);
    t.same(meta.coreFieldNames, o.core_field_names);
    t.same(meta.coreConstantFieldNames, o.core_constant_field_names);
    t.same(ds.layout.names, o.channel_names);
    t.same(meta.constantLayout.names, o.constant_channel_names);

    let normalizer: WellNormalizer | null = null;
    if (ra.normalization_type) {
      const kind = ra.normalization_type === 'ZScoreNormalization' ? 'zscore' : ra.normalization_type === 'RMSNormalization' ? 'rms' : null;
      t.ok(kind, `known normalisation ${ra.normalization_type}`);
      normalizer = new WellNormalizer(await readStats(dir), { kind: kind! });
    }

    if (ra.full_trajectory_mode) {
      // the same frames streamed one by one through `trajectories` (from frame 0) equal inputs + outputs
      const n = o.effective_n_steps_output + ra.n_steps_input;
      for (const os of o.samples) {
        const ref = [...(os.tensors.input_fields.values ?? []), ...(os.tensors.output_fields.values ?? [])];
        const frames: number[] = [];
        for await (const tr of ds.trajectories({ trajectories: [{ fileIndex: os.file_index, trajectory: os.trajectory }], framesPerRead: 3 })) {
          for await (const f of tr.frames) if (f.t < n) frames.push(...f.channels);
        }
        if (ref.length > 0) {
          const v = worst(frames, ref, 2e-6, 2e-6);
          t.ok(v.ratio <= 1, `trajectory ${os.trajectory} streamed frame by frame`, v);
        } else {
          // euler oracles carry only summaries here: compare the per-channel sums
          const C = ds.layout.names.length;
          for (let c = 0; c < C; c++) {
            let sum = 0;
            for (let i = c; i < frames.length; i += C) sum += frames[i]!;
            const pc = (k: string) => os.tensors[k].summary.per_channel;
            const want = pc('input_fields').sum[c] + pc('output_fields').sum[c];
            const tol = 1e-5 * (Math.abs(want) + pc('input_fields').sum_abs[c] + pc('output_fields').sum_abs[c]);
            t.ok(Math.abs(sum - want) <= tol, `trajectory ${os.trajectory} streamed: channel ${c} sum`);
          }
        }
      }
    }

    const samples: WellSample[] = [];
    for await (const s of ds.windows({ indices: o.samples.map((x: { index: number }) => x.index) })) samples.push(s);
    t.equal(samples.length, o.samples.length);
    o.samples.forEach((os: { index: number; file_index: number; trajectory: number; time_index: number; dt_stride: number; keys: string[]; tensors: Record<string, OracleTensor> }, i: number) => {
      let s = samples[i]!;
      if (normalizer) s = normalizer.normalizeSample(s);
      const where = `sample ${os.index}`;
      t.same(
        { file: s.origin.fileIndex, trajectory: s.origin.trajectory, t0: s.origin.t0, dt: s.origin.dt },
        { file: os.file_index, trajectory: os.trajectory, t0: os.time_index, dt: os.dt_stride },
        `${where}: origin`,
      );
      t.same(referenceKeys(s), os.keys, `${where}: keys`);
      for (const key of os.keys) {
        const ref = os.tensors[key]!;
        const a = s[KEY_MAP[key]!] as WellArray<Float32Array | Float64Array>;
        const w = `${where} ${key}`;
        t.same(a.shape, ref.shape, `${w}: shape`);
        t.equal(a.data instanceof Float64Array ? 'float64' : 'float32', ref.dtype, `${w}: dtype`);
        if (ref.values) {
          const v = worst(a.data, ref.values, 2e-6, 2e-6);
          t.ok(v.ratio <= 1, `${w}: ${ref.values.length} values`, v);
        }
        const pc = perChannel(a);
        for (const k of ['min', 'max'] as const) {
          const v = worst(pc[k], ref.summary.per_channel[k], 2e-6, 2e-6);
          t.ok(v.ratio <= 1, `${w}: per-channel ${k}`, v);
        }
        for (const k of ['sum', 'sum_abs', 'sum_sq'] as const) {
          const absTol = ref.summary.per_channel.sum_abs.map((x) => 1e-5 * Math.max(x, 1e-30));
          const got = pc[k];
          const bad = got.findIndex((g, c) => Math.abs(g - ref.summary.per_channel[k][c]!) > 1e-5 * Math.abs(ref.summary.per_channel[k][c]!) + absTol[c]!);
          t.equal(bad, -1, `${w}: per-channel ${k}`, { got, expected: ref.summary.per_channel[k] });
        }
        if (ref.summary.probes) {
          const v = worst(
            ref.summary.probes.map(([idx]) => a.data[idx]!),
            ref.summary.probes.map(([, val]) => val),
            2e-6,
            2e-6,
          );
          t.ok(v.ratio <= 1, `${w}: ${ref.summary.probes.length} probes`, v);
        }
        if (ref.probes) {
          const D = a.shape.at(-1)!;
          const got: number[] = [];
          const exp: number[] = [];
          for (const p of ref.probes) {
            let flat = 0;
            p.at.forEach((x, d) => (flat = flat * a.shape[d]! + x));
            for (let d = 0; d < D; d++) got.push(a.data[flat * D + d]!);
            exp.push(...p.value);
          }
          const v = worst(got, exp, 2e-6, 2e-6);
          t.ok(v.ratio <= 1, `${w}: ${ref.probes.length} grid probes`, v);
        }
      }
    });
  });
}
