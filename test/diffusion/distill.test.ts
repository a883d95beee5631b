/**
 * Physics-informed distillation on tiny ViTs: teacher pairs are deterministic for a seed (and are the teacher's
 * own predictions), pair files round-trip and refuse another teacher's pairs, the untrained student equals the
 * teacher's 1-step Euler sampler, its loss goes down under the Trainer, refinement lowers a solvable quadratic
 * penalty, physicsPenalty decodes and denormalises as decodeToPhysical does, and the student rolls out with one
 * backbone call per window.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/index.js';
import { createDcae, createVit, presets, type Vit } from '../../src/models/nn/index.js';
import { Trainer } from '../../src/models/train/index.js';
import { pipe } from '../../src/streams/core.js';
import { map } from '../../src/streams/basic.js';
import { Rng, pairSeed } from '../../src/streams/random.js';
import { collect } from '../../src/sinks/basic.js';
import {
  diffusionEmulator,
  emulatorBatches,
  noiseFromSeed,
  pairTensors,
  physicsPenalty,
  refine,
  rollout,
  studentEmulator,
  studentLoss,
  teacherPairs,
  vitBackbone,
  type Backbone,
  type LatentTrajectory,
  type PairTensors,
} from '../../src/models/diffusion/index.js';
import { openPairs, readPairs, writePairs, PairsError, type PairBatch } from '../../src/formats/pairs/index.js';
import { autoencoderFrom, decodeToPhysical } from '../../src/models/autoencoder.js';

await selectBackend({ prefer: 'wasm' });

const [L, H, W, C, P] = [5, 2, 2, 2, 3];
const vitOptions = { channels: C, width: 32, depth: 1, heads: 2, embeddingFeatures: 32, labelFeatures: P, noise: true };

function trajectories(n: number, seed: number): LatentTrajectory[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, k) => {
    const decay = 0.5 + 0.4 * rng.uniform();
    const latents = new Float32Array(8 * H * W * C);
    const amp = rng.normal();
    for (let s = 0; s < 8; s++) for (let i = 0; i < H * W * C; i++) latents[s * H * W * C + i] = amp * decay ** s * Math.cos(i);
    return { latents, shape: [8, H, W, C], labels: Float32Array.from([decay, 1, -1]), origin: `synthetic-${k}` };
  });
}

const teacherVit = createVit({ ...vitOptions, seed: 4 });
const teacher = diffusionEmulator(vitBackbone(teacherVit), { sampling: { steps: 4 } });
const data = trajectories(4, 8);

/** A ViT holding a copy of the teacher's weights. */
function copyOfTeacher(): Vit {
  const vit = createVit({ ...vitOptions, seed: 99 });
  for (const [name, v] of vit.params) v.assign(teacherVit.params.get(name)!);
  return vit;
}

const makePairs = (seed: number) => collect(pipe(data, emulatorBatches({ batchSize: 4, seed: 17, shuffleBuffer: 1 }), teacherPairs(teacher, { seed })));

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

function contextOf(b: PairBatch) {
  const [B] = b.shape;
  return {
    observed: tf.tensor5d(b.observed, [...b.shape]),
    mask: tf.tensor2d(b.mask, [B, L]),
    labels: b.labels ? tf.tensor2d(b.labels, [B, P]) : null,
  };
}

const pairs = await makePairs(1);

t.test('teacher pairs: deterministic for a seed, different across seeds, the teacher\'s own predictions', async (t) => {
  const before = tf.memory().numTensors;
  t.equal(pairs.length, 4, '16 windows in batches of 4');
  const again = await makePairs(1);
  const other = await makePairs(2);
  t.equal(tf.memory().numTensors, before, 'no tensors leaked');
  for (let i = 0; i < pairs.length; i++) {
    t.same(Array.from(again[i]!.noise), Array.from(pairs[i]!.noise), `batch ${i}: same noise for the same seed`);
    t.same(Array.from(again[i]!.sample), Array.from(pairs[i]!.sample), `batch ${i}: same sample for the same seed`);
    t.ok(maxAbsDiff(other[i]!.noise, pairs[i]!.noise) > 0.1, `batch ${i}: other noise for another seed`);
    t.ok(maxAbsDiff(other[i]!.sample, pairs[i]!.sample) > 1e-3, `batch ${i}: another sample for another seed`);
    t.same(Array.from(other[i]!.mask), Array.from(pairs[i]!.mask), 'same context masks (they come from the batches)');
  }
  // a run resumed (or a shard started) at batch 2 makes the same pairs for batches 2 and 3
  const contexts = await collect(pipe(data, emulatorBatches({ batchSize: 4, seed: 17, shuffleBuffer: 1 })));
  const resumed = await collect(pipe(contexts.slice(2), teacherPairs(teacher, { seed: 1, firstBatch: 2 })));
  t.same(resumed.map((p) => [p.index, Array.from(p.sample)]), pairs.slice(2).map((p) => [p.index, Array.from(p.sample)]), 'firstBatch resumes the noise stream');
  const b = pairs[1]!;
  t.equal(b.index, 1);
  // the sample is teacher.predict with the batch's derived seed, i.e. the same conditioning as predict
  const ctx = contextOf(b);
  const predicted = teacher.predict(ctx, pairSeed(1, 1));
  t.ok(maxAbsDiff(await predicted.data(), b.sample) <= 1e-6, `sample = teacher.predict(context, pairSeed(seed, i)) (max diff ${maxAbsDiff(await predicted.data(), b.sample)})`);
  const eps = noiseFromSeed(b.shape, pairSeed(1, 1));
  t.same(Array.from(await eps.data()), Array.from(b.noise), 'noise = noiseFromSeed(pairSeed(seed, i))');
  // observed frames: the sample equals the context there, and observed is zero elsewhere
  const frame = H * W * C;
  let clamped = true;
  let zero = true;
  for (let w = 0; w < b.shape[0]; w++)
    for (let l = 0; l < L; l++)
      for (let k = 0; k < frame; k++) {
        const i = (w * L + l) * frame + k;
        if (b.mask[w * L + l] === 1) clamped &&= b.sample[i] === b.observed[i];
        else zero &&= b.observed[i] === 0;
      }
  t.ok(clamped && zero, 'observed frames clamped in the sample, unobserved frames zero in observed');
  tf.dispose([predicted, eps, ctx.observed, ctx.mask, ctx.labels!]);
  t.throws(() => teacherPairs(diffusionEmulator(vitBackbone(teacherVit), { sampling: { sampler: 'ddpm' } }), { seed: 1 }), /stochastic/);
});

t.test('pairs file: round trip, and refusal of another teacher\'s pairs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wellspring-pairs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'pairs', 'train.arrow');
  const meta = { teacher: 'run-abc', sampler: { ...teacher.sampling }, formulation: 'diffusion', seed: 1, autoencoder: 'ae-1', labelNames: ['decay', 'a', 'b'] };
  const written = await writePairs(pairs, { path, meta });
  t.same(written, { path, windows: 16, batches: 4, shape: [L, H, W, C] });
  t.same(readdirSync(join(dir, 'pairs')), ['train.arrow'], 'no temporary file left');
  const info = await openPairs(path);
  t.match(info, { teacher: 'run-abc', sampler: { sampler: 'ab', steps: 4, order: 3 }, formulation: 'diffusion', seed: 1, autoencoder: 'ae-1', windows: 16, shape: [L, H, W, C], labelNames: ['decay', 'a', 'b'] });
  const back = await collect(readPairs(path, { teacher: 'run-abc' }));
  t.equal(back.length, pairs.length);
  back.forEach((b, i) => {
    const a = pairs[i]!;
    t.same([...b.shape], [...a.shape]);
    t.equal(b.index, a.index);
    for (const k of ['noise', 'sample', 'observed', 'mask', 'labels'] as const) t.same(Array.from(b[k]!), Array.from(a[k]!), `batch ${i}: ${k}`);
  });
  const refused = await collect(readPairs(path, { teacher: 'run-xyz' })).then(
    () => null,
    (err: Error) => err,
  );
  t.ok(refused instanceof PairsError, 'another teacher\'s pairs are refused');
  t.ok(refused?.message.includes(path), `names the file: ${refused?.message}`);
  t.match(refused?.message ?? '', /"run-abc".*"run-xyz"/, 'names both teachers');
  // a failed write leaves nothing under the final name
  const bad = join(dir, 'bad.arrow');
  await t.rejects(writePairs([pairs[0]!, { ...pairs[1]!, sample: pairs[1]!.sample.map((v, i) => (i === 3 ? NaN : v)) }], { path: bad, meta }), /pair batch 1: column sample holds NaN/);
  t.notOk(existsSync(bad), 'no file after a failed write');
  t.same(readdirSync(dir).sort(), ['pairs'], 'no temporary file after a failed write');
});

t.test('the untrained student equals the teacher\'s 1-step Euler prediction', async (t) => {
  const vit = copyOfTeacher();
  const student = studentEmulator(vitBackbone(vit), teacher.formulation);
  const euler = diffusionEmulator(vitBackbone(teacherVit), { sampling: { sampler: 'euler', steps: 1 } });
  for (const [i, seed] of [[0, 5], [2, 123456]] as const) {
    const ctx = contextOf(pairs[i]!);
    const a = student.predict(ctx, seed);
    const b = euler.predict(ctx, seed);
    const [va, vb] = [await a.data(), await b.data()];
    const scale = Math.max(...Array.from(vb, Math.abs));
    t.ok(maxAbsDiff(va, vb) <= 1e-5 * Math.max(1, scale), `batch ${i}, seed ${seed}: max diff ${maxAbsDiff(va, vb)} (values up to ${scale.toFixed(3)})`);
    tf.dispose([a, b, ctx.observed, ctx.mask, ctx.labels!]);
  }
  // the flow formulation too
  const flowTeacher = diffusionEmulator(vitBackbone(teacherVit), { formulation: 'flow', sampling: { sampler: 'euler', steps: 1 } });
  const flowStudent = studentEmulator(vitBackbone(vit), flowTeacher.formulation);
  const ctx = contextOf(pairs[3]!);
  const [a, b] = [flowStudent.predict(ctx, 7), flowTeacher.predict(ctx, 7)];
  t.ok(maxAbsDiff(await a.data(), await b.data()) <= 1e-5, `flow: max diff ${maxAbsDiff(await a.data(), await b.data())}`);
  tf.dispose([a, b, ctx.observed, ctx.mask, ctx.labels!]);
  vit.dispose();
});

t.test('student training: the distillation loss goes down over Trainer steps; the penalty adds lambda R', async (t) => {
  const vit = copyOfTeacher();
  const student = studentEmulator(vitBackbone(vit), teacher.formulation);
  const steps = 32;
  const trainer = new Trainer<PairTensors>({
    params: vit.params,
    loss: studentLoss(student),
    optimizer: { lr: 2e-3, betas: [0.9, 0.99], weightDecay: 0 },
    clipNorm: 1,
    seed: 3,
  });
  const epochs = async function* () {
    for (let e = 0; e < steps / pairs.length; e++) yield* pairs;
  };
  const losses: number[] = [];
  for await (const report of pipe(epochs(), map(pairTensors), trainer.stage())) losses.push(report.loss);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  t.equal(losses.length, steps);
  t.ok(losses.every(Number.isFinite), 'finite losses');
  const [first, last] = [mean(losses.slice(0, 4)), mean(losses.slice(-4))];
  t.ok(last < 0.7 * first, `loss down by > 30%: ${first.toExponential(3)} -> ${last.toExponential(3)}`);
  trainer.dispose();

  // with a penalty, the loss is the fit plus lambda times the penalty of the prediction
  const penalty = (x: tf.Tensor5D) => tf.mean(tf.square(tf.sub(x, 0.25))) as tf.Scalar;
  const penalised = studentEmulator(vitBackbone(vit), teacher.formulation, { penalty, lambda: 0.5 });
  const batch = pairTensors(pairs[0]!);
  const rng = new Rng(0);
  const [plain, withPenalty] = [student.loss(batch, rng), penalised.loss(batch, rng)];
  const r = tf.tidy(() => penalty(student.generate({ observed: batch.x, mask: batch.mask, labels: batch.labels }, batch.noise)));
  const expected = plain.dataSync()[0]! + 0.5 * r.dataSync()[0]!;
  t.ok(Math.abs(withPenalty.dataSync()[0]! - expected) <= 1e-5 * Math.max(1, expected), `loss = fit + lambda R (${withPenalty.dataSync()[0]} vs ${expected})`);
  tf.dispose([plain, withPenalty, r, batch.x, batch.noise, batch.mask, batch.labels!]);
  t.throws(() => student.loss({ x: tf.zeros([1, L, H, W, C]), mask: null, labels: null } as unknown as PairTensors, rng), /noise and context mask/);
  vit.dispose();
});

t.test('refinement lowers a solvable quadratic penalty, and fits partial observations', async (t) => {
  const vit = copyOfTeacher();
  const student = studentEmulator(vitBackbone(vit), teacher.formulation);
  const ctx = contextOf(pairs[0]!);
  const eps = noiseFromSeed(pairs[0]!.shape, 11);
  const target = tf.fill([...pairs[0]!.shape], 0.3);
  const penalty = (x: tf.Tensor5D) => tf.mean(tf.square(tf.sub(x, target))) as tf.Scalar; // R(x) = x - 0.3, zero at x = 0.3
  const before = tf.memory().numTensors;
  const result = await refine(student, eps, ctx, { steps: 25, lr: 0.05, penalty });
  t.equal(result.objective.length, 26);
  const [r0, rK] = [result.objective[0]!, result.objective[25]!];
  t.ok(rK < 0.8 * r0, `penalty down by > 20%: ${r0.toFixed(4)} -> ${rK.toFixed(4)}`);
  const direct = tf.tidy(() => penalty(result.prediction).dataSync()[0]!);
  t.ok(Math.abs(direct - rK) <= 1e-5 * Math.max(1, rK), 'the returned prediction has the final penalty');
  const unrefined = tf.tidy(() => penalty(student.generate(ctx, eps)).dataSync()[0]!);
  t.ok(Math.abs(unrefined - r0) <= 1e-5 * Math.max(1, r0), 'the first value is the unrefined prediction\'s');
  t.ok(eps.dataSync().length > 0 && !eps.isDisposed, 'the given eps is kept');
  tf.dispose([result.prediction, result.eps]);
  t.equal(tf.memory().numTensors, before, 'no tensors leaked');

  // partial observation of the last frame of every window: the misfit term pulls the prediction to it
  const values = tf.fill([...pairs[0]!.shape], -0.2);
  const obsMask = tf.tensor5d(Array.from({ length: 4 * L }, (_, i) => (i % L === L - 1 ? 1 : 0)), [4, L, 1, 1, 1]);
  const misfit = (x: tf.Tensor) => tf.tidy(() => tf.mean(tf.square(tf.mul(tf.sub(x, values), obsMask))).dataSync()[0]!);
  const observed = await refine(student, eps, ctx, { steps: 25, lr: 0.05, penalty, lambda: 0.1, observation: { values, mask: obsMask } });
  const m0 = tf.tidy(() => misfit(student.generate(ctx, eps)));
  const mK = misfit(observed.prediction);
  t.ok(observed.objective[25]! < observed.objective[0]!, `objective down: ${observed.objective[0]!.toFixed(4)} -> ${observed.objective[25]!.toFixed(4)}`);
  t.ok(mK < m0, `observation misfit down: ${m0.toFixed(4)} -> ${mK.toFixed(4)}`);
  tf.dispose([observed.prediction, observed.eps, values, obsMask, eps, target, ctx.observed, ctx.mask, ctx.labels!]);
  vit.dispose();
});

t.test('physicsPenalty decodes, denormalises (z-score and log1p) with tf ops and applies the residual', async (t) => {
  const dcaeConfig = presets['dcae-small']({ inChannels: 2, latentChannels: 4, channels: [8, 16], inputSize: [8, 8], periodic: [true, true], seed: 3 });
  const stat = (a: number, b: number) => ({ density: a, pressure: b });
  const ae = autoencoderFrom(
    createDcae(dcaeConfig),
    { kind: 'zscore', transforms: { density: 'log1p' }, stats: { mean: stat(0.5, 1), std: stat(0.2, 2), rms: stat(1, 2), mean_delta: stat(0, 0), std_delta: stat(1, 1), rms_delta: stat(1, 1) } },
    { layout: { names: ['density', 'pressure'], fields: ['density', 'pressure'], components: [0, 0] }, spatialDims: ['x', 'y'], spatialShape: [8, 8], periodic: [true, true] },
    'ae-test',
  );
  const [h, w, c] = ae.latentShape;
  const [B, T] = [2, 3];
  // a two-frame "residual": the time difference of consecutive frames
  const residual = { meanSquare: (s: tf.Tensor) => tf.tidy(() => {
    const [b, l] = s.shape;
    return tf.mean(tf.square(tf.sub(tf.slice(s, [0, 1], [b!, l! - 1]), tf.slice(s, [0, 0], [b!, l! - 1])))) as tf.Scalar;
  }) };
  const rng = new Rng(4);
  const latents = rng.normalArray(B * T * h * w * c).map((v) => 0.3 * v);
  const penalty = physicsPenalty(ae, residual);
  const z = tf.tensor5d(latents, [B, T, h, w, c]);
  const value = tf.tidy(() => penalty(z).dataSync()[0]!);
  const physical = await decodeToPhysical(ae, latents, B * T);
  const frame = 8 * 8 * 2;
  let sum = 0;
  for (let b = 0; b < B; b++) for (let s = 1; s < T; s++) for (let k = 0; k < frame; k++) sum += (physical[(b * T + s) * frame + k]! - physical[(b * T + s - 1) * frame + k]!) ** 2;
  const expected = sum / (B * (T - 1) * frame);
  t.ok(Math.abs(value - expected) <= 1e-4 * expected, `penalty ${value} = mean square of decodeToPhysical differences ${expected}`);
  const g = tf.grad((x: tf.Tensor) => penalty(x as tf.Tensor5D))(z);
  t.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 0, 'differentiable in the latents');
  tf.dispose([z, g]);
  ae.dispose();
});

t.test('the student rolls out with one backbone call per window', async (t) => {
  const vit = copyOfTeacher();
  const inner = vitBackbone(vit);
  let calls = 0;
  const counted: Backbone = Object.assign(
    (x: tf.Tensor5D, mask: tf.Tensor2D | null, cNoise: tf.Tensor1D | null, labels: tf.Tensor2D | null) => {
      calls++;
      return inner(x, mask, cNoise, labels);
    },
    { variables: inner.variables },
  );
  const student = studentEmulator(counted, teacher.formulation);
  const start = { states: Float32Array.from({ length: 2 * H * W * C }, (_, k) => Math.cos(k)), shape: [2, H, W, C] as const, labels: Float32Array.from([0.7, 1, -1]) };
  const before = tf.memory().numTensors;
  const states = await collect(rollout(student, start, { horizon: 10, window: L, context: 2, ensemble: 3, seed: 4 }));
  t.equal(states.length, 10);
  t.equal(calls, 4, '10 states, 3 new per window of 5 with 2 carried: 4 windows, 4 backbone calls (ensemble batched)');
  t.ok(states.every((s) => s.states.every(Number.isFinite)), 'finite states');
  t.ok(maxAbsDiff(states[0]!.states.subarray(0, H * W * C), states[0]!.states.subarray(H * W * C, 2 * H * W * C)) > 0, 'members differ (their noise differs)');
  const again = await collect(rollout(student, start, { horizon: 10, window: L, context: 2, ensemble: 3, seed: 4 }));
  t.same(again.map((s) => Array.from(s.states)), states.map((s) => Array.from(s.states)), 'same seed, same rollout');
  t.equal(tf.memory().numTensors, before, 'no tensors leaked');
  vit.dispose();
});

t.teardown(() => teacherVit.dispose());
