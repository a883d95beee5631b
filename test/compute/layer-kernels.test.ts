/**
 * The fused layer kernels of the wasm backend (src/models/backend/wasm/layers.ts, layers.c) as the networks use
 * them through src/models/nn/layers.ts: LayerNorm and SiLU against the composite ops on the cpu backend (an
 * independent implementation), their gradients against cpu and central finite differences, and the dropout mask
 * against its JS definition.
 */
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { DROPOUT, LAYER_NORM, LAYER_NORM_GRAD, SILU, SILU_GRAD, dropoutKeeps } from '../../src/models/backend/wasm/index.js';
import { dropout, layerNorm, silu } from '../../src/models/nn/layers.js';
import { maxRelErr, on, randomCases } from './helpers.js';

registerWasmKernels();
const { randInt, randn, rng } = randomCases(20261125);

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
});

t.test('the fused kernels are registered on wasm only', async (t) => {
  for (const name of [LAYER_NORM, LAYER_NORM_GRAD, SILU, SILU_GRAD, DROPOUT]) {
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
  const step = () =>
    tf.tidy(() => {
      const f = (v: tf.Tensor) => dropout(silu(layerNorm(v)), 0.2, { training: true, random: () => 0.5 });
      return tf.grad((v: tf.Tensor) => f(v).square().sum())(x).dataSync()[0];
    });
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 10; i++) step();
  t.equal(tf.memory().numTensors, before, 'tensor count flat over 10 forward and backward passes');
  x.dispose();
});
