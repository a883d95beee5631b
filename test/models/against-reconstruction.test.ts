// againstReconstruction: a model's chunks scored a second time against the autoencoder's reconstruction of the
// truth (model "autoencoder") instead of the simulation, as "<model>-vs-ae". Checked on synthetic chunks with
// known answers: the reconstruction is the truth plus a constant offset d per channel, so an ensemble that
// reproduces the reconstruction exactly scores RMSE d against the truth and 0 against the reconstruction, and a
// two-member ensemble recon +- s (spread s sqrt(3) with the fair (M+1)/(M-1) factor, mean exactly the
// reconstruction) has spread/skill (s sqrt(3) + e) / (d + e) against the truth and (s sqrt(3) + e) / e against
// the reconstruction (e = 1e-3, the offset of the ratio). The metric sink is the real one (reduceMetrics).
import t from 'tap';
import { againstReconstruction, RECONSTRUCTION, VS_RECONSTRUCTION } from '../../src/models/index.js';
import { reduceMetrics, type RolloutChunk } from '../../src/sinks/metrics/index.js';
import { pipe } from '../../src/streams/core.js';
import { collect } from '../../src/sinks/basic.js';

const H = 4;
const W = 5;
const C = 2;
const size = H * W * C;
const fields = ['a', 'b'];
const offset = [0.25, -0.5];

/** Truth of lead k (trajectory-specific pattern), channel-last. */
function truthOf(traj: number, lead: number): Float32Array {
  const out = new Float32Array(size);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) out[p * C + c] = Math.sin(0.7 * p + lead + 3 * traj + c) * (1 + c);
  return out;
}
const reconOf = (traj: number, lead: number) => truthOf(traj, lead).map((v, i) => v + offset[i % C]!);
const shifted = (x: Float32Array, s: number) => x.map((v) => v + s);

function chunk(model: string, traj: number, lead: number, ensemble: Float32Array[], frames = 1): RolloutChunk {
  const truth = new Float32Array(size * frames);
  for (let f = 0; f < frames; f++) truth.set(truthOf(traj, lead + f), f * size);
  return { model, trajectory: `t${traj}`, fields, spatialShape: [H, W], lead, truth, ensemble, previous: truthOf(traj, lead - 1) };
}

function* stream(horizon: number, s: number): Generator<RolloutChunk> {
  for (const traj of [0, 1]) {
    for (let lead = 1; lead <= horizon; lead++) yield chunk(RECONSTRUCTION, traj, lead, [reconOf(traj, lead)]);
    for (let lead = 1; lead <= horizon; lead++) yield chunk('exact-recon', traj, lead, [reconOf(traj, lead)]);
    for (let lead = 1; lead <= horizon; lead++) yield chunk('ensemble', traj, lead, [shifted(reconOf(traj, lead), s), shifted(reconOf(traj, lead), -s)]);
  }
}

t.test('chunks: the original first, then the copy with the reconstruction as truth', async (t) => {
  const out = await collect(pipe(stream(3, 0.1), againstReconstruction(['ensemble'])));
  t.same(out.map((c) => c.model).slice(0, 10), [
    RECONSTRUCTION, RECONSTRUCTION, RECONSTRUCTION, 'exact-recon', 'exact-recon', 'exact-recon',
    'ensemble', `ensemble${VS_RECONSTRUCTION}`, 'ensemble', `ensemble${VS_RECONSTRUCTION}`,
  ]);
  const copies = out.filter((c) => c.model === 'ensemble-vs-ae');
  t.equal(copies.length, 6, 'one copy per chunk of the named model');
  for (const c of copies) {
    const traj = c.trajectory === 't0' ? 0 : 1;
    t.same([...c.truth], [...reconOf(traj, c.lead)], `${c.trajectory} lead ${c.lead}: truth is the reconstruction`);
    const previous = c.lead === 1 ? truthOf(traj, 0) : reconOf(traj, c.lead - 1);
    t.same([...c.previous!], [...previous], `${c.trajectory} lead ${c.lead}: previous is the reconstruction before (the true context state at lead 1)`);
  }
  t.equal(out.filter((c) => c.model?.startsWith('exact-recon-')).length, 0, 'models not named pass through alone');
});

t.test('scored by the metric sink: known RMSE and spread/skill', async (t) => {
  const s = 0.2;
  const e = 1e-3;
  const result = await reduceMetrics(pipe(stream(3, s), againstReconstruction(['exact-recon', 'ensemble'])), { noSnapshots: true });
  t.same(result.models.sort(), ['autoencoder', 'ensemble', 'ensemble-vs-ae', 'exact-recon', 'exact-recon-vs-ae']);
  const at = (model: string, field: string, lead: number) => result.rows.find((r) => r.model === model && r.field === field && r.lead === lead)!.metrics;
  for (let c = 0; c < C; c++) {
    for (let lead = 1; lead <= 3; lead++) {
      const d = Math.abs(offset[c]!);
      const label = `${fields[c]} lead ${lead}`;
      t.ok(Math.abs(at('exact-recon', fields[c]!, lead).rmse.mean - d) < 1e-6, `${label}: RMSE against the truth is the offset ${d}`);
      t.ok(at('exact-recon-vs-ae', fields[c]!, lead).rmse.mean < 1e-7, `${label}: RMSE against the reconstruction is 0`);
      const spread = s * Math.sqrt(3); // members recon +- s: mean square deviation s^2, fair factor (2+1)/(2-1)
      const plain = at('ensemble', fields[c]!, lead).spread_skill.mean;
      const vsAe = at('ensemble-vs-ae', fields[c]!, lead).spread_skill.mean;
      t.ok(Math.abs(plain - (spread + e) / (d + e)) < 1e-4, `${label}: spread/skill against the truth ${plain.toFixed(5)} = (s sqrt 3 + e) / (d + e)`);
      t.ok(Math.abs(vsAe / ((spread + e) / e) - 1) < 1e-3, `${label}: against the reconstruction the skill is 0: ${vsAe.toFixed(1)} = (s sqrt 3 + e) / e`);
    }
  }
});

t.test('a chunk of several frames takes the reconstruction of each', async (t) => {
  async function* two(): AsyncGenerator<RolloutChunk> {
    yield chunk(RECONSTRUCTION, 0, 1, [new Float32Array([...reconOf(0, 1), ...reconOf(0, 2)])], 2);
    yield chunk('m', 0, 1, [new Float32Array(2 * size)], 2);
  }
  const out = await collect(pipe(two(), againstReconstruction(['m'])));
  t.same([...out[2]!.truth], [...reconOf(0, 1), ...reconOf(0, 2)]);
});

t.test('clear errors', async (t) => {
  t.throws(() => againstReconstruction([RECONSTRUCTION]), /cannot be scored against itself/);
  async function* noRecon(): AsyncGenerator<RolloutChunk> {
    yield chunk('m', 0, 1, [truthOf(0, 1)]);
  }
  await t.rejects(collect(pipe(noRecon(), againstReconstruction(['m']))), /t0: no reconstruction of lead 1 before the m chunk \(roll out with reconstruct: true\)/);
  async function* otherTrajectory(): AsyncGenerator<RolloutChunk> {
    yield chunk(RECONSTRUCTION, 0, 1, [reconOf(0, 1)]);
    yield chunk('m', 1, 1, [truthOf(1, 1)]);
  }
  await t.rejects(collect(pipe(otherTrajectory(), againstReconstruction(['m']))), /t1: no reconstruction of lead 1/, 'a reconstruction of another trajectory does not count');
});
