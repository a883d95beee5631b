/**
 * Data-parallel gradients on real worker threads (each with its own wasm backend): the averaged shard gradients
 * (flat) equal the whole-batch gradients computed on the main thread, a run through workers is reproducible and
 * resumes from its checkpoint exactly (also after its weights are replaced from outside), training through
 * workers (fused flat update with weight decay, clipping and EMA) follows single-thread training, and a model
 * module that builds another network is refused with the mismatch.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/select.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipe } from '../../src/streams/core.js';
import { ParallelGradients, Rng, Trainer, loadWeights, saveWeights, slotOf, type StepContext } from '../../src/models/train/index.js';
import { build } from './tiny-model.js';

const moduleUrl = new URL('./tiny-model.ts', import.meta.url);

function batch(i: number): Record<string, tf.Tensor> {
  const rng = new Rng(500 + i);
  return { x: tf.tensor(rng.normalArray(5 * 6 * 6 * 2), [5, 6, 6, 2]), y: tf.tensor(rng.normalArray(10), [5, 2]) };
}

// One pool of 2 workers (seed-3 network) serves the first two tests: starting workers is the slow part.
let parallel: ParallelGradients;
let master: ReturnType<typeof build>;
let dir = '';
t.before(async () => {
  await selectBackend({ prefer: 'wasm' });
  dir = await mkdtemp(join(tmpdir(), 'wellspring-parallel-'));
  master = build({ seed: 3 });
  parallel = await ParallelGradients.start({ module: moduleUrl, options: { seed: 3 }, params: master.params, workers: 2 });
});
t.teardown(async () => {
  await parallel.close();
  await rm(dir, { recursive: true, force: true });
});

type Batch = Record<string, tf.Tensor>;
const opts = { optimizer: { lr: 0.05, weightDecay: 0.1 }, clipNorm: 1, emaDecay: 0.9 };

async function run(tr: Trainer<Batch>, from: number, to: number): Promise<number[]> {
  const losses: number[] = [];
  for await (const r of pipe((function* () { for (let i = from; i < to; i++) yield batch(i); })(), tr.stage())) losses.push(r.loss);
  return losses;
}

t.test('averaged worker gradients equal the whole-batch gradients', async (t) => {
  const model = master;
  const b = batch(0);
  const context: StepContext = { params: model.params, step: 0, random: Math.random, rng: new Rng(1) };
  const { loss, flat } = await parallel.compute(b, context);
  const local = tf.variableGrads(() => model.loss(b, context), [...model.params.values()]);
  t.ok(Math.abs(loss - (await local.value.data())[0]) < 1e-5, 'loss is the batch mean');
  t.same(flat.present, [true, true, true], 'every parameter got a gradient');
  let sumSquares = 0;
  for (const [i, name] of flat.layout.names.entries()) {
    const p = model.params.get(name)!;
    const want = await local.grads[p.name].data();
    const got = slotOf(flat.layout, flat.values, i);
    for (const g of want) sumSquares += g * g;
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i] - got[i]));
    t.ok(err < 1e-5, `${name}: max abs difference ${err.toExponential(1)}`);
  }
  t.ok(Math.abs(flat.sumSquares - sumSquares) < 1e-5 * sumSquares, `sum of squares ${flat.sumSquares} vs ${sumSquares}`);
  tf.dispose([local.value, ...Object.values(local.grads), ...Object.values(b)]);
});

t.test('a run through workers is reproducible and resumes from its checkpoint exactly', async (t) => {
  const initial = join(dir, 'initial.safetensors');
  const checkpoint = join(dir, 'resume.safetensors');
  await saveWeights(initial, master.params);
  const whole = new Trainer({ params: master.params, loss: master.loss, gradients: parallel.compute, ...opts });
  const full = await run(whole, 0, 6);
  whole.dispose();
  // Replacing the weights from outside must reach the workers (the shared region is refreshed).
  await loadWeights(initial, master.params);
  const first = new Trainer({ params: master.params, loss: master.loss, gradients: parallel.compute, ...opts });
  const head = await run(first, 0, 3);
  t.same(head, full.slice(0, 3), `same seed, same losses: ${head.map((l) => l.toFixed(6))}`);
  await first.save(checkpoint);
  first.dispose();
  await loadWeights(initial, master.params); // scramble: the restore must bring the trained weights back
  const resumed = new Trainer({ params: master.params, loss: master.loss, gradients: parallel.compute, ...opts });
  await resumed.restore(checkpoint);
  t.equal(resumed.step, 3);
  const tail = await run(resumed, 3, 6);
  t.same(tail, full.slice(3), `resumed losses equal the uninterrupted run's: ${tail.map((l) => l.toFixed(6))}`);
  t.ok(full[5] < full[0], `loss decreases ${full[0].toFixed(4)} -> ${full[5].toFixed(4)}`);
  resumed.dispose();
  await loadWeights(initial, master.params); // the next test starts from the seed-3 network
});

t.test('a tensor optimiser (SOAP, PSGD-Kron) through workers tracks single-thread training', async (t) => {
  for (const optimizer of [{ name: 'soap' as const, lr: 0.02 }, { name: 'psgd-kron' as const, lr: 0.02 }]) {
    await loadWeights(join(dir, 'initial.safetensors'), master.params);
    const single = build({ seed: 3 });
    const a = new Trainer({ params: single.params, loss: single.loss, optimizer, clipNorm: 1, emaDecay: 0.9 });
    const b = new Trainer({ params: master.params, loss: master.loss, gradients: parallel.compute, optimizer, clipNorm: 1, emaDecay: 0.9 });
    const la = await run(a, 0, 6);
    const lb = await run(b, 0, 6);
    t.ok(la[5] < la[0], `${optimizer.name}: single-thread loss decreases ${la[0].toFixed(4)} -> ${la[5].toFixed(4)}`);
    t.ok(la.every((l, i) => Math.abs(l - lb[i]) < 1e-3 * Math.max(1, Math.abs(l))), `${optimizer.name}: same losses ${la.map((l) => l.toFixed(5))} vs ${lb.map((l) => l.toFixed(5))}`);
    let worst = 0;
    for (const [name, p] of single.params) {
      const x = await p.data();
      const y = await master.params.get(name)!.data();
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
    }
    t.ok(worst < 1e-3, `${optimizer.name}: the weights agree to ${worst.toExponential(1)} (the workers saw every update)`);
    a.dispose();
    b.dispose();
    for (const v of single.params.values()) v.dispose();
  }
  await loadWeights(join(dir, 'initial.safetensors'), master.params); // the next test starts from the seed-3 network
});

t.test('training through workers tracks single-thread training (decay, clipping, EMA)', async (t) => {
  const single = build({ seed: 3 });
  const multi = master; // the workers mirror it
  const a = new Trainer({ params: single.params, loss: single.loss, ...opts });
  const b = new Trainer({ params: multi.params, loss: multi.loss, gradients: parallel.compute, ...opts });
  const la = await run(a, 0, 6);
  const lb = await run(b, 0, 6);
  t.ok(la[5] < la[0], `single-thread loss decreases ${la[0].toFixed(4)} -> ${la[5].toFixed(4)}`);
  t.ok(la.every((l, i) => Math.abs(l - lb[i]) < 1e-4 * Math.max(1, Math.abs(l))), `same losses: ${la.map((l) => l.toFixed(5))} vs ${lb.map((l) => l.toFixed(5))}`);
  t.ok(b.optimizer.isFlat && !a.optimizer.isFlat, 'the data-parallel trainer updates flat buffers, the single-thread one tensors');
  const ea = await a.ema!.shadowData();
  const eb = await b.ema!.shadowData();
  const ma = await a.optimizer.momentData();
  const mb = await b.optimizer.momentData();
  let worst = 0;
  const diff = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  };
  for (const [name, p] of single.params) {
    diff(await p.data(), await multi.params.get(name)!.data());
    diff(ea.get(name)!.data, eb.get(name)!.data);
    diff(ma.get(name)!.m.data, mb.get(name)!.m.data);
  }
  t.ok(worst < 1e-4, `weights, EMA and first moments agree to ${worst.toExponential(1)}`);
  a.dispose();
  b.dispose();
  for (const m of [single, multi]) for (const v of m.params.values()) v.dispose();
});

t.test('a module building another network is refused', async (t) => {
  const model = build({ seed: 1, channels: 3 });
  await t.rejects(
    ParallelGradients.start({ module: moduleUrl, options: { seed: 1, channels: 4 }, params: model.params, workers: 1 }),
    /training worker 0: .*builds a different network than the main thread's: conv\.weight: main \[3,3,2,3\], worker \[3,3,2,4\]/s,
  );
  for (const v of model.params.values()) v.dispose();
});
