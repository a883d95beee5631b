import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { DarcyResidual, EulerResidual, EULER_CHANNELS, type PdeResidual } from '../../src/physics/residuals/index.js';
import {
  DATA_MODEL,
  PDE_RESIDUAL,
  ResidualReducer,
  longTable,
  mergeResults,
  readResults,
  reduceMetrics,
  summarize,
  writeResults,
  type RolloutChunk,
} from '../../src/sinks/metrics/index.js';
import { renderReport } from '../../src/sinks/report/index.js';
import { createRng } from '../../src/streams/random.js';

await selectBackend({ prefer: 'wasm' });

const X = 8;
const Y = 6;
const C = EULER_CHANNELS.length;
const frame = X * Y * C;

/** A positive Euler-like state (density, energy > 0) with random perturbations. */
function state(r: { uniform(): number }): Float32Array {
  const rng = () => r.uniform();
  const s = new Float32Array(frame);
  for (let i = 0; i < X * Y; i++) {
    const [e, rho, p, mx, my] = [2.5 + 0.3 * rng(), 1 + 0.2 * rng(), 1 + 0.2 * rng(), 0.3 * (rng() - 0.5), 0.3 * (rng() - 0.5)];
    s.set([e, rho, p, mx, my], i * C);
  }
  return s;
}

const euler = new EulerResidual({ gamma: 1.4, dt: 0.015, dx: 1 / X, dy: 1 / Y, boundary: 'periodic' });

/** Reference: per-equation grid-mean squared residual of one pair of frames, straight from the operator. */
function pairMeanSquares(r: PdeResidual, a: Float32Array, b: Float32Array): number[] {
  return tf.tidy(() => {
    const out = r.residual(tf.tensor4d(a, [1, X, Y, C]), tf.tensor4d(b, [1, X, Y, C]));
    return Array.from(tf.mean(tf.square(out), [0, 1, 2]).dataSync());
  });
}

interface Trajectory {
  id: string;
  /** leads 0..T: the context state then T true states. */
  truth: Float32Array[];
  /** members x leads 1..T */
  members: Float32Array[][];
}

function trajectory(seed: number, T: number, M: number): Trajectory {
  const rng = createRng(seed);
  return {
    id: `traj-${seed}`,
    truth: Array.from({ length: T + 1 }, () => state(rng)),
    members: Array.from({ length: M }, () => Array.from({ length: T }, () => state(rng))),
  };
}

/** Chunks of `size` leads of one model over a trajectory, with the previous truth attached. */
function chunks(tr: Trajectory, model: string, size: number): RolloutChunk[] {
  const T = tr.truth.length - 1;
  const out: RolloutChunk[] = [];
  const cat = (frames: Float32Array[]) => {
    const a = new Float32Array(frames.length * frame);
    frames.forEach((f, i) => a.set(f, i * frame));
    return a;
  };
  for (let lead = 1; lead <= T; lead += size) {
    const n = Math.min(size, T - lead + 1);
    out.push({
      model,
      trajectory: tr.id,
      fields: EULER_CHANNELS,
      spatialShape: [X, Y],
      lead,
      truth: cat(tr.truth.slice(lead, lead + n)),
      previous: tr.truth[lead - 1],
      ensemble: tr.members.map((m) => cat(m.slice(lead - 1, lead - 1 + n))),
    });
  }
  return out;
}

t.test('the residual of each member pairs with its own previous state, lead 1 with the last context state', async (t) => {
  const trajectories = [trajectory(1, 4, 3), trajectory(2, 4, 3)];
  const reducer = new ResidualReducer(euler);
  for (const tr of trajectories) for (const c of chunks(tr, 'diffusion', 2)) await reducer.add(c);
  const result = reducer.result();
  t.same(result.models, ['diffusion', DATA_MODEL]);
  t.same(result.equations, euler.equations);
  t.equal(result.rows.length, 2 * 4 * euler.equations.length, 'every (model, lead, equation)');
  for (let lead = 1; lead <= 4; lead++) {
    // reference: average over members, then mean and std over trajectories
    const perTrajectory = trajectories.map((tr) => {
      const sums = new Array(euler.equations.length).fill(0);
      for (const m of tr.members) {
        const prev = lead === 1 ? tr.truth[0]! : m[lead - 2]!;
        pairMeanSquares(euler, prev, m[lead - 1]!).forEach((v, e) => (sums[e] += v / tr.members.length));
      }
      return sums;
    });
    const data = trajectories.map((tr) => pairMeanSquares(euler, tr.truth[lead - 1]!, tr.truth[lead]!));
    euler.equations.forEach((equation, e) => {
      const row = result.rows.find((r) => r.model === 'diffusion' && r.equation === equation && r.lead === lead)!;
      const mean = (perTrajectory[0]![e]! + perTrajectory[1]![e]!) / 2;
      const std = Math.abs(perTrajectory[0]![e]! - perTrajectory[1]![e]!) / 2;
      t.ok(Math.abs(row.meanSquare.mean - mean) <= 1e-5 * mean, `lead ${lead} ${equation}: ${row.meanSquare.mean} vs ${mean}`);
      t.ok(Math.abs(row.meanSquare.std - std) <= 1e-4 * mean, `lead ${lead} ${equation} std`);
      t.equal(row.meanSquare.count, 2);
      const d = result.rows.find((r) => r.model === DATA_MODEL && r.equation === equation && r.lead === lead)!;
      const dMean = (data[0]![e]! + data[1]![e]!) / 2;
      t.ok(Math.abs(d.meanSquare.mean - dMean) <= 1e-5 * dMean, `data lead ${lead} ${equation}`);
    });
  }
});

t.test('the result does not depend on how a rollout is chunked; the data residual comes from the first model only', async (t) => {
  const tr = trajectory(3, 5, 2);
  const whole = new ResidualReducer(euler);
  const single = new ResidualReducer(euler);
  for (const c of chunks(tr, 'a', 5)) await whole.add(c);
  for (const c of chunks(tr, 'a', 1)) await single.add(c);
  // a second model on the same trajectory adds its rows, not a second count of the data
  for (const c of chunks(tr, 'b', 3)) await single.add(c);
  const w = whole.result();
  const s = single.result();
  t.same(s.models, ['a', 'b', DATA_MODEL]);
  for (const row of w.rows) {
    const other = s.rows.find((r) => r.model === row.model && r.equation === row.equation && r.lead === row.lead)!;
    t.ok(Math.abs(other.meanSquare.mean - row.meanSquare.mean) <= 1e-6 * row.meanSquare.mean, `${row.model} ${row.equation} ${row.lead}`);
    t.equal(other.meanSquare.count, 1);
  }
});

t.test('without a previous state the first frame is skipped; memory does not grow with trajectories', async (t) => {
  const reducer = new ResidualReducer(euler);
  const tr = trajectory(4, 3, 1);
  const [first] = chunks(tr, 'm', 3);
  await reducer.add({ ...first!, previous: undefined });
  const leads = [...new Set(reducer.result().rows.map((r) => r.lead))];
  t.same(leads, [2, 3], 'lead 1 has no state before it');
  const sizes: number[] = [];
  for (let k = 0; k < 6; k++) {
    for (const c of chunks(trajectory(10 + k, 3, 2), 'm', 1)) await reducer.add(c);
    sizes.push(reducer.stateSize());
  }
  t.equal(new Set(sizes).size, 1, `state size constant: ${sizes}`);
});

t.test('single-frame residuals (Darcy) score every frame', async (t) => {
  const n = 6;
  const darcy = new DarcyResidual({ n, source: 1 });
  const rng = createRng(7);
  const frames = Array.from({ length: 2 }, () => Float32Array.from({ length: n * n * 2 }, (_, i) => (i % 2 === 0 ? 3 + rng.uniform() : 0.05 * rng.uniform())));
  const reducer = new ResidualReducer(darcy);
  const truth = new Float32Array(2 * n * n * 2);
  truth.set(frames[0]!, 0);
  truth.set(frames[1]!, n * n * 2);
  await reducer.add({ model: 'm', trajectory: 'x', fields: darcy.channels, spatialShape: [n, n], lead: 1, truth, ensemble: [truth] });
  const result = reducer.result();
  for (const lead of [1, 2]) {
    const expected = tf.tidy(() => darcy.meanSquare(tf.tensor4d(frames[lead - 1]!, [1, n, n, 2])).dataSync()[0]!);
    const row = result.rows.find((r) => r.model === 'm' && r.lead === lead)!;
    t.ok(Math.abs(row.meanSquare.mean - expected) <= 1e-5 * expected, `lead ${lead}: ${row.meanSquare.mean} vs ${expected}`);
  }
});

t.test('states whose channels differ from the residual\'s are refused, naming both', async (t) => {
  const reducer = new ResidualReducer(euler);
  const tr = trajectory(5, 1, 1);
  const [c] = chunks(tr, 'm', 1);
  await t.rejects(reducer.add({ ...c!, fields: ['density', 'energy', 'pressure', 'momentum_x', 'momentum_y'] }), /channels are \[density, energy.*the residual reads \[energy, density/);
});

t.test('the residual travels through results files, shard merges, the long table and the report', async (t) => {
  const trajectories = [trajectory(21, 3, 2), trajectory(22, 3, 2)];
  const reduceAll = async (trs: Trajectory[]) => {
    const residual = new ResidualReducer(euler);
    const all = trs.flatMap((tr) => chunks(tr, 'diffusion', 1));
    for (const c of all) await residual.add(c);
    return { ...(await reduceMetrics(all, { skipW1: true })), residual: residual.result() };
  };
  const whole = await reduceAll(trajectories);
  const merged = mergeResults([await reduceAll(trajectories.slice(0, 1)), await reduceAll(trajectories.slice(1))]);
  for (const row of whole.residual!.rows) {
    const m = merged.residual!.rows.find((r) => r.model === row.model && r.equation === row.equation && r.lead === row.lead)!;
    t.ok(Math.abs(m.meanSquare.mean - row.meanSquare.mean) <= 1e-9 * row.meanSquare.mean, `merged ${row.model} ${row.equation} ${row.lead}`);
    t.equal(m.meanSquare.count, row.meanSquare.count);
  }
  t.same(merged.residual!.models, ['diffusion', DATA_MODEL]);
  const plain = await reduceMetrics(chunks(trajectories[0]!, 'diffusion', 1), { skipW1: true });
  t.throws(() => mergeResults([whole, plain]), /1 of 2 parts hold the PDE residual/);

  const saved = summarize(whole, { bands: [{ from: 1, to: 1 }, { from: 2, to: 3 }] });
  t.equal(saved.aggregates.residualBands!.length, 2 * euler.equations.length * 2);
  const dir = await mkdtemp(join(tmpdir(), 'ws-residual-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeResults(dir, saved);
  const back = await readResults(dir);
  t.same(back.result.residual, whole.residual);
  t.same(back.aggregates.residualBands, saved.aggregates.residualBands);
  const table = longTable(back).filter((r) => r.metric === PDE_RESIDUAL);
  t.equal(table.length, whole.residual!.rows.length + saved.aggregates.residualBands!.length);
  t.ok(table.every((r) => euler.equations.includes(r.field)));
  const html = await renderReport(back);
  t.match(html, /<h2>PDE residual<\/h2>/);
  t.match(html, /data-plot="pde-residual"/);
  t.match(html, /data-metric="pde_residual"/);
});
