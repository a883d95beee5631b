/**
 * WELLSPRING_NATIVE=off (set before anything loads): the native kernels stay off, the backend description says so,
 * and the wasm kernels (own wasm GEMM, XNNPACK) run the matrix products, matching the cpu backend.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { maxRelErr, on, randomCases } from './helpers.js';

process.env.WELLSPRING_NATIVE = 'off';
const { nativeKernels, nativeAddon } = await import('../../src/models/backend/native/index.js');
const { describeBackend, selectBackend } = await import('../../src/models/backend/select.js');
const { randn } = randomCases(7);

t.test('WELLSPRING_NATIVE=off keeps the native kernels off and the wasm paths give the results', async (t) => {
  t.same(nativeKernels(), { loaded: false, reason: 'disabled by WELLSPRING_NATIVE=off' });
  t.equal(nativeAddon(), undefined);
  const info = await selectBackend({ prefer: 'wasm' });
  t.same(info.native, { loaded: false, reason: 'disabled by WELLSPRING_NATIVE=off' });
  t.match(describeBackend(info), /^backend: wasm \(@tensorflow\/tfjs-backend-wasm; native kernels: off \(disabled by WELLSPRING_NATIVE=off\)\)/);
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[17, 9], [9, 12], false, false],
    [[9, 17], [12, 9], true, true],
    [[4, 8, 6], [4, 8, 12], true, false],
    [[2, 3, 5, 7], [7, 8], false, false],
  ];
  for (const [as, bs, ta, tb] of cases) {
    const [av, bv] = [randn(as), randn(bs)];
    const f = () => [tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.ok(maxRelErr(w, c) < 1e-5, `matMul [${as}] x [${bs}] transposeA=${ta} transposeB=${tb} without native kernels`);
  }
  const [av, bv, biasv] = [randn([11, 6]), randn([6, 10]), randn([10])];
  const f = () => [tf.fused.matMul({ a: tf.tensor2d(av, [11, 6]), b: tf.tensor2d(bv, [6, 10]), bias: tf.tensor1d(biasv) })];
  const [c] = await on('cpu', f);
  const [w] = await on('wasm', f);
  t.ok(maxRelErr(w, c) < 1e-5, 'fused.matMul + bias through the stock kernel');
});
