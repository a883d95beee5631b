/**
 * The native GEMM (src/models/backend/native, built at install): the addon on every ISA this CPU has against a
 * float64 reference written out in JS, the wasm kernels routed through it against the cpu backend (odd sizes,
 * K = 1, transposes, batch broadcast, bias), gradients against finite differences, determinism, range checks,
 * loading in a worker thread, and the install script's build and failure paths. Tests that need the built addon
 * skip with the reason when it is not built.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type NativeAddon, type NativeIsa, nativeAddon, nativeKernels, nativeMatMul, nativeModulePath, packageRoot, setNativeKernels } from '../../src/models/backend/native/index.js';
import type { WasmBackendInternals } from '../../src/models/backend/wasm/index.js';
import { FLIP_FILTER, registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { finiteDifference, maxRelErr, on, randomCases } from './helpers.js';

registerWasmKernels();
const { pick, randInt, randn } = randomCases(20261130);
const info = nativeKernels();
const skip = info.loaded ? false : `native kernels not in use: ${info.reason}`;

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
});

/** C = op(A) op(B) (+ bias) per batch entry in float64, from the stored layouts (the independent reference). */
function reference(
  a: Float32Array, b: Float32Array, bias: Float32Array | undefined, batch: number, strideA: number, strideB: number,
  m: number, k: number, n: number, ta: boolean, tb: boolean,
): Float64Array {
  const c = new Float64Array(batch * m * n);
  for (let e = 0; e < batch; e++) {
    const oa = e * strideA;
    const ob = e * strideB;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = bias ? bias[j] : 0;
        for (let p = 0; p < k; p++) s += a[oa + (ta ? p * m + i : i * k + p)] * b[ob + (tb ? j * k + p : p * n + j)];
        c[(e * m + i) * n + j] = s;
      }
    }
  }
  return c;
}

/** Lays A, B, bias and C out in one ArrayBuffer (as on the wasm heap) and runs the addon's gemm on it. */
function runGemm(
  addon: NativeAddon, av: Float32Array, bv: Float32Array, bias: Float32Array | undefined, batch: number,
  strideA: number, strideB: number, m: number, k: number, n: number, ta: boolean, tb: boolean,
): Float32Array {
  const offA = 16; // not at 0, to exercise offsets
  const offB = offA + 4 * av.length;
  const offBias = offB + 4 * bv.length;
  const offC = offBias + 4 * (bias?.length ?? 0);
  const heap = new ArrayBuffer(offC + 4 * batch * m * n + 32);
  new Float32Array(heap, offA, av.length).set(av);
  new Float32Array(heap, offB, bv.length).set(bv);
  if (bias) new Float32Array(heap, offBias, bias.length).set(bias);
  new Float32Array(heap, offC, batch * m * n).fill(Number.NaN); // every output element must be written
  addon.gemm(heap, offA, offB, offC, bias ? offBias : -1, batch, strideA, strideB, m, k, n, ta, tb);
  return new Float32Array(heap, offC, batch * m * n).slice();
}

/** max |got - want| / (sqrt(k) max(1, max |want|)): float32 summation error grows like sqrt(k). */
function gemmErr(got: Float32Array, want: Float64Array, k: number): number {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Number.isNaN(got[i]) ? Infinity : Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / (Math.sqrt(Math.max(k, 1)) * scale);
}

t.test('the addon matches a float64 reference on every ISA this CPU has', { skip }, async (t) => {
  const addon = nativeAddon()!;
  const isas = addon.supported();
  t.ok(isas.includes('generic'), `supported: ${isas.join(', ')}`);
  const previous = addon.isa();
  try {
    for (const isa of isas) {
      t.equal(addon.setIsa(isa), isa, `setIsa(${isa})`);
      for (let trial = 0; trial < 24; trial++) {
        // Odd sizes around the register tiles (4/6/12 rows, 8/16/32 columns), K = 1, K past one 384-row block.
        const m = trial === 0 ? 1 : randInt(1, 40);
        const k = trial === 1 ? 1 : trial === 2 ? randInt(385, 800) : randInt(1, 70);
        const n = trial === 3 ? 1 : randInt(1, 75);
        const ta = pick([false, true]);
        const tb = pick([false, true]);
        const batch = trial < 8 ? 1 : randInt(2, 4);
        const shareA = batch > 1 && trial % 3 === 0;
        const shareB = batch > 1 && !shareA && trial % 3 === 1;
        const bias = pick([false, true]) ? randn([n]) : undefined;
        const av = randn([(shareA ? 1 : batch) * m * k]);
        const bv = randn([(shareB ? 1 : batch) * k * n]);
        const [sa, sb] = [shareA ? 0 : m * k, shareB ? 0 : k * n];
        const got = runGemm(addon, av, bv, bias, batch, sa, sb, m, k, n, ta, tb);
        const err = gemmErr(got, reference(av, bv, bias, batch, sa, sb, m, k, n, ta, tb), k);
        const label = `${isa} batch ${batch}${shareA ? ' (A shared)' : shareB ? ' (B shared)' : ''} M=${m} K=${k} N=${n} ta=${ta} tb=${tb}${bias ? ' +bias' : ''}`;
        t.ok(err < 2e-6, `${label}: err ${err.toExponential(1)}`);
      }
      // K = 0: C is the bias (or zero).
      const bias = randn([5]);
      const got = runGemm(addon, new Float32Array(0), new Float32Array(0), bias, 2, 0, 0, 3, 0, 5, false, false);
      t.same(Array.from(got), Array.from({ length: 30 }, (_, i) => bias[i % 5]), `${isa} K = 0 gives the bias`);
    }
  } finally {
    addon.setIsa(previous);
  }
});

t.test('results are deterministic and do not depend on how rows are tiled', { skip }, async (t) => {
  const addon = nativeAddon()!;
  const [batch, m, k, n] = [3, 37, 411, 45];
  const av = randn([batch * m * k]);
  const bv = randn([k * n]);
  const bias = randn([n]);
  const first = runGemm(addon, av, bv, bias, batch, m * k, 0, m, k, n, false, false);
  const again = runGemm(addon, av, bv, bias, batch, m * k, 0, m, k, n, false, false);
  t.ok(first.every((x, i) => Object.is(x, again[i])), 'the same inputs give the same bits');
  // The batch against a shared B is one tall product; entry by entry (other row tiles) gives the same bits.
  for (let e = 0; e < batch; e++) {
    const one = runGemm(addon, av.subarray(e * m * k, (e + 1) * m * k), bv, bias, 1, 0, 0, m, k, n, false, false);
    t.ok(one.every((x, i) => Object.is(x, first[e * m * n + i])), `entry ${e} alone gives the same bits`);
  }
});

t.test('columnSums gives the bits of a float64 column loop on every ISA, and refuses bad calls', { skip }, async (t) => {
  const addon = nativeAddon()!;
  const before = addon.isa();
  try {
    for (const isa of addon.supported()) {
      addon.setIsa(isa);
      // Widths below, at and across the 1024-column block, odd and not multiples of the vector width.
      for (const [rows, cols] of [[1, 1], [7, 3], [33, 17], [5, 1024], [9, 1031], [300, 2500], [0, 4]] as const) {
        const x = randn([rows * cols]);
        const out = new Float32Array(cols).fill(Number.NaN);
        addon.columnSums(x, out);
        const acc = new Float64Array(cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) acc[c] += x[r * cols + c]!;
        const want = Float32Array.from(acc);
        t.ok(want.every((v, i) => Object.is(v, out[i])), `${isa}: ${rows} x ${cols} bit for bit`);
      }
    }
  } finally {
    addon.setIsa(before);
  }
  const x = new Float32Array(12);
  t.throws(() => addon.columnSums(x, new Float32Array(5)), /x has 12 elements, not a multiple of out's 5 columns/);
  t.throws(() => addon.columnSums(x, x.subarray(8)), /x and out overlap/);
  t.throws(() => addon.columnSums(x as unknown as Float32Array, new Int32Array(3) as unknown as Float32Array), /out must be a Float32Array/);
});

t.test('the AVX-512 tile shapes (masked edges) give the AVX2 kernel\'s bits', { skip: skip || (nativeAddon()?.supported().includes('avx512') ? false : 'no AVX-512 on this CPU') }, async (t) => {
  // Both ISAs sum every element as one FMA chain in order of k from the same start value, so whatever tile shape
  // AVX-512 picks (8-16 rows by 16 or 32 columns, edges masked) the bits must be AVX2's. Shapes around the
  // choices: n <= 16 and n > 16, m multiples of 8, 12 and 16 and not, K past one block, accumulation.
  const addon = nativeAddon()!;
  const previous = addon.isa();
  try {
    for (let trial = 0; trial < 40; trial++) {
      const m = pick([16, 24, 36, 48, 64, 1, 7, randInt(1, 100)]);
      const n = pick([16, 32, 8, 48, 1, randInt(1, 80)]);
      const k = trial % 5 === 0 ? randInt(385, 1100) : randInt(1, 130);
      const [ta, tb] = [pick([false, true]), pick([false, true])];
      const bias = pick([false, true]) ? randn([n]) : undefined;
      const av = randn([m * k]);
      const bv = randn([k * n]);
      addon.setIsa('avx2');
      const want = runGemm(addon, av, bv, bias, 1, 0, 0, m, k, n, ta, tb);
      addon.setIsa('avx512');
      const got = runGemm(addon, av, bv, bias, 1, 0, 0, m, k, n, ta, tb);
      t.ok(got.every((x, i) => Object.is(x, want[i])), `M=${m} K=${k} N=${n} ta=${ta} tb=${tb}${bias ? ' +bias' : ''}: same bits`);
    }
  } finally {
    addon.setIsa(previous);
  }
});

t.test('the native filter flip (input gradients) gives the JS flip exactly, and checks its arguments', { skip }, async (t) => {
  await tf.setBackend('wasm');
  for (const [kh, kw, ci, co] of [[3, 3, 128, 128], [3, 3, 5, 16], [1, 1, 7, 3], [5, 3, 17, 33], [2, 4, 1, 1]]) {
    const w = tf.tensor4d(randn([kh, kw, ci, co]), [kh, kw, ci, co]);
    const flip = () => (tf.engine().runKernel(FLIP_FILTER, { x: w }, {}) as tf.Tensor).dataSync() as Float32Array;
    const native = flip();
    const previous = setNativeKernels(false);
    const js = flip();
    setNativeKernels(previous);
    // The independent definition: dst[kh-1-i][kw-1-j][o][c] = src[i][j][c][o].
    const src = w.dataSync();
    let definition = true;
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) {
      definition &&= native[(((kh - 1 - i) * kw + (kw - 1 - j)) * co + o) * ci + c] === src[((i * kw + j) * ci + c) * co + o];
    }
    t.ok(definition && native.every((x, i) => Object.is(x, js[i])), `[${kh}, ${kw}, ${ci}, ${co}]: the definition, and the JS flip's bits`);
    w.dispose();
  }
  const addon = nativeAddon()!;
  const a = new Float32Array(18);
  t.throws(() => addon.flipFilter(a, new Float32Array(18), 3, 3, 2, 2), /flipFilter: src and dst hold 18 floats, not kh \* kw \* inChannels \* outChannels = 36/);
  t.throws(() => addon.flipFilter(a, a.subarray(0), 3, 3, 2, 1), /flipFilter: src and dst overlap/);
  t.throws(() => addon.flipFilter(a, new Float32Array(17), 3, 3, 2, 1), /flipFilter/);
});

t.test('bad calls throw errors that say what is wrong', { skip }, async (t) => {
  const addon = nativeAddon()!;
  const heap = new ArrayBuffer(1024);
  t.throws(() => addon.gemm(heap, 1000, 0, 512, -1, 1, 0, 0, 4, 4, 4, false, false), /a spans bytes \[1000, 1064\) but the heap holds 1024 bytes/);
  t.throws(() => addon.gemm(heap, 0, 64, 96, -1, 1, 0, 0, 4, 4, 4, false, false), /the output c overlaps input b/);
  t.throws(() => addon.gemm(heap, 2, 64, 512, -1, 1, 0, 0, 2, 2, 2, false, false), /offset of a \(2\) is not a multiple of 4 bytes/);
  t.throws(() => addon.gemm(heap, 0, 64, 512, 1020, 1, 0, 0, 2, 2, 2, false, false), /bias spans bytes \[1020, 1028\) but the heap holds 1024 bytes/);
  t.throws(() => addon.gemm(new Float32Array(4) as unknown as ArrayBuffer, 0, 0, 0, -1, 1, 0, 0, 1, 1, 1, false, false), /heap must be an ArrayBuffer/);
  t.throws(() => addon.gemm(heap, 0, 64, 512, -1, 1, 0, 0, -2, 2, 2, false, false), /m must be a non-negative integer/);
  t.throws(() => addon.setIsa('sse9' as NativeIsa), /one of 'avx512', 'avx2', 'generic'/);
});

t.test('the wasm kernels route matmuls through the native GEMM and match the cpu backend', { skip }, async (t) => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as WasmBackendInternals;
  // [a shape, b shape, transposeA, transposeB]: every transpose, odd sizes, K = 1, rank 3 and 4, broadcasts.
  const cases: Array<[number[], number[], boolean, boolean]> = [];
  for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const [e, m, k, n] = [randInt(2, 4), randInt(1, 29), randInt(1, 41), randInt(1, 37)];
    cases.push([ta ? [k, m] : [m, k], tb ? [n, k] : [k, n], ta, tb]);
    cases.push([ta ? [e, k, m] : [e, m, k], tb ? [e, n, k] : [e, k, n], ta, tb]);
    cases.push([ta ? [2, 3, k, m] : [2, 3, m, k], tb ? [n, k] : [k, n], ta, tb]); // b shared (rank 2)
    cases.push([ta ? [1, k, m] : [1, m, k], tb ? [e, n, k] : [e, k, n], ta, tb]); // a shared (batch 1)
  }
  cases.push([[3, 5, 1], [3, 1, 7], false, false]); // K = 1
  for (const [as, bs, ta, tb] of cases) {
    const av = randn(as);
    const bv = randn(bs);
    const f = () => [tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    const label = `matMul [${as}] x [${bs}] transposeA=${ta} transposeB=${tb}`;
    t.ok(maxRelErr(w, c) < 1e-5, `${label} matches cpu (rel err ${maxRelErr(w, c).toExponential(1)})`);
    const a = tf.tensor(av, as);
    const b = tf.tensor(bv, bs);
    const direct = nativeMatMul(backend, a, b, ta, tb)!;
    const dv = await tf.engine().makeTensorFromTensorInfo(direct).data();
    t.ok(dv.every((x, i) => Object.is(x, w[i])), `${label}: dispatch returns the native GEMM's bits`);
    backend.disposeData(direct.dataId);
    tf.dispose([a, b]);
  }
  // tf.fused.matMul (dense layers): bias, linear activation -> native; relu keeps the stock kernel.
  for (const [m, k, n, ta, tb, activation] of [
    [33, 17, 29, false, false, 'linear'],
    [7, 1, 40, false, false, 'linear'],
    [12, 9, 5, true, true, 'linear'],
    [19, 23, 11, false, false, 'relu'],
  ] as Array<[number, number, number, boolean, boolean, tf.fused.Activation]>) {
    const as = ta ? [k, m] : [m, k];
    const bs = tb ? [n, k] : [k, n];
    const [av, bv, biasv] = [randn(as), randn(bs), randn([n])];
    const f = () => [
      tf.fused.matMul({ a: tf.tensor2d(av, as as [number, number]), b: tf.tensor2d(bv, bs as [number, number]), bias: tf.tensor1d(biasv), transposeA: ta, transposeB: tb, activation }),
    ];
    const [c] = await on('cpu', f);
    const [w] = await on('wasm', f);
    t.ok(maxRelErr(w, c) < 1e-5, `fused.matMul ${activation} [${as}] x [${bs}] + bias matches cpu (rel err ${maxRelErr(w, c).toExponential(1)})`);
  }
  // Where the native path does not apply (int32), it declines and another path is taken.
  const ai = tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32');
  t.equal(nativeMatMul(backend, ai, ai, false, false), undefined, 'int32: not applied');
  ai.dispose();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) tf.tidy(() => tf.matMul(tf.ones([3, 8, 8]), tf.ones([3, 8, 8]), true, true).dataSync());
  t.equal(tf.memory().numTensors, before, 'no tensors leak');
});

t.test('setNativeKernels(false) falls back to the wasm paths with the same results to rounding', { skip }, async (t) => {
  await tf.setBackend('wasm');
  const av = randn([3, 20, 24]);
  const bv = randn([24, 36]);
  const f = () => [tf.matMul(tf.tensor3d(av, [3, 20, 24]), tf.tensor2d(bv, [24, 36]))];
  const [native] = await on('wasm', f);
  t.equal(setNativeKernels(false), true, 'was on');
  try {
    t.same(nativeKernels(), { loaded: false, reason: 'turned off by setNativeKernels(false)' });
    const [fallback] = await on('wasm', f);
    t.ok(maxRelErr(native, fallback) < 1e-5, 'native and wasm routes agree');
  } finally {
    setNativeKernels(true);
  }
  t.equal(nativeKernels().loaded, true, 'back on');
});

t.test('gradients through the native GEMM match finite differences', { skip }, async (t) => {
  const w = tf.tensor2d(randn([13, 7]), [13, 7]);
  const bias = tf.tensor1d(randn([7]));
  const r = tf.tensor(randn([2, 9, 7]), [2, 9, 7]);
  const x = tf.tensor(randn([2, 9, 13]), [2, 9, 13]);
  const dense = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
    tf.fused.matMul({ a: xi.reshape([-1, 13]) as tf.Tensor2D, b: wi as tf.Tensor2D, bias: bi }).reshape([2, 9, 7]);
  const loss = (y: tf.Tensor) => y.mul(r).sum().add(y.square().mul(0.5).sum()) as tf.Scalar;
  await finiteDifference(t, randn, 'dense layer (input)', [2, 9, 13], (xi) => loss(dense(xi, w, bias)));
  await finiteDifference(t, randn, 'dense layer (weight)', [13, 7], (wi) => loss(dense(x, wi, bias)));
  // The bias sees few terms: a loss of small magnitude keeps the float32 difference quotient accurate.
  await finiteDifference(t, randn, 'dense layer (bias)', [7], (bi) => {
    const y = dense(x, w, bi);
    return y.mul(r).sum().add(y.square().mean()) as tf.Scalar;
  });
  const k = tf.tensor(randn([2, 3, 11, 5]), [2, 3, 11, 5]);
  const v = tf.tensor(randn([2, 3, 11, 5]), [2, 3, 11, 5]);
  await finiteDifference(t, randn, 'attention products (queries)', [2, 3, 11, 5], (q) =>
    tf.matMul(tf.softmax(tf.matMul(q, k, false, true)), v).square().sum() as tf.Scalar,
  );
  tf.dispose([w, bias, r, x, k, v]);
});

t.test('the addon loads and computes in a worker thread', { skip }, async (t) => {
  const addon = nativeAddon()!;
  const [m, k, n] = [9, 21, 19];
  const av = randn([m * k]);
  const bv = randn([k * n]);
  const here = runGemm(addon, av, bv, undefined, 1, 0, 0, m, k, n, false, true);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(workerData.path);
    addon.setIsa(workerData.isa);
    const { av, bv, m, k, n } = workerData;
    const heap = new ArrayBuffer(4 * (av.length + bv.length + m * n));
    new Float32Array(heap, 0, av.length).set(av);
    new Float32Array(heap, 4 * av.length, bv.length).set(bv);
    addon.gemm(heap, 0, 4 * av.length, 4 * (av.length + bv.length), -1, 1, 0, 0, m, k, n, false, true);
    parentPort.postMessage({ isa: addon.isa(), c: new Float32Array(heap, 4 * (av.length + bv.length), m * n) });
  `;
  const worker = new Worker(code, { eval: true, workerData: { path: nativeModulePath(), isa: addon.isa(), av, bv, m, k, n } });
  const reply = await new Promise<{ isa: string; c: Float32Array }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  t.equal(reply.isa, addon.isa(), 'the worker runs the same ISA');
  t.ok(reply.c.every((x, i) => Object.is(x, here[i])), 'the worker computes the same bits as the main thread');
});

t.test('the install script builds the module, or says why not and exits 0', async (t) => {
  const script = join(packageRoot(), 'scripts', 'build-native.mjs');
  const line = /^wellspring: native kernels not built \((.+)\); the wasm kernels are used$/m;
  const build = (env: Record<string, string | undefined>) => {
    const out = mkdtempSync(join(tmpdir(), 'wellspring-native-'));
    const run = spawnSync(process.execPath, [script, '--out', out], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
    const files = readdirSync(out);
    rmSync(out, { recursive: true, force: true });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr, files };
  };
  const bogus = build({ CXX: '/nonexistent/bin/c++' });
  t.equal(bogus.status, 0, 'a compiler that does not exist: exit 0');
  t.match(bogus.stdout, line);
  t.match(bogus.stdout, /the compiler CXX=\/nonexistent\/bin\/c\+\+ does not run/);
  t.same(bogus.files, [], 'nothing is left in the output folder');
  const noPath = build({ CXX: undefined, PATH: '/nonexistent' });
  t.equal(noPath.status, 0, 'no compiler on PATH: exit 0');
  t.match(noPath.stdout, /no C\+\+ compiler found \(tried g\+\+, c\+\+, clang\+\+; set CXX\)/);
  const broken = build({ CXX: process.execPath }); // runs, but is no compiler
  t.equal(broken.status, 0, 'a compiler that fails: exit 0');
  t.match(broken.stdout, line);
  const off = build({ WELLSPRING_NATIVE: 'off' });
  t.match(off.stdout, /not built \(WELLSPRING_NATIVE=off\)/);
  const gxx = spawnSync('g++', ['--version']);
  if (gxx.error || gxx.status !== 0) {
    t.skip('no g++ here: the successful build is not tried');
    return;
  }
  const ok = build({ CXX: 'g++' });
  t.equal(ok.status, 0);
  t.match(ok.stdout, /^wellspring: native kernels built \(.+wellspring_native\.node, (avx512|avx2|generic)\)$/m);
  t.same(ok.files, ['wellspring_native.node'], 'only the module is left (no temporary file)');
  t.ok(existsSync(script), 'script exists');
});
