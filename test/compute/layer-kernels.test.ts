/**
 * The fused layer kernels of the wasm backend (src/models/backend/wasm/layers.ts, layers.c) as the networks use
 * them through src/models/nn/layers.ts: LayerNorm and SiLU against the composite ops on the cpu backend (an
 * independent implementation), their gradients against cpu and central finite differences, and the dropout mask
 * against its JS definition; the rotary kernels (wasm/rotary.ts, through nn/vit.ts' applyRotary) likewise.
 */
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { DROPOUT, LAYER_NORM, LAYER_NORM_GRAD, SILU, SILU_GRAD, dropoutKeeps } from '../../src/models/backend/wasm/index.js';
import { dropout, layerNorm, silu } from '../../src/models/nn/layers.js';
import { applyRotary } from '../../src/models/nn/vit.js';
import { ROTARY, ROTARY_GRAD } from '../../src/models/backend/wasm/index.js';
import { finiteDifference, maxRelErr, on, randomCases } from './helpers.js';
import { nativeAddon, setNativeKernels } from '../../src/models/backend/native/index.js';

registerWasmKernels();
const { randInt, randn, rng } = randomCases(20261125);

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
});

t.test('the fused kernels are registered on wasm only', async (t) => {
  for (const name of [LAYER_NORM, LAYER_NORM_GRAD, SILU, SILU_GRAD, DROPOUT, ROTARY, ROTARY_GRAD]) {
    t.ok(tf.getKernel(name, 'wasm'), `${name} on wasm`);
    t.notOk(tf.getKernel(name, 'cpu'), `${name} not on cpu (the composite ops run there)`);
  }
});

/** Forward value and the gradient of sum(f(x) * dy), on wasm (fused) and on cpu (composite). */
async function compare(t: Test, label: string, shape: number[], f: (x: tf.Tensor) => tf.Tensor, offset = 0, spread = 1): Promise<void> {
  const xv = randn(shape).map((v) => offset + spread * v);
  const dyv = randn(shape);
  const run = () => {
    const x = tf.tensor(xv, shape);
    const dy = tf.tensor(dyv, shape);
    return [f(x), tf.grad((v: tf.Tensor) => f(v).mul(dy).sum())(x)];
  };
  const [cy, cg] = await on('cpu', run);
  const [wy, wg] = await on('wasm', run);
  t.ok(maxRelErr(wy, cy) < 2e-6, `${label} [${shape}]: forward matches cpu (rel err ${maxRelErr(wy, cy).toExponential(1)})`);
  t.ok(maxRelErr(wg, cg) < 2e-6, `${label} [${shape}]: gradient matches cpu (rel err ${maxRelErr(wg, cg).toExponential(1)})`);
}

t.test('LayerNorm (fused on wasm) matches the composite ops on cpu', async (t) => {
  for (const c of [4, 8, 12, 32, 256]) await compare(t, `layerNorm c=${c}`, [randInt(1, 3), randInt(1, 6), randInt(1, 5), c], layerNorm);
  // Rows with a large mean and a small spread: a sum-of-squares variance would lose most of its digits here.
  await compare(t, 'layerNorm, mean 1000, spread 0.1', [2, 3, 64], layerNorm, 1000, 0.1);
  // A channel count that is not a multiple of 4 takes the composite path on wasm too.
  await compare(t, 'layerNorm c=6 (composite on wasm)', [2, 3, 6], layerNorm);
});

t.test('SiLU (fused on wasm) matches the composite ops on cpu, also far out in both tails', async (t) => {
  await compare(t, 'silu', [3, 7, 5, 9], silu);
  await compare(t, 'silu, spread 30', [1001], silu, 0, 30);
  const extreme = await on('wasm', () => [silu(tf.tensor([-1e4, -200, -88, 0, 88, 200, 1e4]))]);
  const expected = [0, 0, 0, 0, 88, 200, 1e4];
  t.ok(extreme[0].every((v, i) => Number.isFinite(v) && Math.abs(v - expected[i]) <= 1e-6 * Math.max(1, expected[i])), `silu at the extremes: ${[...extreme[0]]}`);
});

t.test('fused gradients match central finite differences on wasm', async (t) => {
  await tf.setBackend('wasm');
  for (const [label, shape, f] of [
    ['layerNorm', [2, 3, 8], layerNorm],
    ['silu', [2, 3, 7], silu],
  ] as Array<[string, number[], (x: tf.Tensor) => tf.Tensor]>) {
    const x0 = randn(shape);
    const v = randn(shape);
    const w = tf.tensor(randn(shape), shape);
    // A nonlinear scalar of the output, summed in float64 in JS so the difference quotient is not rounding noise.
    const loss = (x: tf.Tensor): tf.Scalar => f(x).mul(w).sum().add(f(x).square().sum().mul(0.5)) as tf.Scalar;
    const at = (s: number): number => tf.tidy(() => loss(tf.tensor(x0.map((x, i) => x + s * v[i]), shape)).dataSync()[0]);
    const eps = 1e-2;
    const numeric = (at(eps) - at(-eps)) / (2 * eps);
    const g = tf.tidy(() => tf.grad(loss)(tf.tensor(x0, shape)));
    const analytic = (await g.data()).reduce((acc, gi, i) => acc + gi * v[i], 0);
    g.dispose();
    w.dispose();
    const rel = Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(analytic));
    t.ok(rel < 1e-2, `${label}: finite difference ${numeric.toFixed(5)} vs gradient ${analytic.toFixed(5)} (rel ${rel.toExponential(1)})`);
  }
});

t.test('rotary embedding (one kernel each way on wasm) matches the composite ops on cpu', async (t) => {
  for (const [b, heads, n, d] of [[1, 1, 1, 2], [2, 3, 5, 8], [3, 4, 80, 24], [2, 2, 7, 6]]) {
    const xs = [b, heads, n, d];
    const as = [heads, n, d / 2];
    const [xv, av, dyv] = [randn(xs), randn(as).map((v) => 3 * v), randn(xs)];
    const run = () => {
      const x = tf.tensor(xv, xs);
      const angles = tf.tensor(av, as);
      const dy = tf.tensor(dyv, xs);
      // Gradients with respect to x and to the angles (through cos and sin, as the ViT's learned frequencies).
      const f = (v: tf.Tensor, a: tf.Tensor) => applyRotary(v, tf.cos(a), tf.sin(a)).mul(dy).sum();
      const [gx, ga] = tf.grads(f)([x, angles]);
      return [applyRotary(x, tf.cos(angles), tf.sin(angles)), gx, ga];
    };
    const [cy, cgx, cga] = await on('cpu', run);
    const [wy, wgx, wga] = await on('wasm', run);
    t.ok(maxRelErr(wy, cy) < 2e-6, `[${xs}]: forward matches cpu (rel err ${maxRelErr(wy, cy).toExponential(1)})`);
    t.ok(maxRelErr(wgx, cgx) < 2e-6, `[${xs}]: gradient in x matches cpu (rel err ${maxRelErr(wgx, cgx).toExponential(1)})`);
    t.ok(maxRelErr(wga, cga) < 1e-5, `[${xs}]: gradient in the angles matches cpu (rel err ${maxRelErr(wga, cga).toExponential(1)})`);
  }
  // The forward kernel rounds like the composite: the same bits as the composite ops on wasm itself.
  await tf.setBackend('wasm');
  const [x, c, s] = [tf.tensor(randn([2, 3, 4, 6]), [2, 3, 4, 6]), tf.tensor(randn([3, 4, 3]), [3, 4, 3]), tf.tensor(randn([3, 4, 3]), [3, 4, 3])];
  const fused = await applyRotary(x, c, s).data();
  const composite = await tf.tidy(() => {
    const [a, b] = tf.split(x, 2, -1);
    return tf.concat([a.mul(c).sub(b.mul(s)), a.mul(s).add(b.mul(c))], -1);
  }).data();
  t.ok(fused.every((v, i) => Object.is(v, composite[i])), 'forward: bit for bit the composite');
  // Angles that do not match x's shape take the composite path (broadcasting) instead of failing.
  const broadcast = tf.tidy(() => applyRotary(x, tf.ones([3]), tf.zeros([3])));
  t.same(Array.from(await broadcast.data()), Array.from(await x.data()), 'zero angles broadcast over every axis leave x unchanged');
  tf.dispose([x, c, s, broadcast]);
  const a0 = tf.tensor(randn([2, 3, 3]), [2, 3, 3]);
  await finiteDifference(t, randn, 'rotary: gradient in x against finite differences', [2, 2, 3, 6], (v) =>
    applyRotary(v, tf.cos(a0), tf.sin(a0)).square().sum() as tf.Scalar,
  );
  const x0 = tf.tensor(randn([2, 2, 3, 6]), [2, 2, 3, 6]);
  await finiteDifference(t, randn, 'rotary: gradient in the angles against finite differences', [2, 3, 3], (a) =>
    applyRotary(x0, tf.cos(a), tf.sin(a)).square().mul(applyRotary(x0, tf.cos(a), tf.sin(a))).sum() as tf.Scalar,
  );
  tf.dispose([a0, x0]);
});

t.test('rotary: the native kernels give the JS loops\' bits, forward and backward, and refuse bad calls', { skip: nativeAddon() ? false : 'native kernels not in use' }, async (t) => {
  await tf.setBackend('wasm');
  const xs = [3, 4, 17, 24];
  const [xv, av, dyv] = [randn(xs), randn([4, 17, 12]), randn(xs)];
  const run = async () => {
    const out = tf.tidy(() => {
      const x = tf.tensor(xv, xs);
      const a = tf.tensor(av, [4, 17, 12]);
      const dy = tf.tensor(dyv, xs);
      const f = (v: tf.Tensor, c: tf.Tensor, s: tf.Tensor) => applyRotary(v, c, s).mul(dy).sum();
      return [applyRotary(x, tf.cos(a), tf.sin(a)), ...tf.grads(f)([x, tf.cos(a), tf.sin(a)])];
    });
    const values = await Promise.all(out.map((v) => v.data()));
    tf.dispose(out);
    return values;
  };
  const native = await run();
  const before = setNativeKernels(false);
  let js: Awaited<ReturnType<typeof run>>;
  try {
    js = await run();
  } finally {
    setNativeKernels(before);
  }
  for (const [i, label] of ['y', 'dx', 'dcos', 'dsin'].entries()) {
    t.ok(native[i]!.every((v, k) => Object.is(v, js[i]![k])), `${label}: ${native[i]!.length} values bit for bit`);
  }
  const addon = nativeAddon()!;
  const f = (n: number) => new Float32Array(n);
  t.throws(() => addon.rotary(f(24), f(6), f(6), 4, f(24)), /cos has 6 elements, not a multiple of half \(4\)/);
  t.throws(() => addon.rotary(f(20), f(6), f(6), 3, f(20)), /x has 20 elements, not a multiple of 2 \* cos's 6/);
  t.throws(() => addon.rotary(f(24), f(6), f(5), 3, f(24)), /sin has 5 elements, cos 6/);
  const x = f(24);
  t.throws(() => addon.rotary(x, f(6), f(6), 3, x), /y overlaps an input/);
  t.throws(() => addon.rotaryGrad(f(24), f(24), f(6), f(6), 3, f(24), f(6), f(4)), /cos, sin, dcos and dsin must have one length/);
  t.throws(() => addon.rotary(f(24), f(6), f(6), 0, f(24)), /half must be a positive integer/);
});

t.test('dropout on wasm: the hash mask, rescaled, the same mask in the gradient, seeded', async (t) => {
  await tf.setBackend('wasm');
  const n = 20_003; // not a multiple of 4: the scalar tail of the kernel runs too
  const rate = 0.3;
  const draw = 0.37;
  const seed = Math.floor(draw * 2147483647); // what dropoutSeed draws from options.random
  const x = tf.tensor(randn([n]).map((v) => v + 3), [n]);
  const xv = await x.data();
  const options = () => ({ training: true, random: () => draw });
  const y = await dropout(x, rate, options()).data();
  let wrong = 0;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const keep = dropoutKeeps(seed, i, rate);
    kept += keep ? 1 : 0;
    const expected = keep ? xv[i] / (1 - rate) : 0;
    if (Math.abs(y[i] - expected) > 1e-6 * Math.abs(expected)) wrong++;
  }
  t.equal(wrong, 0, 'every element follows the JS definition of the mask, kept ones scaled by 1 / (1 - rate)');
  // Binomial: kept ~ n (1 - rate) +- 4.6 sd.
  const sd = Math.sqrt(n * rate * (1 - rate));
  t.ok(Math.abs(kept - n * (1 - rate)) < 4.6 * sd, `kept fraction ${(kept / n).toFixed(4)} near ${1 - rate}`);
  const g = await tf.grad((v: tf.Tensor) => dropout(v, rate, options()).sum())(x).data();
  t.ok(g.every((gi, i) => gi === (dropoutKeeps(seed, i, rate) ? 1 / (1 - rate) : 0) || Math.abs(gi - 1 / (1 - rate)) < 1e-6), 'gradient: the same mask and scale, regenerated');
  const again = await dropout(x, rate, options()).data();
  t.same([...again], [...y], 'same seed, same mask');
  const other = await dropout(x, rate, { training: true, random: () => rng.uniform() }).data();
  t.ok(other.some((v, i) => (v === 0) !== (y[i] === 0)), 'another seed, another mask');
  t.equal(dropout(x, rate, { training: false }), x, 'inference returns the input');
  x.dispose();
});

t.test('the fused ops leak no tensors', async (t) => {
  await tf.setBackend('wasm');
  const x = tf.tensor(randn([4, 5, 16]), [4, 5, 16]);
  const angles = tf.tensor(randn([5, 8]), [5, 8]);
  const step = () =>
    tf.tidy(() => {
      const rotate = (v: tf.Tensor) => applyRotary(v, tf.cos(angles), tf.sin(angles));
      const f = (v: tf.Tensor) => dropout(silu(rotate(layerNorm(v))), 0.2, { training: true, random: () => 0.5 });
      return tf.grad((v: tf.Tensor) => f(v).square().sum())(x).dataSync()[0];
    });
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 10; i++) step();
  t.equal(tf.memory().numTensors, before, 'tensor count flat over 10 forward and backward passes');
  tf.dispose([x, angles]);
});
