// The baselines scored beside every emulator (persistence and the spatial-mean field), on a synthetic trajectory
// with known answers: u_t = a + t d (a random pattern per channel, d a constant drift per channel), written as a
// real Well file and read back by withTruth. Persistence predicts u_{c-1} at every lead, so its error at lead k is
// the constant k d: VRMSE = k |d| / sqrt(var(a) + eps). The spatial mean's error is the frame's deviation from its
// mean: VRMSE = sqrt((N - 1) / N * var / (var + eps)), 1 up to 1/(2N). Both are scored once per lead and trajectory
// however many models ask for the lead, by the same metric sinks as the models.
import t from 'tap';
import { join } from 'node:path';
import { writeWell, type WellFileSpec } from '../../src/formats/well/index.js';
import { BASELINES, checkBaselines, spatialMeanField, withTruth, type PhysicalStep } from '../../src/models/index.js';
import { reduceMetrics } from '../../src/sinks/metrics/index.js';
import { pipe } from '../../src/streams/core.js';
import { randomArray, tempDir } from '../well/helpers.js';

const X = 8;
const Y = 6;
const N = X * Y;
const T = 7;
const C = 3; // density, velocity_x, velocity_y
const drift = [[0.5, -0.25, 1.5], [-2, 0.75, 0.125]]; // per trajectory, per channel
const pattern = (traj: number, c: number) => randomArray(N, 100 * traj + c + 1, 2 + c, 10 * c);

/** Channel-last frame t of trajectory `traj`. */
function frame(traj: number, t: number): Float32Array {
  const out = new Float32Array(N * C);
  for (let c = 0; c < C; c++) {
    const a = pattern(traj, c);
    for (let p = 0; p < N; p++) out[p * C + c] = a[p]! + t * drift[traj]![c]!;
  }
  return out;
}

const spec: WellFileSpec = {
  datasetName: 'drift',
  spatialDims: ['x', 'y'],
  coords: { x: Array.from({ length: X }, (_, i) => i / X), y: Array.from({ length: Y }, (_, i) => i / Y) },
  time: Array.from({ length: T }, (_, i) => i * 0.1),
  fields: [
    { name: 'density', order: 0 },
    { name: 'velocity', order: 1 },
  ],
  boundaryConditions: [
    { dim: 'x', bcType: 'PERIODIC' },
    { dim: 'y', bcType: 'PERIODIC' },
  ],
};

/** Float64 unbiased variance of the float32 values as stored. */
function variance(values: Float32Array, c: number): number {
  let mean = 0;
  for (let p = 0; p < N; p++) mean += values[p * C + c]!;
  mean /= N;
  let s = 0;
  for (let p = 0; p < N; p++) s += (values[p * C + c]! - mean) ** 2;
  return s / (N - 1);
}

t.test('spatialMeanField and checkBaselines', async (t) => {
  const f = new Float32Array([1, 10, 3, 20, 5, 60]); // 3 points, 2 channels
  t.same([...spatialMeanField(f, 2)], [3, 30, 3, 30, 3, 30]);
  t.throws(() => spatialMeanField(f, 4), /not a whole number of points of 4 channels/);
  t.same(checkBaselines(['spatial-mean', 'persistence', 'spatial-mean']), ['spatial-mean', 'persistence']);
  t.throws(() => checkBaselines(['climatology'], 'eval baselines'), /eval baselines: unknown baseline "climatology" \(known: persistence, spatial-mean\)/);
});

t.test('baselines through withTruth and the metric sinks: known VRMSE', async (t) => {
  const dir = tempDir(t);
  const file = 'drift.hdf5';
  const trajectories = [0, 1].map((traj) => ({ frames: Array.from({ length: T }, (_, s) => ({ channels: frame(traj, s) })) }));
  await writeWell(trajectories, join(dir, file), spec);

  const context = 2;
  const horizon = T - context;
  const fields = ['density', 'velocity_x', 'velocity_y'];
  // Two models per trajectory, each asking for every lead: "exact" predicts the truth, "zero" predicts zeros.
  function* steps(): Generator<PhysicalStep> {
    for (const traj of [0, 1]) {
      for (const model of ['exact', 'zero']) {
        for (let lead = 1; lead <= horizon; lead++) {
          const ensemble = [model === 'exact' ? frame(traj, context - 1 + lead) : new Float32Array(N * C)];
          yield { model, trajectory: `${file}#${traj}`, origin: { file, trajectory: traj, augmentation: 0, transform: '' }, lead, fields, spatialShape: [X, Y], ensemble };
        }
      }
    }
  }
  const chunks = pipe(steps(), withTruth(dir, { context, baselines: [...BASELINES] }));
  const result = await reduceMetrics(chunks, { convention: 'the_well', noSnapshots: true });
  t.same(result.models, ['exact', 'persistence', 'spatial-mean', 'zero']);
  const VRMSE = 'vrmse';
  const row = (model: string, field: string, lead: number) => result.rows.find((r) => r.model === model && r.field === field && r.lead === lead)!;
  let worst = 0;
  for (let lead = 1; lead <= horizon; lead++) {
    for (let c = 0; c < C; c++) {
      const field = fields[c]!;
      for (const model of BASELINES) t.equal(row(model, field, lead).frames, 2, `${model} ${field} lead ${lead}: one frame per trajectory`);
      t.ok(row('exact', field, lead).metrics[VRMSE].mean < 1e-6, 'the exact model scores 0');
      const expected = { persistence: [] as number[], mean: [] as number[] };
      for (const traj of [0, 1]) {
        const v = variance(frame(traj, context - 1 + lead), c);
        expected.persistence.push((lead * Math.abs(drift[traj]![c]!)) / Math.sqrt(v + 1e-7));
        expected.mean.push(Math.sqrt((((N - 1) / N) * v) / (v + 1e-7)));
      }
      const mean = (xs: number[]) => (xs[0]! + xs[1]!) / 2;
      const got = { persistence: row('persistence', field, lead).metrics[VRMSE].mean, mean: row('spatial-mean', field, lead).metrics[VRMSE].mean };
      worst = Math.max(worst, Math.abs(got.persistence / mean(expected.persistence) - 1), Math.abs(got.mean / mean(expected.mean) - 1));
      t.ok(Math.abs(got.mean - 1) < 0.02 && Math.abs(got.mean - 1) > 0.005, `spatial mean VRMSE ${got.mean.toFixed(5)}: 1 - 1/(2N) to first order`);
    }
  }
  t.ok(worst < 2e-4, `persistence and spatial-mean VRMSE within 2e-4 (relative) of the analytic values (worst ${worst.toExponential(2)})`);
  // Both baselines are deterministic: spread/skill undefined.
  t.ok(Number.isNaN(row('persistence', 'density', 1).metrics.spread_skill.mean), 'no spread/skill for a one-member baseline');
});

t.test('withTruth refuses an unknown baseline before reading anything', async (t) => {
  t.throws(() => withTruth('nowhere', { baselines: ['nope' as 'persistence'] }), /unknown baseline "nope"/);
});
