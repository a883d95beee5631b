/**
 * The metric sink on real Well-format data (the Euler fixture, read with h5wasm): a persistence forecast
 * (every lead predicted by the initial state) scored against the 3 trajectories. The fixture conserves the
 * domain totals of density and energy, so their conservation error must vanish; the persistence error must
 * grow with lead time; and one frame's VRMSE is recomputed here independently.
 */
import t from 'tap';
import h5wasm from 'h5wasm/node';
import { reduceMetrics, type RolloutChunk } from '../../src/sinks/metrics/index.js';

await h5wasm.ready;
const path = new URL(
  '../fixtures/well/euler_multi_quadrants_periodicBC/data/train/euler_multi_quadrants_periodicBC_gamma_1.4_mini.hdf5',
  import.meta.url,
);
const file = new h5wasm.File(decodeURIComponent(path.pathname), 'r');
const read = (name: string): Float32Array => (file.get(name) as { value: Float32Array }).value;
const scalars = ['density', 'energy', 'pressure'].map((f) => read(`t0_fields/${f}`));
const momentum = read('t1_fields/momentum');
file.close();

const [B, T, H, W] = [3, 12, 32, 32];
const fields = ['density', 'energy', 'pressure', 'momentum_x', 'momentum_y'];
const C = fields.length;

/** Channels-last (H, W, C) frame of trajectory b at time step s. */
function frame(b: number, s: number): Float32Array {
  const out = new Float32Array(H * W * C);
  const base = (b * T + s) * H * W;
  for (let p = 0; p < H * W; p++) {
    scalars.forEach((arr, c) => (out[p * C + c] = arr[base + p]!));
    out[p * C + 3] = momentum[(base + p) * 2]!;
    out[p * C + 4] = momentum[(base + p) * 2 + 1]!;
  }
  return out;
}

function* persistence(): Generator<RolloutChunk> {
  for (let b = 0; b < B; b++) {
    const truth = new Float32Array((T - 1) * H * W * C);
    const forecast = new Float32Array((T - 1) * H * W * C);
    for (let s = 1; s < T; s++) {
      truth.set(frame(b, s), (s - 1) * H * W * C);
      forecast.set(frame(b, 0), (s - 1) * H * W * C);
    }
    yield { model: 'persistence', trajectory: b, fields, spatialShape: [H, W], lead: 1, truth, ensemble: [forecast] };
  }
}

t.test('persistence forecast on the Euler fixture', async (t) => {
  const result = await reduceMetrics(persistence(), { snapshotLeads: [1] });
  t.equal(result.rows.length, C * (T - 1), 'one row per field and lead');
  for (const field of ['density', 'energy']) {
    const worst = Math.max(...result.rows.filter((r) => r.field === field).map((r) => Math.abs(r.metrics.conservation.mean)));
    t.ok(worst < 1e-5, `${field}: conservation error ${worst} (totals are conserved in the data)`);
  }
  for (const field of fields) {
    const rows = result.rows.filter((r) => r.field === field);
    t.ok(rows[0]!.metrics.vrmse.mean < rows[rows.length - 1]!.metrics.vrmse.mean, `${field}: persistence error grows with lead time`);
    t.ok(rows.every((r) => r.metrics.spread.mean === 0), `${field}: one member, no spread`);
  }
  // Independent VRMSE of (trajectory 1, lead 5, pressure), averaged with the others by hand.
  let sum = 0;
  for (let b = 0; b < B; b++) {
    const u = frame(b, 5);
    const v = frame(b, 0);
    let mse = 0;
    let mean = 0;
    for (let p = 0; p < H * W; p++) mean += u[p * C + 2]! / (H * W);
    let variance = 0;
    for (let p = 0; p < H * W; p++) {
      mse += (v[p * C + 2]! - u[p * C + 2]!) ** 2 / (H * W);
      variance += (u[p * C + 2]! - mean) ** 2 / (H * W - 1);
    }
    sum += Math.sqrt(mse / (variance + 1e-7));
  }
  const row = result.rows.find((r) => r.field === 'pressure' && r.lead === 5)!;
  t.ok(Math.abs(row.metrics.vrmse.mean - sum / B) / (sum / B) < 1e-9, `VRMSE ${row.metrics.vrmse.mean} vs ${sum / B}`);
});
