/**
 * Training utilities on wasm: AdamW against a plain-JS double-precision reference, the cosine schedule, gradient
 * clipping, non-finite skipping and abort, EMA, flat tensor count over 100 steps, and exact resume from a checkpoint.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/select.js';
import { pipe } from '../../src/streams/core.js';
import {
  AdamW,
  Rng,
  Trainer,
  clipFactor,
  cosineSchedule,
  globalNorm,
  loadWeights,
  saveWeights,
  batchSize,
  computeGradients,
  type NamedParameters,
  type StepReport,
} from '../../src/models/train/index.js';

let dir = '';
t.before(async () => {
  await selectBackend({ prefer: 'wasm' });
  dir = await mkdtemp(join(tmpdir(), 'wellspring-train-'));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** A small conv net with named parameters: conv3x3 -> SiLU -> dropout -> conv3x3, + dense head on the mean. */
function tinyNet(seed: number, channels = 4): NamedParameters {
  const rng = new Rng(seed);
  const v = (shape: number[], scale: number) =>
    tf.variable(tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)).map((x) => x * scale), shape));
  return new Map([
    ['conv1.weight', v([3, 3, 2, channels], 0.3)],
    ['conv1.bias', v([channels], 0.1)],
    ['conv2.weight', v([3, 3, channels, 2], 0.3)],
    ['head.weight', v([2, 3], 0.5)],
  ]);
}

interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor2D;
}

function tinyLoss(batch: Batch, { params, random }: { params: NamedParameters; random: () => number }): tf.Scalar {
  const p = (n: string) => params.get(n)!;
  let h = tf.conv2d(batch.x, p('conv1.weight') as tf.Tensor4D, 1, 'same').add(p('conv1.bias'));
  h = h.mul(tf.sigmoid(h));
  const keep = tf.tensor(Array.from({ length: h.size }, () => (random() < 0.9 ? 1 / 0.9 : 0)), h.shape);
  h = h.mul(keep);
  const out = tf.conv2d(h as tf.Tensor4D, p('conv2.weight') as tf.Tensor4D, 2, 'same');
  const pred = out.mean([1, 2]).matMul(p('head.weight'));
  return pred.sub(batch.y).square().mean() as tf.Scalar;
}

/** Deterministic batches: batch i depends only on i. */
async function* batches(from: number, to: number): AsyncGenerator<Batch> {
  for (let i = from; i < to; i++) {
    const rng = new Rng(1000 + i);
    yield { x: tf.tensor4d(rng.normalArray(2 * 7 * 7 * 2), [2, 7, 7, 2]), y: tf.tensor2d(rng.normalArray(6), [2, 3]) };
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

t.test('AdamW matches a double-precision reference', async (t) => {
  const rng = new Rng(7);
  const p0 = Array.from(rng.normalArray(6));
  const target = Array.from(rng.normalArray(6));
  const params: NamedParameters = new Map([['w', tf.variable(tf.tensor(p0))]]);
  const opt = new AdamW({ lr: 0.05, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 });
  // Reference: PyTorch's AdamW update written out in doubles.
  const ref = p0.slice();
  const m = ref.map(() => 0);
  const v = ref.map(() => 0);
  for (let step = 1; step <= 5; step++) {
    const lr = 0.05 / step;
    const grad = tf.tidy(() => tf.grad((w: tf.Tensor) => w.sub(tf.tensor(target)).square().sum())(params.get('w')!));
    opt.apply(params, new Map([['w', grad]]), lr);
    grad.dispose();
    for (let i = 0; i < ref.length; i++) {
      const g = 2 * (ref[i] - target[i]);
      ref[i] *= 1 - lr * 0.1;
      m[i] = 0.8 * m[i] + 0.2 * g;
      v[i] = 0.95 * v[i] + 0.05 * g * g;
      ref[i] -= (lr * (m[i] / (1 - 0.8 ** step))) / (Math.sqrt(v[i] / (1 - 0.95 ** step)) + 1e-6);
    }
  }
  const got = await params.get('w')!.data();
  for (let i = 0; i < ref.length; i++) t.ok(Math.abs(got[i] - ref[i]) < 1e-5, `w[${i}] ${got[i]} vs ${ref[i]}`);
  t.equal(opt.t, 5);
  opt.dispose();
  params.get('w')!.dispose();
});

t.test('cosine schedule with warm-up', async (t) => {
  const f = cosineSchedule({ lr: 1, warmup: 4, total: 104, minLr: 0.1 });
  t.equal(f(0), 0.25);
  t.equal(f(3), 1);
  t.equal(f(4), 1, 'peak right after warm-up');
  t.ok(Math.abs(f(54) - 0.55) < 1e-12, 'midpoint halfway between lr and minLr');
  t.ok(Math.abs(f(104) - 0.1) < 1e-12);
  t.ok(Math.abs(f(500) - 0.1) < 1e-12, 'stays at minLr');
  t.throws(() => cosineSchedule({ lr: 1, warmup: 10, total: 10 }), /total \(10\) must exceed warmup/);
});

t.test('global norm and clipping', async (t) => {
  const a = tf.tensor([3, 0]);
  const b = tf.tensor([[4]]);
  const n = globalNorm([a, b]);
  t.equal((await n.data())[0], 5);
  t.equal(clipFactor(5, 10), 1);
  t.ok(Math.abs(clipFactor(5, 1) - 0.2) < 1e-6);
  tf.dispose([a, b, n]);
  // In a trainer step, the first moment after one step is (1 - beta1) * clipped gradient.
  const params: NamedParameters = new Map([['w', tf.variable(tf.tensor([1, 2, 2]))]]);
  const trainer = new Trainer<number>({
    params,
    loss: (_b, { params }) => params.get('w')!.square().sum().mul(0.5) as tf.Scalar, // gradient = w, norm 3
    optimizer: { lr: 0.1, betas: [0.9, 0.999] },
    clipNorm: 1,
  });
  const [report] = await collect(pipe([0], trainer.stage()));
  t.ok(Math.abs(report.gradNorm - 3) < 1e-5, 'reports the norm before clipping');
  const m = Array.from(await (trainer.optimizer as AdamW).m.get('w')!.data());
  t.ok(m.every((x, i) => Math.abs(x - (0.1 * [1, 2, 2][i]) / 3) < 1e-6), `moment of the clipped gradient: ${m}`);
  trainer.dispose();
  params.get('w')!.dispose();
});

t.test('non-finite steps are skipped, counted, and abort after N in a row', async (t) => {
  const params: NamedParameters = new Map([['w', tf.variable(tf.tensor([1, -1]))]]);
  const bad = new Set([1, 3, 4, 6, 7, 8]);
  const trainer = new Trainer<number>({
    params,
    loss: (i, { params }) => params.get('w')!.square().sum().mul(bad.has(i) ? NaN : 1) as tf.Scalar,
    optimizer: { lr: 0.1 },
    maxNonFinite: 3,
  });
  const seen: StepReport[] = [];
  const before = Array.from(await params.get('w')!.data());
  await t.rejects(
    (async () => {
      for await (const r of pipe([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], trainer.stage())) {
        seen.push(r);
        if (r.step === 0) before.splice(0, 2, ...(await params.get('w')!.data()));
        if (r.step === 1) t.same(Array.from(await params.get('w')!.data()), before, 'a skipped step leaves the weights');
      }
    })(),
    /stage "train-step" failed: training diverged: 3 consecutive steps \(up to step 8\)/,
  );
  t.same(seen.map((r) => r.skipped), [false, true, false, true, true, false, true, true]);
  t.equal(trainer.skipped, 6, 'six skipped steps counted, the aborting one included');
  t.equal(trainer.optimizer.t, 3, 'three updates applied');
  trainer.dispose();
  params.get('w')!.dispose();
});

t.test('EMA follows the parameters', async (t) => {
  const params: NamedParameters = new Map([['w', tf.variable(tf.tensor([2]))]]);
  const trainer = new Trainer<number>({
    params,
    loss: (_b, { params }) => params.get('w')!.sum() as tf.Scalar,
    optimizer: { lr: 0.5 },
    emaDecay: 0.9,
  });
  const w: number[] = [2];
  for await (const _ of pipe([0, 1, 2], trainer.stage())) w.push((await params.get('w')!.data())[0]);
  let ema = w[0];
  for (const x of w.slice(1)) ema = 0.9 * ema + 0.1 * x;
  const got = (await trainer.ema!.shadow.get('w')!.data())[0];
  t.ok(Math.abs(got - ema) < 1e-5, `ema ${got} vs ${ema}`);
  t.ok(Math.abs(w[3] - 0.5) < 1e-4, 'Adam moved w by lr per step (sign gradient)');
  trainer.dispose();
  params.get('w')!.dispose();
});

t.test('tensor count stays flat over 100 training steps', async (t) => {
  const params = tinyNet(1);
  const trainer = new Trainer<Batch>({ params, loss: tinyLoss, optimizer: { lr: 1e-2, weightDecay: 0.01 }, clipNorm: 1, emaDecay: 0.99 });
  const counts: number[] = [];
  const losses: number[] = [];
  for await (const r of pipe(batches(0, 100), trainer.stage())) {
    counts.push(tf.memory().numTensors);
    losses.push(r.loss);
  }
  t.equal(counts[99], counts[4], `tensors after step 5: ${counts[4]}, after step 100: ${counts[99]}`);
  t.ok(losses.every(Number.isFinite));
  trainer.dispose();
  for (const v of params.values()) v.dispose();
});

t.test('a resumed run reproduces the uninterrupted losses exactly', async (t) => {
  const options = (params: NamedParameters) => ({
    params,
    loss: tinyLoss,
    optimizer: { lr: 3e-2, weightDecay: 0.05 },
    schedule: cosineSchedule({ lr: 3e-2, warmup: 2, total: 8 }),
    clipNorm: 0.5,
    emaDecay: 0.9,
    seed: 42,
  });
  const full = new Trainer<Batch>(options(tinyNet(3)));
  const uninterrupted = (await collect(pipe(batches(0, 8), full.stage()))).map((r) => r.loss);

  const first = new Trainer<Batch>(options(tinyNet(3)));
  const head = (await collect(pipe(batches(0, 4), first.stage()))).map((r) => r.loss);
  const path = join(dir, 'ckpt.safetensors');
  await first.save(path, { note: 'half way' });
  t.same(await readdir(dir), ['ckpt.safetensors'], 'no temporary file left behind');

  const resumed = new Trainer<Batch>(options(tinyNet(99))); // other initial weights and a fresh RNG: all restored
  const meta = await resumed.restore(path);
  t.equal(meta.note, 'half way');
  t.equal(resumed.step, 4);
  const tail = (await collect(pipe(batches(4, 8), resumed.stage()))).map((r) => r.loss);
  t.same([...head, ...tail], uninterrupted, 'identical losses, bit for bit');
  t.same(Array.from(await resumed.ema!.shadow.get('conv2.weight')!.data()), Array.from(await full.ema!.shadow.get('conv2.weight')!.data()));
  for (const tr of [full, first, resumed]) {
    tr.dispose();
    for (const v of tr.params.values()) v.dispose();
  }
});

t.test('a checkpoint of another architecture fails with the mismatched tensors', async (t) => {
  const path = join(dir, 'arch.safetensors');
  const small = tinyNet(1, 4);
  const trainer = new Trainer<Batch>({ params: small, loss: tinyLoss });
  await trainer.save(path);
  const wide = tinyNet(1, 6);
  wide.set('extra.weight', tf.variable(tf.zeros([2])));
  const other = new Trainer<Batch>({ params: wide, loss: tinyLoss });
  const before = Array.from(await wide.get('conv1.weight')!.data());
  const err = await other.restore(path).then(
    () => new Error('restore succeeded'),
    (e: Error) => e,
  );
  {
    t.match(err.message, /arch\.safetensors: checkpoint does not match the network \(4 mismatched tensors\)/);
    t.match(err.message, /conv1\.weight: expected \[3,3,2,6\], found \[3,3,2,4\]/);
    t.match(err.message, /conv1\.bias: expected \[6\], found \[4\]/);
    t.match(err.message, /conv2\.weight: expected \[3,3,6,2\], found \[3,3,4,2\]/);
    t.match(err.message, /extra\.weight: expected \[2\], not in the file/);
  }
  t.same(Array.from(await wide.get('conv1.weight')!.data()), before, 'nothing assigned on mismatch');
  const weightsPath = join(dir, 'weights.safetensors');
  await saveWeights(weightsPath, small);
  const copy = tinyNet(5, 4);
  await loadWeights(weightsPath, copy);
  t.same(Array.from(await copy.get('conv2.weight')!.data()), Array.from(await small.get('conv2.weight')!.data()));
  for (const m of [small, wide, copy]) for (const v of m.values()) v.dispose();
  trainer.dispose();
  other.dispose();
});

t.test('micro-batches accumulate to the whole-batch gradient', async (t) => {
  const params = tinyNet(8);
  const variables = [...params.values()];
  const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
  const rng = new Rng(9);
  const b = { x: tf.tensor4d(rng.normalArray(5 * 7 * 7 * 2), [5, 7, 7, 2]), y: tf.tensor2d(rng.normalArray(10), [5, 2]).pad([[0, 0], [0, 1]]) as tf.Tensor2D };
  // Dropout masks are drawn sample-major, so the same seed gives the same masks whole or split.
  const context = (seed: number) => {
    const r = new Rng(seed);
    return { params, step: 0, random: () => r.uniform(), rng: r };
  };
  const whole = await computeGradients(tinyLoss, b, context(5), variables, nameOf);
  const split = await computeGradients(tinyLoss, b, context(5), variables, nameOf, 2);
  t.ok(Math.abs(whole.loss - split.loss) < 1e-5 * Math.abs(whole.loss), `loss ${whole.loss} vs ${split.loss}`);
  for (const [name, g] of whole.grads) {
    const a = await g.data();
    const c = await split.grads.get(name)!.data();
    let err = 0;
    let scale = 1e-6;
    for (let i = 0; i < a.length; i++) {
      err = Math.max(err, Math.abs(a[i] - c[i]));
      scale = Math.max(scale, Math.abs(a[i]));
    }
    t.ok(err / scale < 1e-4, `${name}: relative difference ${(err / scale).toExponential(1)}`);
  }
  t.equal(batchSize(3), undefined);
  t.equal(batchSize(b), 5);
  await t.rejects(computeGradients(tinyLoss, [b] as unknown as Batch, context(5), variables, nameOf, 2), /micro-batching needs a batch/);
  tf.dispose([...whole.grads.values(), ...split.grads.values(), b.x, b.y]);
  for (const v of params.values()) v.dispose();
});
