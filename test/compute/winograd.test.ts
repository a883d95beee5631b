/**
 * The Winograd convolution path of the wasm backend (src/models/backend/wasm), both variants F(2x2, 3x3) and
 * F(4x4, 3x3): forward convs, fused convs with bias and their gradients against the cpu backend (an independent
 * direct implementation; it accumulates in float64) on random eligible shapes; gradients against central finite
 * differences; proof that eligible convs really take the Winograd path (and the variant the mode asks for) and that
 * ineligible ones keep a correct stock path; heap growth during a call; no leaks; and the committed module's memory
 * contract (no data segments, imports only env.memory, the kernels the wrapper calls).
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import {
  type WasmBackendInternals,
  type WinogradGeometry,
  type WinogradMode,
  setNativeWinogradFused,
  setWinogradMode,
  setWinogradScratchLimit,
  winogradConv2d,
  winogradEligible,
  winogradFilterGradient,
  winogradGeometry,
} from '../../src/models/backend/wasm/index.js';
import { wasmModuleBase64 } from '../../src/models/backend/wasm/module.generated.js';
import { maxRelErr, on, randomCases } from './helpers.js';

registerWasmKernels();
const { pick, randInt, randn } = randomCases(20261124);
const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

type Shape4 = [number, number, number, number];
type Padding = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
const ASYMMETRIC_A: tf.backend_util.ExplicitPadding = [[0, 0], [2, 1], [0, 2], [0, 0]];
const ASYMMETRIC_B: tf.backend_util.ExplicitPadding = [[0, 0], [0, 1], [1, 0], [0, 0]];
const padLabel = (p: Padding): string => (typeof p === 'string' ? p : `pads ${JSON.stringify(p.slice(1, 3))}`);

/** The heap the wasm backend allocates tensors in (tfjs declares no type for it). */
interface WasmMemoryView {
  buffer: ArrayBuffer;
}
const wasmBackend = (): WasmBackendInternals => tf.backend() as unknown as WasmBackendInternals;
const wasmMemory = (): WasmMemoryView =>
  (tf.backend() as unknown as { wasm: { asm: { memory: WasmMemoryView } } }).wasm.asm.memory;
const heapBytes = (): number => wasmMemory().buffer.byteLength;
const numDataIds = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();

/** Winograd geometry of a 3x3 stride-1 conv, as the kernels derive it from tfjs' conv info. */
function geometryOf(xShape: Shape4, filterShape: Shape4, pad: Padding): WinogradGeometry {
  return winogradGeometry(tf.backend_util.computeConv2DInfo(xShape, filterShape, 1, 1, pad));
}

/** A random eligible case: batch 1-3, sizes 1-11 (as small as the padding allows), channels from the set. */
interface ConvCase {
  xs: Shape4;
  ws: Shape4;
  pad: Padding;
  label: string;
}
function eligibleCase(pad: Padding, fixed: Partial<{ b: number; h: number; w: number; cin: number; cout: number }> = {}): ConvCase {
  // Smallest input for which the output is non-empty (kh + pads >= 3).
  const [minH, minW] =
    pad === 'same' ? [1, 1] : pad === 'valid' ? [3, 3] : [Math.max(1, 3 - pad[1][0] - pad[1][1]), Math.max(1, 3 - pad[2][0] - pad[2][1])];
  const channels = [8, 12, 16, 20, 36];
  const b = fixed.b ?? randInt(1, 3);
  const h = fixed.h ?? randInt(minH, 11);
  const w = fixed.w ?? randInt(minW, 11);
  const cin = fixed.cin ?? pick(channels);
  const cout = fixed.cout ?? pick(channels);
  const xs: Shape4 = [b, h, w, cin];
  const ws: Shape4 = [3, 3, cin, cout];
  return { xs, ws, pad, label: `x [${xs}] w [${ws}] ${padLabel(pad)}` };
}

/** ~20 eligible cases covering every padding kind, 1-wide inputs, odd sizes and every channel count. */
function eligibleCases(): ConvCase[] {
  const pads: Padding[] = ['same', 'valid', ASYMMETRIC_A, ASYMMETRIC_B];
  const cases: ConvCase[] = [
    eligibleCase('same', { h: 1, w: 1, cin: 8, cout: 8 }),
    eligibleCase('same', { h: 1, w: 7, cin: 36, cout: 12 }),
    eligibleCase(ASYMMETRIC_A, { h: 1, w: 1, cin: 20, cout: 36 }),
    eligibleCase(ASYMMETRIC_B, { h: 2, w: 2, cin: 12, cout: 20 }),
    eligibleCase('valid', { b: 3, h: 11, w: 11, cin: 36, cout: 36 }),
    eligibleCase('valid', { h: 3, w: 4, cin: 16, cout: 8 }),
  ];
  for (let i = 0; cases.length < 20; i++) cases.push(eligibleCase(pads[i % pads.length]));
  return cases;
}

const tensor4 = (values: Float32Array, shape: Shape4): tf.Tensor4D => tf.tensor4d(values, shape);

/** Runs `f` with the Winograd mode set to `mode`, then restores the previous mode. */
async function withMode<T>(mode: WinogradMode, f: () => T | Promise<T>): Promise<T> {
  const previous = setWinogradMode(mode);
  try {
    return await f();
  } finally {
    setWinogradMode(previous);
  }
}
/** The two variants, forced in turn (F(4x4, 3x3) needs a 4x4 output; smaller ones stay on F(2x2, 3x3)). */
const VARIANTS: readonly WinogradMode[] = ['f2', 'f4'];

/** dW[i, j, ci, co] = sum over b, y, x of x[b, y + i - padTop, x + j - padLeft, ci] dy[b, y, x, co], in float64. */
function filterGradientReference(x: Float32Array, xs: Shape4, dy: Float32Array, ys: Shape4, padTop: number, padLeft: number): Float32Array {
  const [batch, h, w, cin] = xs;
  const [, oh, ow, cout] = ys;
  const dw = new Float64Array(9 * cin * cout);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        for (let y = 0; y < oh; y++) {
          const iy = y + i - padTop;
          if (iy < 0 || iy >= h) continue;
          for (let xo = 0; xo < ow; xo++) {
            const ix = xo + j - padLeft;
            if (ix < 0 || ix >= w) continue;
            const xAt = ((b * h + iy) * w + ix) * cin;
            const dyAt = ((b * oh + y) * ow + xo) * cout;
            for (let ci = 0; ci < cin; ci++) {
              const xv = x[xAt + ci];
              const at = ((i * 3 + j) * cin + ci) * cout;
              for (let co = 0; co < cout; co++) dw[at + co] += xv * dy[dyAt + co];
            }
          }
        }
      }
    }
  }
  return Float32Array.from(dw);
}

// ---------------------------------------------------------------------------------------------- heap growth

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
  // The default mode whatever WELLSPRING_WINOGRAD says; tests that need another one set it with `withMode`.
  setWinogradMode('auto');
});

// First, while the heap is still at its initial size: scratch planes larger than the whole heap force it to grow
// inside the kernel call, after which every heap view taken before is detached (the plane tables must be written
// through fresh views, after the last allocation).
t.test('eligible convs stay correct when their scratch planes grow the wasm heap', async (t) => {
  // The heap-plane routes (the one-call native convs keep their planes in native scratch, off the heap).
  const fused = setNativeWinogradFused(false);
  t.teardown(() => void setNativeWinogradFused(fused));
  const [cin, cout] = [8, 8];
  // Scratch of one call: `planes` planes [tiles, Cin] and as many [tiles, Cout] (plus the small filter planes).
  const scratchBytes = (xs: Shape4, tile: number, planes: number): number =>
    planes * xs[0] * Math.ceil(xs[1] / tile) * Math.ceil(xs[2] / tile) * (cin + cout) * 4;
  /** An odd-sized input (partial edge tiles) whose scratch is `factor` times the current heap. */
  const sizedFor = (factor: number, tile: number, planes: number): Shape4 => {
    const side = Math.ceil(Math.sqrt((factor * heapBytes()) / (planes * (cin + cout) * 4)));
    return [1, tile * side - 1, tile * side + 1, cin];
  };
  const ws: Shape4 = [3, 3, cin, cout];

  // Forward, F(4x4, 3x3) (auto on a large output): tf.fused.conv2d with bias dispatches to winogradConv2d.
  const xs = sizedFor(1.5, 4, 36);
  const [xv, wv, bv] = [randn(xs), randn(ws), randn([cout])];
  const forward = () => [tf.fused.conv2d({ x: tensor4(xv, xs), filter: tensor4(wv, ws), strides: 1, pad: 'same', bias: tf.tensor1d(bv) })];
  const [reference] = await on('cpu', forward);
  await tf.setBackend('wasm');
  await withMode('auto', async () => {
    const x = tensor4(xv, xs);
    const filter = tensor4(wv, ws);
    const bias = tf.tensor1d(bv);
    const before = heapBytes();
    t.ok(scratchBytes(xs, 4, 36) > before, `premise: F(4x4) scratch ${scratchBytes(xs, 4, 36)} B exceeds the heap ${before} B`);
    const y = tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', bias });
    const grown = heapBytes();
    t.ok(grown > before, `the heap grew during the forward call (${before} -> ${grown} B)`);
    const err = maxRelErr((await y.data()) as Float32Array, reference);
    t.ok(err < 1e-5, `forward x [${xs}] after growth matches cpu (rel err ${err.toExponential(1)})`);
    tf.dispose([x, filter, bias, y]);
  });

  // Filter gradient, F(2x2, 3x3): Conv2DBackpropFilter dispatches to winogradFilterGradient. The reference is a
  // float64 loop (the cpu backend's kernel takes ~10 s at this size).
  await withMode('f2', async () => {
    const gxs = sizedFor(1.25, 2, 16);
    const gys: Shape4 = [gxs[0], gxs[1], gxs[2], cout];
    const [gxv, dyv] = [randn(gxs), randn(gys)];
    const dwReference = filterGradientReference(gxv, gxs, dyv, gys, 1, 1);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: ws } as unknown as tf.NamedAttrMap;
    const gx = tensor4(gxv, gxs);
    const dy = tensor4(dyv, gys);
    const before = heapBytes();
    t.ok(scratchBytes(gxs, 2, 16) > before, `premise: F(2x2) scratch ${scratchBytes(gxs, 2, 16)} B exceeds the heap ${before} B`);
    const dw = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: gx, dy }, attrs) as tf.Tensor;
    const grown = heapBytes();
    t.ok(grown > before, `the heap grew during the filter-gradient call (${before} -> ${grown} B)`);
    // A float32 sum over ~60k tiles: the stock direct (XNNPACK) path measures ~1.2e-5 on such sizes, F(2x2) ~8e-6;
    // a stale plane table gives errors of order 1.
    const err = maxRelErr((await dw.data()) as Float32Array, dwReference);
    t.ok(err < 5e-5, `filter gradient x [${gxs}] after growth matches a float64 reference (rel err ${err.toExponential(1)})`);
    tf.dispose([gx, dy, dw]);
  });
});

// ---------------------------------------------------------------------------------------------- vs cpu

t.test('forward conv2d and fused conv2d (bias) match the cpu backend on eligible shapes', async (t) => {
  for (const c of eligibleCases()) {
    t.ok(winogradEligible(c.ws, [1, 1], [1, 1]), `eligible: ${c.label}`);
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const f = (): tf.Tensor[] => {
      const x = tensor4(xv, c.xs);
      const filter = tensor4(wv, c.ws);
      return [tf.conv2d(x, filter, 1, c.pad), tf.fused.conv2d({ x, filter, strides: 1, pad: c.pad, bias: tf.tensor1d(bv) })];
    };
    const [conv, fused] = await on('cpu', f);
    for (const mode of VARIANTS) {
      const [wConv, wFused] = await withMode(mode, () => on('wasm', f));
      const e1 = maxRelErr(wConv, conv);
      const e2 = maxRelErr(wFused, fused);
      t.ok(e1 < 1e-5, `${mode} conv2d ${c.label} (rel err ${e1.toExponential(1)})`);
      t.ok(e2 < 1e-5, `${mode} fused conv2d + bias ${c.label} (rel err ${e2.toExponential(1)})`);
    }
  }
});

t.test('gradients (dx, dW, dbias) match the cpu backend on eligible shapes', async (t) => {
  // The random cases plus one with more than 256 F(2x2) tiles (two chunks of the filter-gradient accumulation).
  const cases = [...eligibleCases(), eligibleCase('same', { b: 3, h: 24, w: 23, cin: 8, cout: 12 })];
  for (const c of cases) {
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const f = (): tf.Tensor[] => {
      const x = tensor4(xv, c.xs);
      const filter = tensor4(wv, c.ws);
      const bias = tf.tensor1d(bv);
      const fusedLoss = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Scalar =>
        tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, strides: 1, pad: c.pad, bias: bi }).square().sum();
      const convLoss = (xi: tf.Tensor, wi: tf.Tensor): tf.Scalar => tf.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, 1, c.pad).square().sum();
      return [...tf.grads(fusedLoss)([x, filter, bias]), ...tf.grads(convLoss)([x, filter])];
    };
    const cpu = await on('cpu', f);
    for (const mode of VARIANTS) {
      const wasm = await withMode(mode, () => on('wasm', f));
      ['fused dx', 'fused dW', 'fused dbias', 'conv2d dx', 'conv2d dW'].forEach((name, i) => {
        const err = maxRelErr(wasm[i], cpu[i]);
        t.ok(err < 1e-5, `${mode} ${name}: ${c.label} (rel err ${err.toExponential(1)})`);
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------- finite differences

t.test('Winograd gradients on wasm match central finite differences', async (t) => {
  await tf.setBackend('wasm');
  const cases = [
    eligibleCase(ASYMMETRIC_A, { b: 2, h: 7, w: 6, cin: 12, cout: 8 }),
    eligibleCase('same', { b: 1, h: 9, w: 5, cin: 8, cout: 20 }),
    eligibleCase('valid', { b: 2, h: 6, w: 7, cin: 16, cout: 12 }),
  ];
  for (const c of cases) {
    const cout = c.ws[3];
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([cout])];
    const y = (xa: Float32Array, wa: Float32Array, ba: Float32Array): Float32Array =>
      tf.tidy(() =>
        tf.fused.conv2d({ x: tensor4(xa, c.xs), filter: tensor4(wa, c.ws), strides: 1, pad: c.pad, bias: tf.tensor1d(ba) }).dataSync(),
      ) as Float32Array;
    const r = randn([y(xv, wv, bv).length]);
    // loss = sum(r y) + sum(y^2) / 2, summed in float64 so that only the conv itself rounds in float32.
    const loss = (ya: Float32Array): number => ya.reduce((acc, yi, i) => acc + r[i] * yi + 0.5 * yi * yi, 0);
    const directions = { input: randn([xv.length]), filter: randn([wv.length]), bias: randn([bv.length]) };
    for (const mode of VARIANTS) {
      await withMode(mode, async () => {
        const rt = tf.tensor(r, [r.length]);
        const grads = tf.tidy(() =>
          tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Scalar => {
            const out = tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, strides: 1, pad: c.pad, bias: bi }).reshape([-1]);
            return out.mul(rt).sum().add(out.square().sum().mul(0.5));
          })([tensor4(xv, c.xs), tensor4(wv, c.ws), tf.tensor1d(bv)]),
        );
        const [gx, gw, gb] = (await Promise.all(grads.map((g) => g.data()))) as Float32Array[];
        tf.dispose([rt, ...grads]);
        const eps = 0.1;
        const checks: Array<[string, Float32Array, Float32Array, (s: number) => Float32Array]> = [
          ['input', directions.input, gx, (s) => y(xv.map((q, i) => q + s * directions.input[i]), wv, bv)],
          ['filter', directions.filter, gw, (s) => y(xv, wv.map((q, i) => q + s * directions.filter[i]), bv)],
          ['bias', directions.bias, gb, (s) => y(xv, wv, bv.map((q, i) => q + s * directions.bias[i]))],
        ];
        for (const [name, v, g, perturbed] of checks) {
          // The loss is quadratic in each direction, so the central difference is exact up to float32 rounding of
          // the conv, for any step; a step of 0.1 keeps that rounding small against the difference.
          const numeric = (loss(perturbed(eps)) - loss(perturbed(-eps))) / (2 * eps);
          const analytic = g.reduce((acc, gi, i) => acc + gi * v[i], 0);
          const rel = Math.abs(numeric - analytic) / Math.abs(analytic);
          t.ok(rel < 1e-3, `${mode} ${name} direction, ${c.label}: difference ${numeric.toFixed(4)} vs gradient ${analytic.toFixed(4)} (rel ${rel.toExponential(1)})`);
        }
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------- dispatch

t.test('eligibility: 3x3, stride 1, dilation 1, channels multiples of 4 and at least 8, mode not off', async (t) => {
  const cases: Array<[number[], number[], number[], boolean]> = [
    [[3, 3, 8, 8], [1, 1], [1, 1], true],
    [[3, 3, 36, 12], [1, 1], [1, 1], true],
    [[3, 3, 20, 256], [1, 1], [1, 1], true],
    [[3, 3, 4, 8], [1, 1], [1, 1], false],
    [[3, 3, 8, 4], [1, 1], [1, 1], false],
    [[3, 3, 5, 8], [1, 1], [1, 1], false],
    [[3, 3, 8, 6], [1, 1], [1, 1], false],
    [[3, 3, 8, 8], [2, 2], [1, 1], false],
    [[3, 3, 8, 8], [1, 2], [1, 1], false],
    [[3, 3, 8, 8], [1, 1], [2, 2], false],
    [[5, 5, 8, 8], [1, 1], [1, 1], false],
    [[1, 1, 8, 8], [1, 1], [1, 1], false],
    [[3, 1, 8, 8], [1, 1], [1, 1], false],
  ];
  for (const [filter, strides, dilations, expected] of cases) {
    t.equal(winogradEligible(filter, strides, dilations), expected, `filter [${filter}] strides [${strides}] dilations [${dilations}]`);
  }
  await withMode('off', () => t.notOk(winogradEligible([3, 3, 8, 8], [1, 1], [1, 1]), 'nothing is eligible in mode off'));
  t.throws(() => setWinogradMode('f3' as WinogradMode), /expected one of/, 'an unknown mode is refused');
});

/** Bitwise equality of two float arrays (NaN-safe: compares the bits). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const [ia, ib] = [new Int32Array(a.buffer, a.byteOffset, a.length), new Int32Array(b.buffer, b.byteOffset, b.length)];
  return ia.every((q, i) => q === ib[i]);
}
const differingElements = (a: Float32Array, b: Float32Array): number => a.reduce((n, q, i) => n + (q === b[i] ? 0 : 1), 0);

t.test('eligible convs take the Winograd path of the mode in effect', async (t) => {
  // Output 7x9: F(4x4) applies in mode f4. Output 3x9 (an input of height 3): f4 falls back to F(2x2).
  for (const [xs, f4Applies] of [[[2, 7, 9, 16], true], [[1, 3, 9, 16], false]] as Array<[Shape4, boolean]>) {
    const ws: Shape4 = [3, 3, 16, 12];
    const ys: Shape4 = [xs[0], xs[1], xs[2], 12];
    const [xv, wv, bv, dyv] = [randn(xs), randn(ws), randn([12]), randn(ys)];
    const viaOps = (x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, dy: tf.Tensor4D): tf.Tensor[] => [
      tf.conv2d(x, w, 1, 'same'),
      tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias }),
      tf.grad((wi: tf.Tensor) => tf.conv2d(x, wi as tf.Tensor4D, 1, 'same').mul(dy).sum())(w),
    ];
    const reference = await on('cpu', () => viaOps(tensor4(xv, xs), tensor4(wv, ws), tf.tensor1d(bv), tensor4(dyv, ys)));
    await tf.setBackend('wasm');
    const backend = wasmBackend();
    const x = tensor4(xv, xs);
    const w = tensor4(wv, ws);
    const bias = tf.tensor1d(bv);
    const dy = tensor4(dyv, ys);
    const geometry = geometryOf(xs, ws, 'same');
    const read = async (info: tf.TensorInfo): Promise<Float32Array> => {
      const tensor = tf.engine().makeTensorFromTensorInfo(info);
      const data = (await tensor.data()) as Float32Array;
      tensor.dispose();
      return data;
    };
    const results = new Map<WinogradMode, Float32Array[]>();
    for (const mode of ['f2', 'f4', 'off'] as const) {
      const dispatched = await withMode(mode, async () => {
        const outs = tf.tidy(() => viaOps(x, w, bias, dy));
        const data = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
        tf.dispose(outs);
        return data;
      });
      results.set(mode, dispatched);
      ['conv2d', 'conv2d + bias', 'filter gradient'].forEach((name, i) => {
        const err = maxRelErr(dispatched[i], reference[i]);
        t.ok(err < 1e-5, `mode ${mode}, x [${xs}]: ${name} matches cpu (rel err ${err.toExponential(1)})`);
      });
      if (mode === 'off') continue;
      // Direct calls of the Winograd kernels on the backend's heap tensors, in the same mode.
      const direct = await withMode(mode, async () => [
        await read(winogradConv2d(backend, x, w, undefined, geometry)),
        await read(winogradConv2d(backend, x, w, bias, geometry)),
        await read(winogradFilterGradient(backend, x, dy, geometry)),
      ]);
      ['tf.conv2d', 'tf.fused.conv2d with bias', 'the conv2d filter gradient'].forEach((name, i) => {
        t.ok(sameBits(dispatched[i], direct[i]), `mode ${mode}, x [${xs}]: ${name} returns exactly the bits of the direct Winograd call`);
      });
    }
    tf.dispose([x, w, bias, dy]);
    // The bit patterns tell the paths apart (so the equalities above are no coincidence): Winograd and the stock
    // direct method round differently, and so do the two variants when F(4x4) applies.
    const [f2, f4, off] = [results.get('f2'), results.get('f4'), results.get('off')] as Float32Array[][];
    ['conv2d', 'filter gradient'].forEach((name, k) => {
      const i = k === 0 ? 0 : 2;
      t.ok(differingElements(f2[i], off[i]) > 0, `x [${xs}] ${name}: F(2x2) and the stock kernel differ in rounding (${differingElements(f2[i], off[i])} of ${off[i].length})`);
      if (f4Applies) {
        t.ok(differingElements(f4[i], f2[i]) > 0, `x [${xs}] ${name}: mode f4 computes F(4x4), not F(2x2) (${differingElements(f4[i], f2[i])} elements differ)`);
      } else {
        t.ok(sameBits(f4[i], f2[i]), `x [${xs}] ${name}: mode f4 falls back to F(2x2) on a 3-row output`);
      }
    });
  }
});

t.test('ineligible convs keep a correct (stock or previous) path', async (t) => {
  interface Ineligible {
    label: string;
    xs: Shape4;
    ws: Shape4;
    stride: number;
    dilation: number;
    activation: 'linear' | 'relu';
    gradients: boolean;
  }
  const base = { stride: 1, dilation: 1, activation: 'linear' as const, gradients: true };
  const cases: Ineligible[] = [
    { ...base, label: 'Cin 5', xs: [2, 7, 6, 5], ws: [3, 3, 5, 8] },
    { ...base, label: 'Cin 4 (< 8)', xs: [2, 7, 6, 4], ws: [3, 3, 4, 8] },
    { ...base, label: 'Cout 6', xs: [2, 6, 7, 8], ws: [3, 3, 8, 6] },
    { ...base, label: 'stride 2', xs: [2, 9, 8, 8], ws: [3, 3, 8, 12], stride: 2 },
    { ...base, label: '5x5 filter', xs: [2, 9, 8, 8], ws: [5, 5, 8, 8] },
    { ...base, label: 'dilation 2 (forward only: tfjs has no dilated conv gradient)', xs: [2, 9, 8, 8], ws: [3, 3, 8, 8], dilation: 2, gradients: false },
    { ...base, label: 'fused relu (stock forward, Winograd gradients)', xs: [2, 7, 6, 8], ws: [3, 3, 8, 12], activation: 'relu' },
  ];
  for (const c of cases) {
    if (c.activation === 'linear') {
      t.notOk(winogradEligible(c.ws, [c.stride, c.stride], [c.dilation, c.dilation]), `not eligible: ${c.label}`);
    }
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const f = (): tf.Tensor[] => {
      const x = tensor4(xv, c.xs);
      const filter = tensor4(wv, c.ws);
      const bias = tf.tensor1d(bv);
      const fused = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Tensor4D =>
        tf.fused.conv2d({
          x: xi as tf.Tensor4D,
          filter: wi as tf.Tensor4D,
          strides: c.stride,
          pad: 'same',
          dilations: c.dilation,
          bias: bi,
          activation: c.activation,
        });
      const outs = [tf.conv2d(x, filter, c.stride, 'same', 'NHWC', c.dilation), fused(x, filter, bias)];
      if (c.gradients) outs.push(...tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => fused(xi, wi, bi).square().sum())([x, filter, bias]));
      return outs;
    };
    const cpu = await on('cpu', f);
    const wasm = await on('wasm', f);
    ['conv2d', `fused ${c.activation} + bias`, 'dx', 'dW', 'dbias'].slice(0, cpu.length).forEach((name, i) => {
      const err = maxRelErr(wasm[i], cpu[i]);
      t.ok(err < 1e-5, `${c.label}: ${name} x [${c.xs}] w [${c.ws}] (rel err ${err.toExponential(1)})`);
    });
  }
});

// ---------------------------------------------------------------------------------------------- leaks

t.test('repeated forward and backward passes leak no tensors and no heap', async (t) => {
  await tf.setBackend('wasm');
  const c = eligibleCase(ASYMMETRIC_A, { b: 2, h: 9, w: 8, cin: 16, cout: 12 });
  const x = tensor4(randn(c.xs), c.xs);
  const w = tensor4(randn(c.ws), c.ws);
  const bias = tf.tensor1d(randn([c.ws[3]]));
  const step = (): number => {
    const loss = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Scalar =>
      tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, strides: 1, pad: c.pad, bias: bi }).square().sum()
        .add(tf.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, 1, 'same').square().sum())
        // A 3-row output: F(2x2) where the others take F(4x4).
        .add(tf.conv2d(tf.slice(xi, [0, 0, 0, 0], [2, 3, 8, 16]) as tf.Tensor4D, wi as tf.Tensor4D, 1, 'same').square().sum());
    return tf.tidy(() => tf.grads(loss)([x, w, bias]).reduce((acc, g) => acc + g.sum().dataSync()[0], 0));
  };
  step(); // warm up: first allocations of every size
  const before = { ...tf.memory(), dataIds: numDataIds(), heap: heapBytes() };
  let checksum = 0;
  for (let i = 0; i < 20; i++) checksum += step();
  const after = { ...tf.memory(), dataIds: numDataIds(), heap: heapBytes() };
  t.ok(Number.isFinite(checksum), 'the steps produce finite gradients');
  t.equal(after.numTensors, before.numTensors, 'tf.memory().numTensors is unchanged after 20 steps');
  t.equal(after.numBytes, before.numBytes, 'tf.memory().numBytes is unchanged after 20 steps');
  t.equal(after.dataIds, before.dataIds, 'the backend holds no more data ids (scratch tensors are freed)');
  t.equal(after.heap, before.heap, 'the wasm heap did not grow');
  tf.dispose([x, w, bias]);
});

// ---------------------------------------------------------------------------------------------- module contract

/** Reads an unsigned LEB128 at `at`; returns the value and the offset after it. */
function leb128(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length) throw new Error('truncated LEB128');
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [value, at];
  }
}

function wasmName(bytes: Uint8Array, at: number): [string, number] {
  const [length, start] = leb128(bytes, at);
  return [Buffer.from(bytes.subarray(start, start + length)).toString('utf8'), start + length];
}

interface ParsedModule {
  sectionIds: number[];
  imports: Array<{ module: string; field: string; kind: number }>;
  exports: Array<{ name: string; kind: number }>;
  trailing: number;
}

function parseModule(bytes: Uint8Array): ParsedModule {
  const header = Buffer.from(bytes.subarray(0, 8)).toString('hex');
  if (header !== '0061736d01000000') throw new Error(`not a version-1 wasm module (header ${header})`);
  const parsed: ParsedModule = { sectionIds: [], imports: [], exports: [], trailing: 0 };
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, start] = leb128(bytes, at + 1);
    const end = start + size;
    if (end > bytes.length) throw new Error(`section ${id} at ${at} runs past the end`);
    parsed.sectionIds.push(id);
    if (id === 2 || id === 7) {
      let [count, p] = leb128(bytes, start);
      for (let i = 0; i < count; i++) {
        if (id === 2) {
          let module: string, field: string;
          [module, p] = wasmName(bytes, p);
          [field, p] = wasmName(bytes, p);
          const kind = bytes[p++];
          if (kind !== 2) throw new Error(`import ${module}.${field} of kind ${kind}: only a memory is expected`);
          const flags = bytes[p++];
          [, p] = leb128(bytes, p); // minimum pages
          if (flags & 1) [, p] = leb128(bytes, p); // maximum pages
          parsed.imports.push({ module, field, kind });
        } else {
          let name: string;
          [name, p] = wasmName(bytes, p);
          const kind = bytes[p++];
          [, p] = leb128(bytes, p);
          parsed.exports.push({ name, kind });
        }
      }
      if (p !== end) throw new Error(`section ${id}: entries end at ${p}, the section at ${end}`);
    }
    at = end;
  }
  parsed.trailing = bytes.length - at;
  return parsed;
}

/** Whether an executable is on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

t.test('the committed module keeps the memory contract', async (t) => {
  const bytes = new Uint8Array(Buffer.from(wasmModuleBase64, 'base64'));
  t.ok((globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes), 'the binary validates');
  const parsed = parseModule(bytes);
  t.equal(parsed.trailing, 0, 'sections tile the binary exactly');
  t.notOk(parsed.sectionIds.includes(11), 'no data section (it would overwrite the tfjs heap at instantiation)');
  t.notOk(parsed.sectionIds.includes(12), 'no data-count section');
  t.notOk(parsed.sectionIds.includes(8), 'no start function');
  t.same(parsed.imports, [{ module: 'env', field: 'memory', kind: 2 }], 'the only import is the memory env.memory');
  // Every kernel the wrapper (wasm/winograd.ts) calls: both variants' transforms and the shared products.
  const exported = new Set(parsed.exports.filter((e) => e.kind === 0).map((e) => e.name));
  const required = [
    'winograd_multiply',
    'winograd_accumulate',
    ...['input', 'filter', 'output', 'grad_output', 'grad_filter'].flatMap((n) => [`winograd_${n}`, `winograd4_${n}`]),
  ];
  t.same(required.filter((name) => !exported.has(name)), [], `exports the ${required.length} kernels the wrapper calls`);
  t.same(parsed.exports.filter((e) => e.kind !== 0), [], 'exports nothing but functions (no memory of its own)');

  const tools = ['clang', 'wasm-ld', 'wasm-objdump'];
  const missing = tools.filter((tool) => !onPath(tool));
  const skip = missing.length > 0 ? `${missing.join(', ')} not on PATH` : false;
  t.test('the committed binary touches no global (no shadow stack)', { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wellspring-winograd-test-'));
    try {
      const file = join(dir, 'winograd.wasm');
      writeFileSync(file, bytes);
      const dump = spawnSync('wasm-objdump', ['-x', '-d', file], { encoding: 'utf8' });
      t.equal(dump.status, 0, 'wasm-objdump reads the binary');
      t.notMatch(dump.stdout, /global\.(get|set)/, 'no global.get / global.set in the code');
      t.notMatch(dump.stdout, /^\s*Data\[/m, 'no data segments');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  t.test('the committed module is what the C source builds to', { skip }, async (t) => {
    const run = spawnSync(process.execPath, [join(root, 'scripts/build-wasm.mjs'), '--check'], { encoding: 'utf8', timeout: 120_000 });
    t.equal(run.status, 0, `build-wasm --check exits 0 ${run.stderr.trim()}`);
    t.match(run.stdout, /is up to date/, 'reports the committed module up to date');
  });
});

t.test('a batch split into parts to bound scratch memory gives the same bits', async (t) => {
  await tf.setBackend('wasm');
  const xs: Shape4 = [5, 9, 10, 12];
  const ws: Shape4 = [3, 3, 12, 16];
  const ys: Shape4 = [5, 9, 10, 16];
  const [x, w, bias, dy] = [tensor4(randn(xs), xs), tensor4(randn(ws), ws), tf.tensor1d(randn([16])), tensor4(randn(ys), ys)];
  const run = async (): Promise<Float32Array[]> => {
    const outs = tf.tidy(() => [
      tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias }),
      tf.grad((wi: tf.Tensor) => tf.conv2d(x, wi as tf.Tensor4D, 1, 'same').mul(dy).sum())(w),
    ]);
    const data = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
    tf.dispose(outs);
    return data;
  };
  for (const mode of ['f2', 'f4'] as const) {
    const whole = await withMode(mode, run);
    // One byte of budget: every image becomes its own part (5 parts); 80 kB: parts of 2 images (F(4x4)), 1 (F(2x2)).
    for (const limit of [1, 80_000]) {
      const previous = setWinogradScratchLimit(limit);
      try {
        const parts = await withMode(mode, run);
        t.ok(sameBits(parts[0], whole[0]), `mode ${mode}, scratch limit ${limit} B: forward output identical`);
        t.ok(sameBits(parts[1], whole[1]), `mode ${mode}, scratch limit ${limit} B: filter gradient identical`);
      } finally {
        setWinogradScratchLimit(previous);
      }
    }
  }
  t.throws(() => setWinogradScratchLimit(0), /positive number of bytes/);
  tf.dispose([x, w, bias, dy]);
});
