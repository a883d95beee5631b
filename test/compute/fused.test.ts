/**
 * The fused optimiser step (src/models/train/fused.ts) against the tensor path it replaces: AdamW.apply with
 * clipping and weight decay, then Ema.update, over several steps on random parameters, natively and in the JS
 * twin; the weighted gradient sum against a double-precision reference; the flat squared norm against
 * globalNorm; the native exports' argument checks; and
 * a checkpoint written from flat state read back into a tensor trainer and vice versa.
 */
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/select.js';
import { nativeAddon, nativeKernels, setNativeKernels } from '../../src/models/backend/native/index.js';
import {
  AdamW,
  Ema,
  Rng,
  accumulateGradient,
  fusedAdamw,
  globalNorm,
  squaredNorm,
  layoutOf,
  restoreCheckpoint,
  saveCheckpoint,
  slotOf,
  type NamedParameters,
} from '../../src/models/train/index.js';

let dir = '';
t.before(async () => {
  await selectBackend({ prefer: 'wasm' });
  dir = await mkdtemp(join(tmpdir(), 'wellspring-fused-'));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

const shapes: Array<[string, number[]]> = [
  ['a.weight', [7, 13]],
  ['a.bias', [13]],
  ['b.weight', [3, 3, 4, 5]],
  ['c.scale', [1]],
];

let made = 0; // variable names must be unique in the engine
function randomParams(seed: number): NamedParameters {
  const rng = new Rng(seed);
  made += 1;
  return new Map(
    shapes.map(([name, shape]) => [name, tf.variable(tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape), true, `${name}-${seed}-${made}`)]),
  );
}

/** The values `randomParams(seed)` starts from, without making variables. */
function randomParamsData(seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(shapes.map(([name, shape]) => [name, Float32Array.from(rng.normalArray(shape.reduce((a, b) => a * b, 1)))]));
}

/** Gradients of step k: random, large enough that clipping bites; `b.weight` gets none at step 2. */
function gradientsAt(k: number): Map<string, Float32Array> {
  const rng = new Rng(100 + k);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    if (k === 2 && name === 'b.weight') continue;
    out.set(name, Float32Array.from(rng.normalArray(shape.reduce((a, b) => a * b, 1)), (x) => 3 * x));
  }
  return out;
}

const hyper = { lr: 3e-2, weightDecay: 0.1, decays: (name: string) => !name.endsWith('.bias') };
const lrAt = (k: number) => hyper.lr * (1 - k / 10);
const scaleAt = (k: number) => [1, 0.37, 0.9, 1, 0.123][k % 5];
const steps = 5;

/** The tensor path: AdamW.apply then Ema.update, step after step. Returns the params, moments and EMA. */
async function tensorRun(): Promise<{ params: NamedParameters; opt: AdamW; ema: Ema }> {
  const params = randomParams(1);
  const opt = new AdamW(hyper);
  const ema = new Ema(params, 0.9);
  for (let k = 0; k < steps; k++) {
    const grads = new Map([...gradientsAt(k)].map(([n, g]) => [n, tf.tensor(g, params.get(n)!.shape)]));
    opt.apply(params, grads, lrAt(k), scaleAt(k));
    ema.update(params);
    tf.dispose([...grads.values()]);
  }
  return { params, opt, ema };
}

/** The fused path over flat buffers, with the native kernels on or off. */
function flatRun(native: boolean): { params: NamedParameters; opt: AdamW; ema: Ema; weights: Float32Array } {
  const previous = setNativeKernels(native);
  try {
    const params = randomParams(1);
    const layout = layoutOf(params);
    const weights = new Float32Array(layout.total);
    layout.names.forEach((n, i) => slotOf(layout, weights, i).set(params.get(n)!.dataSync() as Float32Array));
    const opt = new AdamW(hyper);
    const ema = new Ema(params, 0.9);
    for (let k = 0; k < steps; k++) {
      const g = gradientsAt(k);
      const values = new Float32Array(layout.total);
      const present = layout.names.map((n, i) => {
        const gi = g.get(n);
        if (gi) slotOf(layout, values, i).set(gi);
        return gi !== undefined;
      });
      opt.applyFlat(params, { layout, values, present, weights }, lrAt(k), scaleAt(k), ema);
    }
    layout.names.forEach((n, i) => params.get(n)!.assign(tf.tensor(slotOf(layout, weights, i).slice(), layout.shapes[i])));
    return { params, opt, ema, weights };
  } finally {
    setNativeKernels(previous);
  }
}

async function compareStates(t: Test, label: string, want: { params: NamedParameters; opt: AdamW; ema: Ema }, got: { params: NamedParameters; opt: AdamW; ema: Ema }) {
  const wm = await want.opt.momentData();
  const gm = await got.opt.momentData();
  t.same([...gm.keys()], [...wm.keys()], `${label}: moments for the same parameters`);
  t.equal(got.opt.t, want.opt.t, `${label}: update count`);
  const we = await want.ema.shadowData();
  const ge = await got.ema.shadowData();
  let worst = 0;
  let differing = 0;
  const check = (a: Float32Array, b: Float32Array) => {
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]) / Math.max(1e-6, Math.abs(a[i]));
      worst = Math.max(worst, d);
      if (a[i] !== b[i]) differing += 1;
    }
  };
  for (const [name, p] of want.params) check(p.dataSync() as Float32Array, got.params.get(name)!.dataSync() as Float32Array);
  for (const [name, { m, v }] of wm) {
    check(m.data, gm.get(name)!.m.data);
    check(v.data, gm.get(name)!.v.data);
  }
  for (const [name, s] of we) check(s.data, ge.get(name)!.data);
  // Each element is the same float32 operations in the same order: the bits agree.
  t.equal(differing, 0, `${label}: every weight, moment and EMA value equals the tensor path's (worst relative difference ${worst.toExponential(1)})`);
}

t.test('the fused step equals AdamW.apply + Ema.update (clipping, decay filter, a missing gradient)', async (t) => {
  const want = await tensorRun();
  t.equal(want.opt.m.has('b.weight'), true, 'the tensor path made moments for b.weight');
  t.ok(nativeKernels().loaded, `native kernels loaded (${nativeKernels().reason ?? nativeKernels().isa})`);
  const native = flatRun(true);
  await compareStates(t, 'native', want, native);
  const js = flatRun(false);
  await compareStates(t, 'JS twin', want, js);
  // And the update really moved the weights (a no-op would match a no-op).
  const start = randomParams(1);
  let moved = 0;
  for (const [name, p] of start) moved = Math.max(moved, tf.tidy(() => p.sub(want.params.get(name)!).abs().max().dataSync()[0]));
  t.ok(moved > 1e-2, `the weights moved by up to ${moved.toFixed(3)}`);
  t.ok(native.opt.isFlat && native.opt.m.size === 0, 'after applyFlat the moments are flat');
  t.throws(() => native.opt.apply(native.params, new Map(), 1e-3), /the moments are flat/);
  // A flat EMA writes the same averaged weights into parameters as the tensor one (what train.ema saves).
  const fromFlat = randomParams(7);
  const fromTensor = randomParams(8);
  native.ema.copyTo(fromFlat);
  want.ema.copyTo(fromTensor);
  let apart = 0;
  for (const [name, p] of fromTensor) apart = Math.max(apart, tf.tidy(() => p.sub(fromFlat.get(name)!).abs().max().dataSync()[0]));
  t.equal(apart, 0, 'Ema.copyTo from the flat shadow equals the tensor shadow\'s');
  const shadow = await want.ema.shadowData();
  t.ok([...shadow].some(([name, s]) => s.data.some((v, i) => v !== (randomParamsData(1).get(name)![i]))), 'the copied average differs from the initial weights');
});

t.test('the weighted gradient sum equals a double-precision reference, natively and in JS', async (t) => {
  const rng = new Rng(7);
  const n = 1001;
  const sources = [0, 1, 2].map(() => Float32Array.from(rng.normalArray(n)));
  const weights = [5 / 13, 4 / 13, 4 / 13];
  const outs: Float32Array[] = [];
  for (const native of [true, false]) {
    const previous = setNativeKernels(native);
    const out = new Float32Array(n);
    sources.forEach((s, j) => accumulateGradient(out, s, weights[j], j === 0));
    setNativeKernels(previous);
    outs.push(out);
    // Each source's addition rounds once to float32: the error is within a few units of the terms' magnitude.
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const x = sources.reduce((acc, s, j) => acc + weights[j] * s[i], 0);
      const magnitude = sources.reduce((acc, s, j) => acc + Math.abs(weights[j] * s[i]), 0);
      worst = Math.max(worst, Math.abs(out[i] - x) / (magnitude * 2 ** -24));
    }
    t.ok(worst <= 3, `${native ? 'native' : 'JS'}: worst error ${worst.toFixed(2)} float32 units of the terms' magnitude (<= 3)`);
  }
  t.same(Array.from(outs[0]), Array.from(outs[1]), 'native and JS give the same floats');
});

t.test('the flat squared norm is globalNorm\'s, to the bit, and near the double-precision norm', async (t) => {
  const rng = new Rng(8);
  const params = new Map([['a', [300, 401]], ['b', [17]], ['c', [3, 3, 64, 64]], ['d', [1]]].map(([n, shape]) => [n as string, tf.variable(tf.zeros(shape as number[]))]));
  const layout = layoutOf(params);
  const values = Float32Array.from(rng.normalArray(layout.total));
  const tensors = layout.names.map((_, i) => tf.tensor(slotOf(layout, values, i), layout.shapes[i]));
  const want = globalNorm(tensors).dataSync()[0];
  let exact = 0;
  for (const x of values) exact += x * x;
  for (const native of [true, false]) {
    const previous = setNativeKernels(native);
    const got = Math.fround(Math.sqrt(squaredNorm(layout, values)));
    setNativeKernels(previous);
    t.equal(got, want, `${native ? 'native' : 'JS'}: ${got} (globalNorm ${want})`);
    t.ok(Math.abs(got - Math.sqrt(exact)) < 1e-4 * Math.sqrt(exact), `within float32 summation error of the exact ${Math.sqrt(exact)}`);
  }
  tf.dispose([...tensors, ...params.values()]);
});

t.test('the native exports refuse wrong arguments with the argument named', async (t) => {
  const addon = nativeAddon();
  if (!addon) {
    t.skip(`native kernels not loaded: ${nativeKernels().reason}`);
    return;
  }
  const a = new Float32Array(4);
  t.throws(() => addon.accumulate(a, new Float32Array(3), 1, false), /accumulate: src has 3 elements, expected 4/);
  t.throws(() => addon.accumulate(a, a.subarray(1), 1, false), /src has 3 elements/);
  t.throws(() => addon.adamw(a, a, a, new Float64Array(4) as unknown as Float32Array, null, new Float64Array(14)), /adamw: g must be a Float32Array/);
  t.throws(() => addon.adamw(a, a, a, a, null, new Float64Array(3)), /constants must be a Float64Array of 14 numbers/);
  t.throws(() => fusedAdamw(a, a, new Float32Array(5), a, null, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, t: 1, weightDecay: 0, scale: 1 }), /fusedAdamw: v has 5 elements, expected 4/);
});

t.test('a checkpoint of flat state is the tensor path\'s checkpoint, and restores into either', async (t) => {
  const want = await tensorRun();
  const flat = flatRun(true);
  const a = join(dir, 'tensor.safetensors');
  const b = join(dir, 'flat.safetensors');
  await saveCheckpoint(a, { params: want.params, optimizer: want.opt, ema: want.ema, step: steps, skipped: 0 });
  await saveCheckpoint(b, { params: flat.params, optimizer: flat.opt, ema: flat.ema, step: steps, skipped: 0 });
  const { readFile } = await import('node:fs/promises');
  t.ok((await readFile(a)).equals(await readFile(b)), 'the two files are byte for byte the same');
  // Restore the tensor checkpoint into the flat state (after scrambling it), then save again: same file.
  flat.opt.restoreMoments(new Map(), 0);
  flat.ema.restoreShadow(new Map([['a.bias', new Float32Array(13)]]));
  await restoreCheckpoint(a, { params: flat.params, optimizer: flat.opt, ema: flat.ema, step: 0, skipped: 0 });
  t.ok(flat.opt.isFlat, 'still flat after the restore');
  const c = join(dir, 'again.safetensors');
  await saveCheckpoint(c, { params: flat.params, optimizer: flat.opt, ema: flat.ema, step: steps, skipped: 0 });
  t.ok((await readFile(c)).equals(await readFile(a)), 'restored flat state saves the same file');
  for (const s of [want, flat]) {
    s.opt.dispose();
    s.ema.dispose();
    for (const p of s.params.values()) p.dispose();
  }
});
