/**
 * The project's wasm kernels against the cpu backend (an independent implementation) on random shapes, and their
 * gradients against central finite differences on wasm.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { type WasmBackendInternals, ownBatchMatMul } from '../../src/models/backend/wasm/index.js';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { nativeKernels, nativeMatMul } from '../../src/models/backend/native/index.js';
import { finiteDifference, maxRelErr, on, randomCases } from './helpers.js';

registerWasmKernels();
const { pick, randInt, randn } = randomCases(20261123);

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
});

t.test('conv2d gradients match the cpu backend on random shapes', async (t) => {
  for (let trial = 0; trial < 24; trial++) {
    const stride = trial % 2 === 0 ? 1 : 2;
    const pad = pick(['same', 'valid'] as const);
    const k = pick([1, 2, 3, 5]);
    const b = randInt(1, 3);
    const h = randInt(k, 11);
    const w = randInt(k, 10);
    const cin = randInt(1, 5);
    const cout = randInt(1, 6);
    const xs = [b, h, w, cin];
    const ws = [k, k, cin, cout];
    const xv = randn(xs);
    const wv = randn(ws);
    const f = (): tf.Tensor[] => {
      const x = tf.tensor4d(xv, xs as [number, number, number, number]);
      const wt = tf.tensor4d(wv, ws as [number, number, number, number]);
      const loss = (a: tf.Tensor4D, c: tf.Tensor4D): tf.Scalar => tf.conv2d(a, c, stride, pad).square().sum();
      const [gx, gw] = tf.grads(loss as (...args: tf.Tensor[]) => tf.Tensor)([x, wt]);
      return [gx, gw];
    };
    const [cx, cw] = await on('cpu', f);
    const [wx, ww] = await on('wasm', f);
    const label = `x ${xs} w ${ws} stride ${stride} ${pad}`;
    t.ok(maxRelErr(wx, cx) < 1e-4, `input gradient: ${label} (rel err ${maxRelErr(wx, cx).toExponential(1)})`);
    t.ok(maxRelErr(ww, cw) < 1e-4, `filter gradient: ${label} (rel err ${maxRelErr(ww, cw).toExponential(1)})`);
  }
});

t.test('filter gradients of thin 3x3 stride-1 convs (channels zero-padded onto the Winograd path) match the cpu backend', async (t) => {
  // The DCAE's ends (5 -> 16, 16 -> 5 channels) and odd thin ones; sizes on both Winograd variants (output < 4: F(2x2)).
  const cases: Array<[number, number, number, number, 'same' | 'valid']> = [
    [5, 16, 32, 32, 'same'], [16, 5, 32, 32, 'same'], [3, 7, 9, 11, 'same'], [1, 2, 5, 6, 'valid'], [6, 9, 3, 3, 'same'], [5, 16, 8, 7, 'valid'],
  ];
  for (const [cin, cout, h, w, pad] of cases) {
    const b = randInt(1, 3);
    const xs = [b, h, w, cin] as [number, number, number, number];
    const ws = [3, 3, cin, cout] as [number, number, number, number];
    const [xv, wv] = [randn(xs), randn(ws)];
    const f = (): tf.Tensor[] => {
      const x = tf.tensor4d(xv, xs);
      return [tf.grad((wt: tf.Tensor4D) => tf.conv2d(x, wt, 1, pad).square().sum())(tf.tensor4d(wv, ws))];
    };
    const [want] = await on('cpu', f);
    const [got] = await on('wasm', f);
    const err = maxRelErr(got, want);
    t.ok(err < 1e-4, `x ${xs} w ${ws} ${pad}: rel err ${err.toExponential(1)}`);
  }
  const x = tf.tensor4d(randn([2, 9, 8, 5]), [2, 9, 8, 5]);
  await finiteDifference(t, randn, 'conv2d 3x3 stride 1 same, 5 -> 6 channels (filter)', [3, 3, 5, 6], (wt) =>
    tf.conv2d(x, wt as tf.Tensor4D, 1, 'same').square().sum(),
  );
  x.dispose();
});

t.test('gradients on wasm match finite differences', async (t) => {
  const w = tf.tensor4d(randn([3, 3, 3, 4]), [3, 3, 3, 4]);
  const w5 = tf.tensor4d(randn([5, 5, 3, 2]), [5, 5, 3, 2]);
  const r = (shape: number[]) => tf.tensor(randn(shape), shape);
  const r1 = r([2, 5, 4, 4]);
  const r2 = r([2, 3, 2, 2]);
  await finiteDifference(t, randn, 'conv2d 3x3 stride 1 same (input)', [2, 9, 7, 3], (x) =>
    tf.conv2d(x as tf.Tensor4D, w, 1, 'same').square().mul(0.5).sum().add(tf.conv2d(x as tf.Tensor4D, w, 2, 'same').mul(r1).sum()),
  );
  await finiteDifference(t, randn, 'conv2d 5x5 stride 2 valid (input)', [2, 9, 7, 3], (x) =>
    tf.conv2d(x as tf.Tensor4D, w5, 2, 'valid').mul(r2).sum().add(tf.conv2d(x as tf.Tensor4D, w5, 2, 'valid').square().sum()),
  );
  const x = tf.tensor4d(randn([2, 8, 7, 3]), [2, 8, 7, 3]);
  await finiteDifference(t, randn, 'conv2d 3x3 stride 2 same (filter)', [3, 3, 3, 4], (wt) =>
    tf.conv2d(x, wt as tf.Tensor4D, 2, 'same').square().sum(),
  );
  const d2sR = r([2, 6, 4, 3]);
  await finiteDifference(t, randn, 'depthToSpace', [2, 3, 2, 12], (z) => tf.depthToSpace(z as tf.Tensor4D, 2).mul(d2sR).square().sum());
  const ssR = r([2, 3, 3, 3]);
  await finiteDifference(t, randn, 'stridedSlice strides [1,2,2,1]', [2, 7, 6, 3], (z) =>
    tf.stridedSlice(z, [0, 1, 0, 0], [2, 7, 6, 3], [1, 2, 2, 1]).mul(ssR).square().sum(),
  );
  await finiteDifference(t, randn, 'where(x > 0) (comparison gradient)', [4, 5], (z) => tf.where(z.greater(0), z.square(), z.mul(3)).sum());
  const table = r([7, 4]);
  await finiteDifference(t, randn, 'gather (embedding) through UnsortedSegmentSum', [7, 4], (e) =>
    tf.gather(e, tf.tensor1d([1, 3, 3, 6, 0], 'int32')).square().mul(table.slice([0, 0], [5, 4])).sum(),
  );
  tf.dispose([w, w5, r1, r2, x, d2sR, ssR, table]);
});

t.test('replaced kernels match the cpu backend', async (t) => {
  // Transposed batched matmuls (attention: q k^T, and their gradients).
  for (const [ta, tb] of [[false, true], [true, false], [true, true]] as const) {
    const [b, m, k, n] = [randInt(1, 4), randInt(1, 9), randInt(1, 9), randInt(1, 9)];
    const as = ta ? [b, k, m] : [b, m, k];
    const bs = tb ? [b, n, k] : [b, k, n];
    const av = randn(as);
    const bv = randn(bs);
    const f = () => [tf.matMul(tf.tensor3d(av, as as [number, number, number]), tf.tensor3d(bv, bs as [number, number, number]), ta, tb)];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.ok(maxRelErr(w, c) < 1e-5, `matMul transposeA=${ta} transposeB=${tb} [${as}] x [${bs}]`);
  }
  // Batched products (per-entry XNNPACK products, or one tall product against a shared matrix), 4-D batches.
  const batched: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7, 3], [5, 3, 4], false, false],
    [[2, 3, 6, 5], [2, 3, 4, 5], false, true],
    [[4, 6, 3], [1, 3, 5], false, false],
    [[4, 6, 3], [3, 5], false, false],
    [[1, 6, 3], [4, 3, 5], false, false],
    [[3, 4, 6], [3, 4, 5], true, false],
  ];
  for (const [as, bs, ta, tb] of batched) {
    const av = randn(as);
    const bv = randn(bs);
    const f = () => [tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.ok(maxRelErr(w, c) < 1e-5, `batched matMul [${as}] x [${bs}] transposeA=${ta} transposeB=${tb}`);
  }
  // Slices and strided slices (odd sizes, offsets, strides, shrink axes).
  const shape = [3, 7, 6, 5];
  const xv = randn(shape);
  const cases: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
    ['slice inner box', (x) => tf.slice(x, [1, 2, 1, 0], [2, 4, 3, 5])],
    ['slice channels', (x) => tf.slice(x, [0, 0, 0, 1], [3, 7, 6, 3])],
    ['slice rank 2', (x) => tf.slice(x.reshape([21, 30]), [3, 5], [11, 17])],
    ['stridedSlice [1,2,2,1]', (x) => tf.stridedSlice(x, [0, 1, 0, 0], [3, 7, 6, 5], [1, 2, 2, 1])],
    ['stridedSlice [2,3,1,2] with masks', (x) => tf.stridedSlice(x, [1, 0, 2, 0], [3, 7, 6, 5], [2, 3, 1, 2], 0, 0b1000)],
    ['split into [2, 3, 1] along axis 2', (x) => tf.concat(tf.split(x, [2, 3, 1], 2).reverse(), 2)],
    ['split into 3 along axis 0', (x) => tf.concat(tf.split(x, 3, 0).reverse(), 0)],
    ['stridedSlice negative stride (stock kernel)', (x) => tf.stridedSlice(x, [0, 6, 0, 0], [3, 0, 6, 5], [1, -2, 1, 1])],
  ];
  for (const [label, op] of cases) {
    const f = () => [op(tf.tensor(xv, shape))];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.same(Array.from(w), Array.from(c), label);
  }
  // Shrink axis with strides: the cpu backend's own kernel fails here (it indexes with the shrunk shape), so the
  // reference is x[1, :, ::2, :] written out in JS.
  await tf.setBackend('wasm');
  const shrunk = tf.tidy(() => tf.stridedSlice(tf.tensor(xv, shape), [1, 0, 0, 0], [2, 7, 6, 5], [1, 1, 2, 1], 0, 0, 0, 0, 0b0001));
  t.same(shrunk.shape, [7, 3, 5], 'shrink axis shape');
  const expected: number[] = [];
  for (let i = 0; i < 7; i++) for (let j = 0; j < 6; j += 2) for (let k = 0; k < 5; k++) expected.push(xv[((1 * 7 + i) * 6 + j) * 5 + k]);
  t.same(Array.from(await shrunk.data()), expected, 'stridedSlice shrink axis with strides');
  shrunk.dispose();
  // UnsortedSegmentSum, including out-of-range ids (dropped).
  const data = randn([6, 3]);
  const f = () => [tf.unsortedSegmentSum(tf.tensor2d(data, [6, 3]), tf.tensor1d([2, 0, 2, 4, 1, 0], 'int32'), 5)];
  const [c] = await on('cpu', f);
  const [w] = await on('wasm', f);
  t.ok(maxRelErr(w, c) < 1e-6, 'unsortedSegmentSum');
  // Sum over leading axes (column sums, float64 accumulation) and the reductions left to the stock kernel.
  const sx = randn([4, 5, 6, 3]);
  const sums: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
    ['sum axis 0', (x) => tf.sum(x, 0)],
    ['sum axes [0, 1] keepDims', (x) => tf.sum(x, [1, 0], true)],
    ['sum axes [0, 1, 2] (bias-gradient shape)', (x) => tf.sum(x, [0, 1, 2])],
    ['sum axis -1 (stock kernel)', (x) => tf.sum(x, -1)],
    ['sum axes [1, 2] (stock kernel)', (x) => tf.sum(x, [1, 2])],
    ['sum all (stock kernel)', (x) => tf.sum(x)],
    ['sum of int32 over axis 0 (stock kernel)', (x) => tf.sum(tf.cast(tf.mul(x, 10), 'int32'), 0)],
  ];
  for (const [label, op] of sums) {
    const f = () => [op(tf.tensor(sx, [4, 5, 6, 3]))];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.ok(c.length === w.length && maxRelErr(w, c) < 1e-5, `${label}: ${w.length} values`);
  }
});

t.test('Identity on wasm shares the buffer: clones read back, outlive their source and free it last', async (t) => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as { numDataIds(): number; refCount(dataId: object): number };
  const x = tf.tensor([1.5, -2, 3.25, 4], [2, 2]);
  const ids = backend.numDataIds();
  const y = tf.clone(x);
  t.equal(backend.numDataIds(), ids, 'a clone allocates no buffer');
  t.equal(backend.refCount(x.dataId), 2, 'the buffer is referenced twice');
  x.dispose();
  t.same(Array.from(y.dataSync()), [1.5, -2, 3.25, 4], 'the clone reads the values after its source is disposed');
  t.equal(backend.refCount(y.dataId), 1, 'one reference left');
  y.dispose();
  t.equal(backend.numDataIds(), ids - 1, 'the buffer is freed with the last reference');
  // A variable assigned from a clone keeps its own values when the clone's source is overwritten by assign.
  const v = tf.variable(tf.tensor([1, 2, 3]));
  const snapshot = tf.clone(v);
  v.assign(tf.tensor([7, 8, 9]));
  t.same(Array.from(snapshot.dataSync()), [1, 2, 3], 'a clone of a variable is a snapshot');
  tf.dispose([v, snapshot]);
});

t.test('Transpose (native runs when loaded) gives the cpu backend\'s values exactly', async (t) => {
  const cases: Array<[number[], number[]]> = [
    [[256, 2, 16, 2, 16], [0, 2, 1, 3, 4]], // the DCAE's patchify
    [[16, 16, 2, 16, 2, 32], [0, 1, 3, 2, 4, 5]],
    [[33, 47], [1, 0]],
    [[7, 9, 11, 5], [3, 1, 0, 2]],
    [[5, 6, 7, 8], [0, 1, 2, 3]],
    [[2, 3, 4, 5, 6, 7], [5, 4, 3, 2, 1, 0]],
    [[64, 40], [0, 1]],
  ];
  for (const [shape, perm] of cases) {
    for (const dtype of ['float32', 'int32'] as const) {
      const values = randn(shape).map((v) => (dtype === 'int32' ? Math.round(v * 1000) : v));
      const f = (): tf.Tensor[] => [tf.transpose(tf.tensor(values, shape, dtype), perm).asType('float32')];
      const [want] = await on('cpu', f);
      const [got] = await on('wasm', f);
      t.ok(got.length === want.length && got.every((v, i) => Object.is(v, want[i])), `${dtype} [${shape}] perm [${perm}]: same values`);
    }
  }
  // Gradients flow through it (transpose's gradient is a transpose).
  await finiteDifference(t, randn, 'transpose [4, 6, 8, 32] perm [0, 2, 1, 3]', [4, 6, 8, 32], (z) => tf.transpose(z, [0, 2, 1, 3]).square().mul(tf.range(0, 6144).reshape([4, 8, 6, 32]).div(6144)).sum());
});

t.test('network-style gradients run on wasm and match cpu', async (t) => {
  // Layer norm, SiLU, GELU (tanh form), softmax attention, patchify by reshape/transpose, gather.
  const xv = randn([2, 8, 8, 4]);
  const wq = randn([16, 16]);
  const emb = randn([5, 16]);
  const f = (): tf.Tensor[] => {
    const x = tf.tensor4d(xv, [2, 8, 8, 4]);
    const q = tf.tensor2d(wq, [16, 16]);
    const e = tf.tensor2d(emb, [5, 16]);
    const loss = (xi: tf.Tensor, qi: tf.Tensor, ei: tf.Tensor) => {
      const p = xi.reshape([2, 4, 2, 4, 2, 4]).transpose([0, 1, 3, 2, 4, 5]).reshape([2, 16, 16]);
      const { mean, variance } = tf.moments(p, -1, true);
      let h = p.sub(mean).mul(tf.rsqrt(variance.add(1e-5)));
      h = h.mul(tf.sigmoid(h)).add(tf.gather(ei, tf.tensor1d([0, 3], 'int32')).expandDims(1));
      const k = h.matMul(qi.expandDims(0).tile([2, 1, 1]));
      const att = tf.softmax(tf.matMul(k, h, false, true).div(4));
      const o = tf.matMul(att, h);
      const gelu = o.mul(0.5).mul(tf.tanh(o.add(o.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1));
      return gelu.square().mean() as tf.Scalar;
    };
    return tf.grads(loss)([x, q, e]);
  };
  const cpu = await on('cpu', f);
  const wasm = await on('wasm', f);
  ['input', 'projection', 'embedding'].forEach((name, i) => {
    const err = maxRelErr(wasm[i], cpu[i]);
    t.ok(err < 1e-4, `${name} gradient (rel err ${err.toExponential(1)})`);
  });
});

t.test("batched matmuls through the project's own kernel match the cpu backend", async (t) => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as WasmBackendInternals;
  // [a shape, b shape, transposeA, transposeB]: every transpose combination, rank-3 and rank-4 batches, broadcast
  // operands (batch 1 or rank 2), row tails (M not a multiple of 4 without transposeA), K = 1, N = 4 and 12.
  const cases: Array<[number[], number[], boolean, boolean]> = [];
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const [e, m, k, n] = [randInt(2, 5), 4 * randInt(1, 5) + (ta ? 0 : randInt(0, 3)), randInt(1, 30), 4 * randInt(1, 6)];
    cases.push([ta ? [e, k, m] : [e, m, k], tb ? [e, n, k] : [e, k, n], ta, tb]);
    cases.push([ta ? [2, 3, k, m] : [2, 3, m, k], tb ? [n, k] : [k, n], ta, tb]); // b broadcast (rank 2)
    cases.push([ta ? [1, k, m] : [1, m, k], tb ? [e, n, k] : [e, k, n], ta, tb]); // a broadcast (batch 1)
  }
  cases.push([[3, 5, 1], [3, 1, 8], false, false]);
  for (const [as, bs, ta, tb] of cases) {
    const av = randn(as);
    const bv = randn(bs);
    const f = () => [tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    const label = `[${as}] x [${bs}] transposeA=${ta} transposeB=${tb}`;
    t.ok(maxRelErr(w, c) < 1e-5, `${label} matches cpu (rel err ${maxRelErr(w, c).toExponential(1)})`);
    const a = tf.tensor(av, as);
    const b = tf.tensor(bv, bs);
    const direct = ownBatchMatMul(backend, a, b, ta, tb);
    t.ok(direct, `${label}: the own kernel applies`);
    if (direct) {
      const d = tf.engine().makeTensorFromTensorInfo(direct);
      const dv = (await d.data()) as Float32Array;
      t.ok(maxRelErr(dv, c) < 1e-5, `${label}: the own kernel matches cpu`);
      // The dispatched kernel is the native GEMM where it is built, else the own kernel: the same bits as calling
      // it directly.
      const routed = nativeKernels().loaded ? nativeMatMul(backend, a, b, ta, tb) : undefined;
      const rv = routed ? ((await tf.engine().makeTensorFromTensorInfo(routed).data()) as Float32Array) : dv;
      const route = routed ? 'native GEMM' : 'own kernel';
      t.ok(rv.length === w.length && rv.every((x, i) => Object.is(x, w[i])), `${label}: dispatch returns the ${route}'s bits`);
      d.dispose();
      if (routed) backend.disposeData(routed.dataId);
    }
    tf.dispose([a, b]);
  }
  // Where it does not apply (N not a multiple of 4; M not a multiple of 4 with transposeA), another path runs.
  const a = tf.tensor(randn([2, 5, 3]), [2, 5, 3]);
  const b = tf.tensor(randn([2, 5, 6]), [2, 5, 6]);
  t.equal(ownBatchMatMul(backend, a, b, false, false), undefined, 'inner sizes that differ: not applied');
  const b6 = tf.tensor(randn([2, 3, 6]), [2, 3, 6]);
  t.equal(ownBatchMatMul(backend, a, b6, false, false), undefined, 'N = 6: not applied');
  t.equal(ownBatchMatMul(backend, a, b, true, false), undefined, 'transposeA with M = 3: not applied');
  tf.dispose([a, b, b6]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) tf.tidy(() => tf.matMul(tf.ones([3, 8, 8]), tf.ones([3, 8, 8]), true, true).dataSync());
  t.equal(tf.memory().numTensors, before, 'no tensors leak');
});
