/**
 * The Winograd convolutions' native route (called by src/models/backend/wasm/winograd.ts when the native kernels
 * are loaded): the per-plane products (the addon's `gemmPlanes`) on every ISA this CPU has against a float64
 * reference (plain and transposed A, accumulation, planes scattered over the heap), an accumulation split over K
 * giving the bits of one call, range checks; the natively compiled transforms (winograd* exports, F(2x2) and
 * F(4x4)) against float64 references of their matrix forms, and their range checks; then forward convs, input and
 * filter gradients on the native route against the cpu backend, against the wasm route (`setNativeKernels(false)`)
 * and, bit for bit, against native products with wasm transforms (`setNativeWinogradTransforms(false)`), gradients
 * against central finite differences, and bit-identical repeats and batch splits. Everything skips with the
 * reason when the addon is not built.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { type NativeAddon, nativeAddon, nativeKernels, setNativeKernels } from '../../src/models/backend/native/index.js';
import { type WinogradMode, setNativeWinogradFused, setNativeWinogradTransforms, setWinogradMode, setWinogradScratchLimit } from '../../src/models/backend/wasm/index.js';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { maxRelErr, on, randomCases } from './helpers.js';

registerWasmKernels();
const { pick, randInt, randn } = randomCases(20261201);
const info = nativeKernels();
const skip = info.loaded ? false : `native kernels not in use: ${info.reason}`;

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
  setWinogradMode('auto');
});

// ---------------------------------------------------------------------------------------------- the entry point

/** Planes laid out in one ArrayBuffer (as on the wasm heap), in shuffled order with gaps, and their tables. */
class Heap {
  readonly buffer: ArrayBuffer;
  private at = 64; // nothing at offset 0, to exercise offsets
  constructor(bytes: number) {
    this.buffer = new ArrayBuffer(bytes);
  }
  /** Places `values` at the next free offset (after a gap of 0-3 floats) and returns the byte offset. */
  put(values: Float32Array): number {
    this.at += 4 * randInt(0, 3);
    const offset = this.at;
    new Float32Array(this.buffer, offset, values.length).set(values);
    this.at += 4 * values.length;
    return offset;
  }
  /** An int32 table of the given byte offsets; returns its byte offset. */
  table(offsets: number[]): number {
    const offset = this.at;
    new Int32Array(this.buffer, offset, offsets.length).set(offsets);
    this.at += 4 * offsets.length;
    return offset;
  }
  read(offset: number, length: number): Float32Array {
    return new Float32Array(this.buffer, offset, length).slice();
  }
}

/** C (+)= op(A) B in float64, A stored [m, k] or [k, m] (transA), B [k, n]. */
function planeReference(a: Float32Array, b: Float32Array, c0: Float32Array | undefined, m: number, k: number, n: number, transA: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = c0 ? c0[i * n + j] : 0;
      for (let p = 0; p < k; p++) s += a[transA ? p * m + i : i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** max |got - want| / (sqrt(k + 1) max(1, max |want|)). */
function planeErr(got: Float32Array, want: Float64Array, k: number): number {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Number.isNaN(got[i]) ? Infinity : Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / (Math.sqrt(k + 1) * scale);
}

/** Bitwise equality of two float arrays. */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const [ia, ib] = [new Int32Array(a.buffer, a.byteOffset, a.length), new Int32Array(b.buffer, b.byteOffset, b.length)];
  return ia.every((q, i) => q === ib[i]);
}

/** Random planes A_p, B_p (and C_p when accumulating) on a fresh heap, the tables, and the float64 results. */
function planesCase(planes: number, m: number, k: number, n: number, transA: boolean, accumulate: boolean) {
  const heap = new Heap(64 + planes * 4 * (m * k + k * n + m * n + 12) + 12 * planes + 64);
  const as = Array.from({ length: planes }, () => randn([m * k]));
  const bs = Array.from({ length: planes }, () => randn([k * n]));
  const cs = Array.from({ length: planes }, () => (accumulate ? randn([m * n]) : new Float32Array(m * n).fill(Number.NaN)));
  // Operands interleaved in a shuffled order, so plane p's operands are not where a stride would put them.
  const order = Array.from({ length: 3 * planes }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = randInt(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const offsets: number[][] = [[], [], []];
  for (const i of order) offsets[i % 3][Math.floor(i / 3)] = heap.put([as, bs, cs][i % 3][Math.floor(i / 3)]);
  const [aTable, bTable, cTable] = offsets.map((o) => heap.table(o));
  const want = as.map((a, p) => planeReference(a, bs[p], accumulate ? cs[p] : undefined, m, k, n, transA));
  return { heap, aTable, bTable, cTable, cOffsets: offsets[2], want, as, bs };
}

t.test('gemmPlanes matches a float64 reference on every ISA this CPU has', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  const previous = addon.isa();
  try {
    for (const isa of addon.supported()) {
      addon.setIsa(isa);
      for (let trial = 0; trial < 16; trial++) {
        // Odd sizes around the register tiles; K past one 384-row block for the filter-gradient form.
        const planes = pick([1, 3, 16, 36]);
        const transA = trial % 2 === 1;
        const accumulate = trial % 4 >= 2;
        const m = randInt(1, 30);
        const k = trial === 5 || trial === 7 ? randInt(385, 900) : randInt(1, 60);
        const n = randInt(1, 40);
        const c = planesCase(planes, m, k, n, transA, accumulate);
        addon.gemmPlanes(c.heap.buffer, planes, c.aTable, c.bTable, c.cTable, m, k, n, transA, accumulate);
        const err = Math.max(...c.want.map((w, p) => planeErr(c.heap.read(c.cOffsets[p], m * n), w, k)));
        t.ok(err < 2e-6, `${isa} ${planes} planes M=${m} K=${k} N=${n} transA=${transA} accumulate=${accumulate}: err ${err.toExponential(1)}`);
      }
    }
  } finally {
    addon.setIsa(previous);
  }
});

t.test('an accumulation split over K into calls gives the bits of one call; repeats are bit-identical', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  const previous = addon.isa();
  try {
    for (const isa of addon.supported()) {
      addon.setIsa(isa);
      // The filter-gradient form: M = Cin, K = tiles, N = Cout, A stored [K, M]; K past two 384-row blocks.
      const [planes, m, k, n] = [4, 20, 1000, 28];
      const whole = planesCase(planes, m, k, n, true, false);
      addon.gemmPlanes(whole.heap.buffer, planes, whole.aTable, whole.bTable, whole.cTable, m, k, n, true, false);
      const wholeOut = whole.cOffsets.map((o) => whole.heap.read(o, m * n));
      addon.gemmPlanes(whole.heap.buffer, planes, whole.aTable, whole.bTable, whole.cTable, m, k, n, true, false);
      t.ok(whole.cOffsets.every((o, p) => sameBits(whole.heap.read(o, m * n), wholeOut[p])), `${isa}: a repeated call gives the same bits`);
      // The same sums in parts of 333, 1 and 666 rows of K (block boundaries of neither call line up with the other's).
      for (const cuts of [[333], [1], [666, 667]]) {
        const bounds = [0, ...cuts, k];
        const parts = new Heap(whole.heap.buffer.byteLength * 2);
        const cOffsets = Array.from({ length: planes }, () => parts.put(new Float32Array(m * n)));
        const cTable = parts.table(cOffsets);
        for (let s = 0; s + 1 < bounds.length; s++) {
          const [k0, k1] = [bounds[s], bounds[s + 1]];
          const aOffsets = whole.as.map((a) => parts.put(a.subarray(k0 * m, k1 * m)));
          const bOffsets = whole.bs.map((b) => parts.put(b.subarray(k0 * n, k1 * n)));
          addon.gemmPlanes(parts.buffer, planes, parts.table(aOffsets), parts.table(bOffsets), cTable, m, k1 - k0, n, true, s > 0);
        }
        const same = cOffsets.every((o, p) => sameBits(parts.read(o, m * n), wholeOut[p]));
        t.ok(same, `${isa}: K split at ${cuts.join(', ')} gives the bits of one call`);
      }
    }
  } finally {
    addon.setIsa(previous);
  }
});

t.test('bad gemmPlanes calls throw errors that say what and which plane', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  const c = planesCase(3, 4, 5, 6, false, false);
  const { buffer } = c.heap;
  const bytes = buffer.byteLength;
  const call = (aTable: number, bTable: number, cTable: number, m = 4, k = 5, n = 6) => () =>
    addon.gemmPlanes(buffer, 3, aTable, bTable, cTable, m, k, n, false, false);
  t.throws(call(c.aTable, c.bTable, bytes - 8), new RegExp(`cTable spans bytes \\[${bytes - 8}, ${bytes + 4}\\) but the heap holds ${bytes} bytes`));
  t.throws(call(c.aTable + 2, c.bTable, c.cTable), /aTable \(\d+\) is not a multiple of 4 bytes/);
  // Plane 1's output moved onto its own B operand; plane 2's output past the end; a misaligned A in plane 0.
  const table = (offsets: number[]) => {
    const at = bytes - 64;
    new Int32Array(buffer, at, 3).set(offsets);
    return at;
  };
  const bOffsets = Array.from(new Int32Array(buffer, c.bTable, 3));
  const aOffsets = Array.from(new Int32Array(buffer, c.aTable, 3));
  t.throws(call(c.aTable, c.bTable, table([c.cOffsets[0], bOffsets[1], c.cOffsets[2]])), /plane 1: the output c overlaps input b/);
  t.throws(call(c.aTable, c.bTable, table([c.cOffsets[0], c.cOffsets[1], bytes - 16])), /plane 2: c spans bytes \[\d+, \d+\) but the heap holds \d+ bytes/);
  t.throws(call(table([aOffsets[0] + 1, aOffsets[1], aOffsets[2]]), c.bTable, c.cTable), /plane 0: offset of a \(\d+\) is not a multiple of 4 bytes/);
  t.throws(call(c.aTable, c.bTable, c.cTable, -1), /gemmPlanes: m must be a non-negative integer/);
  t.throws(() => addon.gemmPlanes(new Float32Array(4) as unknown as ArrayBuffer, 1, 0, 0, 0, 1, 1, 1, false, false), /heap must be an ArrayBuffer/);
  // Nothing was written by the refused calls: plane outputs are still the NaN fill.
  t.ok(c.cOffsets.every((o) => c.heap.read(o, 24).every(Number.isNaN)), 'refused calls write nothing');
});

// ------------------------------------------------------------------------------------------ the transforms

/** The variants' matrices (winograd.c's header): B^T, G and A^T of F(2x2, 3x3) and F(4x4, 3x3). */
const MATRICES = {
  2: {
    bt: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    g: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
    at: [[1, 1, 1, 0], [0, 1, -1, -1]],
  },
  4: {
    bt: [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    g: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    at: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
  },
} as const;

/** max |got - want| / max(1, max |want|), NaN counting as infinite. */
function transformErr(got: Float32Array, want: Float64Array): number {
  let err = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Number.isNaN(got[i]) ? Infinity : Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / scale;
}

t.test('the native transforms match float64 references of B^T d B, G g G^T, A^T m A, A e A^T and G^T u G', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  for (let trial = 0; trial < 8; trial++) {
    const tile = trial % 2 === 0 ? 2 : 4;
    const { bt, g: gm, at } = MATRICES[tile];
    const n = tile + 2; // the transformed tile's side
    const planes = n * n;
    const [batch, height, width] = [randInt(1, 2), randInt(1, 11), randInt(1, 11)];
    const [padTop, padLeft] = [randInt(0, 2), randInt(0, 2)];
    const [outH, outW] = [randInt(1, 9), randInt(1, 9)];
    const [tilesH, tilesW] = [Math.ceil(outH / tile), Math.ceil(outW / tile)];
    const [cin, cout] = [4 * randInt(1, 4), 4 * randInt(1, 4)];
    const tiles = batch * tilesH * tilesW;
    const label = `F(${tile}x${tile}) batch ${batch} in ${height}x${width} pads ${padTop},${padLeft} out ${outH}x${outW} (${tilesH}x${tilesW} tiles) Cin ${cin} Cout ${cout}`;
    const heap = new Heap(4 * (batch * height * width * cin + batch * outH * outW * cout * 2 + planes * (tiles * (cin + cout) * 2 + cin * cout * 2) + 9 * cin * cout * 2 + 6 * planes + cout + 4096));
    const nanPlanes = (floats: number) => Array.from({ length: planes }, () => heap.put(new Float32Array(floats).fill(Number.NaN)));

    // Input transform: V[(i, j)][tile, c] = sum_ab B^T[i][a] d[a][b] B^T[j][b], d read with zero padding.
    const x = randn([batch, height, width, cin]);
    const xAt = heap.put(x);
    const vOffsets = nanPlanes(tiles * cin);
    addon.winogradInput(heap.buffer, tile, xAt, batch, height, width, cin, padTop, padLeft, tilesH, tilesW, heap.table(vOffsets));
    const v = vOffsets.map((o) => heap.read(o, tiles * cin));
    const vWant = Array.from({ length: planes }, () => new Float64Array(tiles * cin));
    const xAtPos = (b: number, r: number, q: number, c: number) => (r >= 0 && r < height && q >= 0 && q < width ? x[((b * height + r) * width + q) * cin + c] : 0);
    for (let b = 0; b < batch; b++) for (let ty = 0; ty < tilesH; ty++) for (let tx = 0; tx < tilesW; tx++) {
      const k = (b * tilesH + ty) * tilesW + tx;
      for (let c = 0; c < cin; c++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let a = 0; a < n; a++) for (let bb = 0; bb < n; bb++) sum += bt[i][a] * xAtPos(b, tile * ty - padTop + a, tile * tx - padLeft + bb, c) * bt[j][bb];
        vWant[i * n + j][k * cin + c] = sum;
      }
    }
    const eInput = Math.max(...v.map((p, xi) => transformErr(p, vWant[xi])));
    t.ok(eInput < 2e-6, `input ${label}: err ${eInput.toExponential(1)}`);

    // Filter transform: U[(i, j)][ci, co] = sum_ab G[i][a] g[a][b] G[j][b].
    const g = randn([3, 3, cin, cout]);
    const gAt = heap.put(g);
    const uOffsets = nanPlanes(cin * cout);
    addon.winogradFilter(heap.buffer, tile, gAt, cin, cout, heap.table(uOffsets));
    let eFilter = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const want = new Float64Array(cin * cout);
      for (let e = 0; e < cin * cout; e++) for (let a = 0; a < 3; a++) for (let bb = 0; bb < 3; bb++) want[e] += gm[i][a] * g[(a * 3 + bb) * cin * cout + e] * gm[j][bb];
      eFilter = Math.max(eFilter, transformErr(heap.read(uOffsets[i * n + j], cin * cout), want));
    }
    t.ok(eFilter < 2e-6, `filter ${label}: err ${eFilter.toExponential(1)}`);

    // Output transform: y[oy + i][ox + j] = bias + sum_ab A^T[i][a] m[(a, b)] A^T[j][b], cropped to the output.
    const m = Array.from({ length: planes }, () => randn([tiles * cout]));
    const mTable = heap.table(m.map((p) => heap.put(p)));
    const bias = randn([cout]);
    const biasAt = heap.put(bias);
    const yAt = heap.put(new Float32Array(batch * outH * outW * cout).fill(Number.NaN));
    addon.winogradOutput(heap.buffer, tile, mTable, trial < 4 ? biasAt : -1, batch, outH, outW, cout, tilesH, tilesW, yAt);
    const yWant = new Float64Array(batch * outH * outW * cout);
    for (let b = 0; b < batch; b++) for (let oy = 0; oy < outH; oy++) for (let ox = 0; ox < outW; ox++) {
      const k = (b * tilesH + Math.floor(oy / tile)) * tilesW + Math.floor(ox / tile);
      const [i, j] = [oy % tile, ox % tile];
      for (let c = 0; c < cout; c++) {
        let sum = trial < 4 ? bias[c] : 0;
        for (let a = 0; a < n; a++) for (let bb = 0; bb < n; bb++) sum += at[i][a] * m[a * n + bb][k * cout + c] * at[j][bb];
        yWant[((b * outH + oy) * outW + ox) * cout + c] = sum;
      }
    }
    const eOutput = transformErr(heap.read(yAt, yWant.length), yWant);
    t.ok(eOutput < 2e-6, `output ${label}${trial < 4 ? ' + bias' : ''}: err ${eOutput.toExponential(1)}`);

    // Output-gradient transform: W[(i, j)] = sum_ab A[i][a] e[a][b] A[j][b] (A = (A^T)^T), e zero past the edge.
    const dy = randn([batch, outH, outW, cout]);
    const dyAt = heap.put(dy);
    const wOffsets = nanPlanes(tiles * cout);
    addon.winogradGradOutput(heap.buffer, tile, dyAt, batch, outH, outW, cout, tilesH, tilesW, heap.table(wOffsets));
    let eGradOutput = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const want = new Float64Array(tiles * cout);
      for (let b = 0; b < batch; b++) for (let ty = 0; ty < tilesH; ty++) for (let tx = 0; tx < tilesW; tx++) {
        const k = (b * tilesH + ty) * tilesW + tx;
        for (let a = 0; a < tile; a++) for (let bb = 0; bb < tile; bb++) {
          const [oy, ox] = [tile * ty + a, tile * tx + bb];
          if (oy >= outH || ox >= outW) continue;
          for (let c = 0; c < cout; c++) want[k * cout + c] += at[a][i] * dy[((b * outH + oy) * outW + ox) * cout + c] * at[bb][j];
        }
      }
      eGradOutput = Math.max(eGradOutput, transformErr(heap.read(wOffsets[i * n + j], tiles * cout), want));
    }
    t.ok(eGradOutput < 2e-6, `output gradient ${label}: err ${eGradOutput.toExponential(1)}`);

    // Filter-gradient transform: dg[a][b] = sum_ij G[i][a] u[(i, j)] G[j][b].
    const u = Array.from({ length: planes }, () => randn([cin * cout]));
    const uTable = heap.table(u.map((p) => heap.put(p)));
    const dgAt = heap.put(new Float32Array(9 * cin * cout).fill(Number.NaN));
    addon.winogradGradFilter(heap.buffer, tile, uTable, cin, cout, dgAt);
    const dgWant = new Float64Array(9 * cin * cout);
    for (let a = 0; a < 3; a++) for (let bb = 0; bb < 3; bb++) for (let e = 0; e < cin * cout; e++) {
      let sum = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sum += gm[i][a] * u[i * n + j][e] * gm[j][bb];
      dgWant[(a * 3 + bb) * cin * cout + e] = sum;
    }
    const eGradFilter = transformErr(heap.read(dgAt, dgWant.length), dgWant);
    t.ok(eGradFilter < 2e-6, `filter gradient ${label}: err ${eGradFilter.toExponential(1)}`);
  }
});

t.test('every vector width of the native transforms (4, 8, 16 lanes by ISA and channels) gives the same bits', { skip }, async (t) => {
  // The ISA bounds the width (generic 4, AVX2 8, AVX-512 16), the channel count picks the widest that divides it:
  // 24 channels run 8 lanes on AVX-512, 12 run 4. Every lane does the 4-lane build's operations, so the outputs
  // of all ten transforms must be bit-identical across the ISAs this CPU has.
  const addon = nativeAddon() as NativeAddon;
  const isas = addon.supported();
  const previous = addon.isa();
  try {
    for (const [cin, cout] of [[16, 32], [24, 48], [12, 16], [32, 24], [64, 16]]) {
      for (const tile of [2, 4] as const) {
        const n = tile + 2;
        const planes = n * n;
        const [batch, height, width, pad] = [2, randInt(3, 10), randInt(3, 10), 1];
        const [outH, outW] = [height, width];
        const [tilesH, tilesW] = [Math.ceil(outH / tile), Math.ceil(outW / tile)];
        const tiles = batch * tilesH * tilesW;
        const x = randn([batch, height, width, cin]);
        const g = randn([3, 3, cin, cout]);
        const m = Array.from({ length: planes }, () => randn([tiles * cout]));
        const dy = randn([batch, outH, outW, cout]);
        const u = Array.from({ length: planes }, () => randn([cin * cout]));
        const bias = randn([cout]);
        const results = isas.map((isa) => {
          addon.setIsa(isa);
          const heap = new Heap(4 * (x.length + g.length + dy.length + bias.length + planes * (tiles * (cin + 2 * cout) + 2 * cin * cout) + batch * outH * outW * cout + 9 * cin * cout + 6 * planes + 4096));
          const [xAt, gAt, dyAt, biasAt] = [heap.put(x), heap.put(g), heap.put(dy), heap.put(bias)];
          const fresh = (floats: number) => Array.from({ length: planes }, () => heap.put(new Float32Array(floats).fill(Number.NaN)));
          const [v, uOut, w] = [fresh(tiles * cin), fresh(cin * cout), fresh(tiles * cout)];
          const mTable = heap.table(m.map((p) => heap.put(p)));
          const uTable = heap.table(u.map((p) => heap.put(p)));
          const yAt = heap.put(new Float32Array(batch * outH * outW * cout).fill(Number.NaN));
          const dgAt = heap.put(new Float32Array(9 * cin * cout).fill(Number.NaN));
          addon.winogradInput(heap.buffer, tile, xAt, batch, height, width, cin, pad, pad, tilesH, tilesW, heap.table(v));
          addon.winogradFilter(heap.buffer, tile, gAt, cin, cout, heap.table(uOut));
          addon.winogradOutput(heap.buffer, tile, mTable, biasAt, batch, outH, outW, cout, tilesH, tilesW, yAt);
          addon.winogradGradOutput(heap.buffer, tile, dyAt, batch, outH, outW, cout, tilesH, tilesW, heap.table(w));
          addon.winogradGradFilter(heap.buffer, tile, uTable, cin, cout, dgAt);
          return {
            input: v.map((o) => heap.read(o, tiles * cin)),
            filter: uOut.map((o) => heap.read(o, cin * cout)),
            output: [heap.read(yAt, batch * outH * outW * cout)],
            gradOutput: w.map((o) => heap.read(o, tiles * cout)),
            gradFilter: [heap.read(dgAt, 9 * cin * cout)],
          };
        });
        for (let r = 1; r < results.length; r++) {
          for (const name of ['input', 'filter', 'output', 'gradOutput', 'gradFilter'] as const) {
            const same = results[r][name].every((p, i) => sameBits(p, results[0][name][i]) && !p.some(Number.isNaN));
            t.ok(same, `F(${tile}x${tile}) Cin ${cin} Cout ${cout} ${name}: ${isas[r]} gives ${isas[0]}'s bits`);
          }
        }
      }
    }
  } finally {
    addon.setIsa(previous);
  }
});

t.test('bad transform calls throw errors that say which export, what and where, and write nothing', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  // F(2x2): batch 1, 4x4 input and output, 8 channels, 2x2 tiles: planes of 4 tiles x 8 channels.
  const heap = new Heap(64 * 1024);
  const x = heap.put(randn([1, 4, 4, 8]));
  const planeOffsets = Array.from({ length: 16 }, () => heap.put(new Float32Array(32).fill(Number.NaN)));
  const table = heap.table(planeOffsets);
  const y = heap.put(new Float32Array(128).fill(Number.NaN));
  const { buffer } = heap;
  const bytes = buffer.byteLength;
  const input = (args: Partial<Record<'tile' | 'x' | 'channels' | 'table', number>>) => () =>
    addon.winogradInput(buffer, (args.tile ?? 2) as 2 | 4, args.x ?? x, 1, 4, 4, args.channels ?? 8, 1, 1, 2, 2, args.table ?? table);
  t.throws(input({ x: bytes - 16 }), new RegExp(`winogradInput: x spans bytes \\[${bytes - 16}, ${bytes - 16 + 512}\\) but the heap holds ${bytes} bytes`));
  t.throws(input({ x: x + 2 }), /winogradInput: offset of x \(\d+\) is not a multiple of 4 bytes/);
  t.throws(input({ channels: 6 }), /winogradInput: channels must be a multiple of 4, got 6/);
  t.throws(input({ tile: 3 }), /winogradInput: tile must be 2 \(F\(2x2, 3x3\)\) or 4 \(F\(4x4, 3x3\)\), got 3/);
  // F(4x4) reads 36 table entries: the 16-entry table runs into what follows it (y's NaN bits: misaligned offsets).
  t.throws(input({ tile: 4, table: bytes - 80 }), new RegExp(`winogradInput: table spans bytes \\[${bytes - 80}, ${bytes + 64}\\)`));
  const badTable = (p: number, offset: number) => {
    const offsets = [...planeOffsets];
    offsets[p] = offset;
    return heap.table(offsets);
  };
  t.throws(input({ table: badTable(5, bytes - 64) }), /winogradInput: table plane 5: table spans bytes \[\d+, \d+\) but the heap holds \d+ bytes/);
  t.throws(input({ table: badTable(7, planeOffsets[7] + 1) }), /winogradInput: table plane 7: offset \d+ is not a multiple of 4 bytes/);
  t.throws(input({ table: badTable(3, x + 64) }), /winogradInput: table plane 3: the output table overlaps the input x/);
  t.throws(() => addon.winogradOutput(buffer, 2, table, -1, 1, 4, 4, 8, 2, 3, y), /winogradOutput: tilesH x tilesW = 2 x 3 but an output of 4 x 4 has 2 x 2 tiles/);
  t.throws(() => addon.winogradOutput(buffer, 2, table, -1, 1, 4, 4, 8, 2, 2, planeOffsets[0]), /winogradOutput: the output y overlaps the input table/);
  t.throws(() => addon.winogradOutput(buffer, 2, table, -2, 1, 4, 4, 8, 2, 2, y), /winogradOutput: bias must be a non-negative 32-bit integer or -1/);
  t.throws(() => addon.winogradGradOutput(buffer, 2, x, 1, 4, 4, 8, 1, 2, table), /winogradGradOutput: tilesH x tilesW = 1 x 2/);
  t.throws(() => addon.winogradFilter(buffer, 2, x, 8, 6, table), /winogradFilter: outChannels must be a multiple of 4, got 6/);
  t.throws(() => addon.winogradGradFilter(buffer, 2, table, 8, 8, bytes - 100), /winogradGradFilter: dg spans bytes/);
  t.throws(() => addon.winogradInput(buffer, 4, x, 1, 40000, 40000, 8, 1, 1, 2, 2, table), /winogradInput: shape too large for the kernels' 32-bit indexing/);
  t.throws(() => (addon.winogradFilter as unknown as (...a: unknown[]) => void)(buffer, 2, x, 8, 8), /winogradFilter: expected 6 arguments \(heap, tile, g, inChannels, outChannels, table\)/);
  t.throws(() => addon.winogradFilter(new Float32Array(4) as unknown as ArrayBuffer, 2, 0, 4, 4, 0), /winogradFilter: heap must be an ArrayBuffer/);
  t.ok(planeOffsets.every((o) => heap.read(o, 32).every(Number.isNaN)) && heap.read(y, 128).every(Number.isNaN), 'refused calls write nothing');
});

// ---------------------------------------------------------------------------------------------- the convolutions

type Shape4 = [number, number, number, number];
type Padding = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
const ASYMMETRIC: tf.backend_util.ExplicitPadding = [[0, 0], [2, 1], [0, 2], [0, 0]];

interface ConvCase {
  xs: Shape4;
  ws: Shape4;
  pad: Padding;
  label: string;
}
function convCase(pad: Padding, fixed: Partial<{ b: number; h: number; w: number; cin: number; cout: number }> = {}): ConvCase {
  const min = pad === 'valid' ? 3 : 1;
  const xs: Shape4 = [fixed.b ?? randInt(1, 3), fixed.h ?? randInt(min, 13), fixed.w ?? randInt(min, 13), fixed.cin ?? pick([8, 12, 20, 36, 64])];
  const ws: Shape4 = [3, 3, xs[3], fixed.cout ?? pick([8, 16, 28, 36, 64])];
  return { xs, ws, pad, label: `x [${xs}] w [${ws}] ${typeof pad === 'string' ? pad : 'asymmetric pads'}` };
}
const CASES: ConvCase[] = [
  convCase('same', { h: 1, w: 1 }),
  convCase('valid', { b: 3, h: 13, w: 11, cin: 36, cout: 64 }),
  convCase('same', { b: 2, h: 24, w: 23, cin: 8, cout: 12 }), // many tiles: several K blocks of the filter gradient
  ...Array.from({ length: 7 }, (_, i) => convCase((['same', 'valid', ASYMMETRIC] as Padding[])[i % 3])),
];

/** Forward (conv and fused with bias) and the gradients dx, dW, dbias of sum(y * r) for one case. */
function convAndGrads(c: ConvCase, xv: Float32Array, wv: Float32Array, bv: Float32Array, rv: Float32Array): () => tf.Tensor[] {
  return () => {
    const x = tf.tensor4d(xv, c.xs);
    const w = tf.tensor4d(wv, c.ws);
    const bias = tf.tensor1d(bv);
    const fused = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, strides: 1, pad: c.pad, bias: bi });
    const y = fused(x, w, bias);
    const r = tf.tensor(rv, y.shape);
    return [tf.conv2d(x, w, 1, c.pad), y, ...tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => fused(xi, wi, bi).mul(r).sum() as tf.Scalar)([x, w, bias])];
  };
}
const OUTPUTS = ['conv2d', 'fused conv2d + bias', 'dx', 'dW', 'dbias'];

async function withMode<T>(mode: WinogradMode, f: () => Promise<T>): Promise<T> {
  const previous = setWinogradMode(mode);
  try {
    return await f();
  } finally {
    setWinogradMode(previous);
  }
}
/** Runs `f` with the transforms in wasm (the products stay native). */
async function inWasmTransforms<T>(f: () => Promise<T>): Promise<T> {
  const previous = setNativeWinogradTransforms(false);
  try {
    return await f();
  } finally {
    setNativeWinogradTransforms(previous);
  }
}
async function wasmProducts<T>(f: () => Promise<T>): Promise<T> {
  const previous = setNativeKernels(false);
  try {
    return await f();
  } finally {
    setNativeKernels(previous);
  }
}

t.test('convs and their gradients on the native route match the cpu backend and the wasm route', { skip }, async (t) => {
  for (const c of CASES) {
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const outShape = tf.backend_util.computeConv2DInfo(c.xs, c.ws, 1, 1, c.pad).outShape;
    const f = convAndGrads(c, xv, wv, bv, randn(outShape));
    const cpu = await on('cpu', f);
    for (const mode of ['f2', 'f4'] as const) {
      // Native products and transforms (the default), native products with wasm transforms, all wasm.
      const native = await withMode(mode, () => on('wasm', f));
      const wasmTransforms = await withMode(mode, () => inWasmTransforms(() => on('wasm', f)));
      const wasm = await withMode(mode, () => wasmProducts(() => on('wasm', f)));
      OUTPUTS.forEach((name, i) => {
        const eCpu = maxRelErr(native[i], cpu[i]);
        const eWasm = maxRelErr(native[i], wasm[i]);
        t.ok(eCpu < 1e-5 && eWasm < 1e-5, `${mode} ${name} ${c.label}: vs cpu ${eCpu.toExponential(1)}, vs the wasm route ${eWasm.toExponential(1)}`);
        // The same winograd.c compiled both ways, without contraction: the transforms give the same bits.
        t.ok(sameBits(native[i], wasmTransforms[i]), `${mode} ${name} ${c.label}: native transforms give the wasm transforms' bits`);
      });
      // The routes really differ: FMA chains round differently from the wasm module's multiply-then-add.
      if (c.xs[1] * c.xs[2] >= 16) t.notOk(sameBits(native[0], wasm[0]), `${mode} ${c.label}: the native products ran (bits differ from the wasm route)`);
    }
  }
});

t.test('one-call native convs (blocks of tiles: bands of rows, several images) give the phase-by-phase bits', { skip }, async (t) => {
  // Blocks are about 384 KiB of planes, at least 64 tiles: 8 + 8 channels on 61 x 57 (F(4x4): 16 x 15 tiles) or
  // 41 x 37 (F(2x2): 21 x 19) split each image into bands of tile rows; small maps put several images in a block.
  const cases = [
    convCase('same', { b: 2, h: 61, w: 57, cin: 8, cout: 8 }),
    convCase(ASYMMETRIC, { b: 1, h: 41, w: 37, cin: 8, cout: 8 }),
    convCase('valid', { b: 3, h: 50, w: 66, cin: 12, cout: 4 * randInt(2, 5) }),
    convCase('same', { b: 16, h: 4, w: 4, cin: 128, cout: 64 }),
    convCase('same', { b: 9, h: 8, w: 8, cin: 16, cout: 32 }),
    convCase('same', { b: 5, h: 16, w: 15, cin: 32, cout: 16 }),
    convCase('same', { b: 1, h: 1, w: 1, cin: 8, cout: 8 }),
  ];
  for (const c of cases) {
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const outShape = tf.backend_util.computeConv2DInfo(c.xs, c.ws, 1, 1, c.pad).outShape;
    const f = convAndGrads(c, xv, wv, bv, randn(outShape));
    for (const mode of ['f2', 'f4'] as const) {
      const fused = await withMode(mode, () => on('wasm', f));
      const previous = setNativeWinogradFused(false);
      const phases = await withMode(mode, () => on('wasm', f)).finally(() => setNativeWinogradFused(previous));
      OUTPUTS.forEach((name, i) => t.ok(sameBits(fused[i], phases[i]), `${mode} ${name} ${c.label}: same bits`));
    }
  }
});

t.test('bad one-call conv calls throw errors that name the export and the operand', { skip }, async (t) => {
  const addon = nativeAddon() as NativeAddon;
  const heap = new ArrayBuffer(1 << 16);
  // x [1, 8, 8, 8] at 0, filter [3, 3, 8, 8] after it, y after that: 2048 + 576 + 512 floats fit in 64 KiB.
  const [x, filter, y] = [0, 4 * 512, 4 * (512 + 576)];
  t.doesNotThrow(() => addon.winogradConv(heap, 4, x, filter, 0, -1, y, 1, 8, 8, 8, 8, 8, 8, 1, 1), 'a valid call');
  t.throws(() => addon.winogradConv(heap, 4, x, filter, 0, -1, y, 1, 8, 8, 6, 8, 8, 8, 1, 1), /winogradConv: inChannels must be a multiple of 4/);
  t.throws(() => addon.winogradConv(heap, 4, x, filter, 0, -1, 64000, 1, 8, 8, 8, 8, 8, 8, 1, 1), /winogradConv: y spans bytes/);
  t.throws(() => addon.winogradConv(heap, 4, x, filter, 0, -1, x, 1, 8, 8, 8, 8, 8, 8, 1, 1), /winogradConv: the output y overlaps the input x/);
  t.throws(() => addon.winogradConv(heap, 4, x, filter, 2 as 1, -1, y, 1, 8, 8, 8, 8, 8, 8, 1, 1), /winogradConv: flip must be 0 or 1/);
  t.throws(() => addon.winogradConv(heap, 3 as 4, x, filter, 0, -1, y, 1, 8, 8, 8, 8, 8, 8, 1, 1), /winogradConv: tile must be 2/);
  t.throws(() => addon.winogradConvFilterGradient(heap, 2, x, y, x, 1, 8, 8, 8, 8, 8, 8, 1, 1), /winogradConvFilterGradient: the output dw overlaps the input x/);
  t.throws(() => (addon.winogradConv as unknown as (...a: unknown[]) => void)(heap, 4, x), /winogradConv: expected 16 arguments/);
});

t.test('gradients on the native route (products and transforms) match central finite differences', { skip }, async (t) => {
  await tf.setBackend('wasm');
  for (const c of [convCase(ASYMMETRIC, { b: 2, h: 9, w: 8, cin: 12, cout: 16 }), convCase('same', { b: 1, h: 10, w: 7, cin: 20, cout: 8 })]) {
    const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([c.ws[3]])];
    const y = (xa: Float32Array, wa: Float32Array): Float32Array =>
      tf.tidy(() => tf.fused.conv2d({ x: tf.tensor4d(xa, c.xs), filter: tf.tensor4d(wa, c.ws), strides: 1, pad: c.pad, bias: tf.tensor1d(bv) }).dataSync()) as Float32Array;
    const r = randn([y(xv, wv).length]);
    // loss = sum(r y) + sum(y^2) / 2, summed in float64: quadratic along a line, so the central difference is
    // exact up to the conv's float32 rounding.
    const loss = (ya: Float32Array): number => ya.reduce((acc, yi, i) => acc + r[i] * yi + 0.5 * yi * yi, 0);
    const [dx, dw] = [randn([xv.length]), randn([wv.length])];
    for (const mode of ['f2', 'f4'] as const) {
      await withMode(mode, async () => {
        const rt = tf.tensor(r, [r.length]);
        const grads = tf.tidy(() =>
          tf.grads((xi: tf.Tensor, wi: tf.Tensor): tf.Scalar => {
            const out = tf.fused.conv2d({ x: xi as tf.Tensor4D, filter: wi as tf.Tensor4D, strides: 1, pad: c.pad, bias: tf.tensor1d(bv) }).reshape([-1]);
            return out.mul(rt).sum().add(out.square().sum().mul(0.5));
          })([tf.tensor4d(xv, c.xs), tf.tensor4d(wv, c.ws)]),
        );
        const [gx, gw] = (await Promise.all(grads.map((g) => g.data()))) as Float32Array[];
        tf.dispose([rt, ...grads]);
        const eps = 0.1;
        const checks: Array<[string, Float32Array, Float32Array, (s: number) => Float32Array]> = [
          ['input', dx, gx, (s) => y(xv.map((q, i) => q + s * dx[i]), wv)],
          ['filter', dw, gw, (s) => y(xv, wv.map((q, i) => q + s * dw[i]))],
        ];
        for (const [name, v, g, perturbed] of checks) {
          const numeric = (loss(perturbed(eps)) - loss(perturbed(-eps))) / (2 * eps);
          const analytic = g.reduce((acc, gi, i) => acc + gi * v[i], 0);
          const rel = Math.abs(numeric - analytic) / Math.abs(analytic);
          t.ok(rel < 1e-3, `${mode} ${name} direction, ${c.label}: difference ${numeric.toFixed(4)} vs gradient ${analytic.toFixed(4)} (rel ${rel.toExponential(1)})`);
        }
      });
    }
  }
});

t.test('the native route: repeats and batch splits give the same bits', { skip }, async (t) => {
  const c = convCase('same', { b: 5, h: 9, w: 10, cin: 12, cout: 16 });
  const [xv, wv, bv] = [randn(c.xs), randn(c.ws), randn([16])];
  const f = convAndGrads(c, xv, wv, bv, randn([5, 9, 10, 16]));
  for (const mode of ['f2', 'f4'] as const) {
    const first = await withMode(mode, () => on('wasm', f));
    const again = await withMode(mode, () => on('wasm', f));
    t.ok(OUTPUTS.every((_, i) => sameBits(first[i], again[i])), `${mode}: a repeat gives the same bits for every output`);
    // One byte of scratch budget: every image its own part, the filter gradient accumulated over 5 calls.
    const previous = setWinogradScratchLimit(1);
    try {
      const parts = await withMode(mode, () => on('wasm', f));
      OUTPUTS.forEach((name, i) => t.ok(sameBits(parts[i], first[i]), `${mode}: ${name} in parts of one image gives the same bits`));
    } finally {
      setWinogradScratchLimit(previous);
    }
  }
});
