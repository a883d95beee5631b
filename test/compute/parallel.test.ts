/**
 * Data-parallel gradients on real worker threads (each with its own wasm backend): the averaged shard gradients
 * equal the whole-batch gradients computed on the main thread, training through workers follows the same losses,
 * and a model module that builds another network is refused with the mismatch.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/select.js';
import { pipe } from '../../src/streams/core.js';
import { ParallelGradients, Rng, Trainer, type StepContext } from '../../src/models/train/index.js';
import { build } from './tiny-model.js';

const moduleUrl = new URL('./tiny-model.ts', import.meta.url);

function batch(i: number): Record<string, tf.Tensor> {
  const rng = new Rng(500 + i);
  return { x: tf.tensor(rng.normalArray(5 * 6 * 6 * 2), [5, 6, 6, 2]), y: tf.tensor(rng.normalArray(10), [5, 2]) };
}

// One pool of 2 workers (seed-3 network) serves the first two tests: starting workers is the slow part.
let parallel: ParallelGradients;
let master: ReturnType<typeof build>;
t.before(async () => {
  await selectBackend({ prefer: 'wasm' });
  master = build({ seed: 3 });
  parallel = await ParallelGradients.start({ module: moduleUrl, options: { seed: 3 }, params: master.params, workers: 2 });
});
t.teardown(() => parallel.close());

t.test('averaged worker gradients equal the whole-batch gradients', async (t) => {
  const model = master;
  const b = batch(0);
  const context: StepContext = { params: model.params, step: 0, random: Math.random, rng: new Rng(1) };
  const { loss, grads } = await parallel.compute(b, context);
  const local = tf.variableGrads(() => model.loss(b, context), [...model.params.values()]);
  t.ok(Math.abs(loss - (await local.value.data())[0]) < 1e-5, 'loss is the batch mean');
  for (const [name, p] of model.params) {
    const want = await local.grads[p.name].data();
    const got = await grads.get(name)!.data();
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i] - got[i]));
    t.ok(err < 1e-5, `${name}: max abs difference ${err.toExponential(1)}`);
  }
  tf.dispose([local.value, ...Object.values(local.grads), ...grads.values(), ...Object.values(b)]);
});

t.test('training through workers tracks single-thread training', async (t) => {
  const single = build({ seed: 3 });
  const multi = master; // the workers mirror it
  const opts = { optimizer: { lr: 0.05 }, clipNorm: 1 };
  const a = new Trainer({ params: single.params, loss: single.loss, ...opts });
  const b = new Trainer({ params: multi.params, loss: multi.loss, gradients: parallel.compute, ...opts });
  const run = async (tr: Trainer<Record<string, tf.Tensor>>) => {
    const losses: number[] = [];
    for await (const r of pipe((function* () { for (let i = 0; i < 6; i++) yield batch(i); })(), tr.stage())) losses.push(r.loss);
    return losses;
  };
  const la = await run(a);
  const lb = await run(b);
  t.ok(la[5] < la[0], `single-thread loss decreases ${la[0].toFixed(4)} -> ${la[5].toFixed(4)}`);
  t.ok(la.every((l, i) => Math.abs(l - lb[i]) < 1e-4 * Math.max(1, Math.abs(l))), `same losses: ${la.map((l) => l.toFixed(5))} vs ${lb.map((l) => l.toFixed(5))}`);
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
