/**
 * Winograd convolutions on the tfjs wasm backend: the forward pass and the filter gradient of every 3x3, stride-1
 * NHWC convolution whose channel counts are multiples of 4 (the input gradient is a forward convolution with the
 * flipped filter, so it takes the same path). A 3x3 conv then costs 16 or 36 independent matrix products with a
 * fraction of the direct method's multiply-adds. The transforms run in the project's own small wasm module
 * (winograd.c, SIMD128), which works in place on the tfjs heap: it imports the backend's `WebAssembly.Memory`, so
 * no tensor is copied in or out. When the native kernels (native/) are loaded, a conv (or filter gradient) is ONE
 * native call (`winogradConv`, `winogradConvFilterGradient`: native/winograd_conv.cc runs the tiles in blocks
 * whose planes stay in L2, in native scratch) on the same winograd.c compiled natively (4-16 lanes) and the
 * native GEMM; `setNativeWinogradFused(false)` runs it phase by phase instead (the per-plane products on the
 * native GEMM, `gemmPlanes`, and the addon's range-checked transform exports, through heap planes), and
 * `setNativeWinogradTransforms(false)` keeps the transforms in wasm with the products native. Without the native
 * kernels everything runs in the wasm module (winograd.c, gemm.c). All builds of a transform give the same bits,
 * and the one-call route gives the phase-by-phase bits. Heap scratch planes (2-4x the input and output sizes, at
 * most about 256 MB: larger batches are processed in parts) live for one call.
 *
 * Two variants: F(2x2, 3x3) (16 planes, 16/36 of the direct multiply-adds) and F(4x4, 3x3) (36 planes, 36/144),
 * chosen per conv by `WinogradMode`. Accuracy against exact convolution (float32, random data, max error relative
 * to the largest output, measured here): F(2x2) 1-2e-6 forward and 4-8e-6 for filter gradients, like the stock
 * direct kernels; F(4x4), from its larger transform constants, up to 1.2e-5 forward at 256 channels and 2-4e-5
 * for filter gradients summed over 64x64 images. Both are far below the noise of stochastic gradients; tests check
 * both against the cpu backend.
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import { type NativeAddon, nativeAddon } from '../native/addon.js';
import { type WasmBackendInternals, Scratch, heapBuffer, heapOffset, ownKernels } from './module.js';

/** The transforms of one Winograd variant (F(2x2, 3x3) or F(4x4, 3x3)), as exported by winograd.c. */
interface Transforms {
  input(x: number, batch: number, h: number, w: number, c: number, padTop: number, padLeft: number, tilesH: number, tilesW: number, table: number): void;
  filter(g: number, cin: number, cout: number, table: number): void;
  output(table: number, bias: number, batch: number, outH: number, outW: number, c: number, tilesH: number, tilesW: number, y: number): void;
  gradOutput(dy: number, batch: number, outH: number, outW: number, c: number, tilesH: number, tilesW: number, table: number): void;
  gradFilter(table: number, cin: number, cout: number, dg: number): void;
}

interface WinogradExports {
  winograd_multiply(planes: number, vTable: number, uTable: number, tiles: number, cin: number, cout: number, outTable: number): void;
  winograd_accumulate(planes: number, vTable: number, wTable: number, tiles: number, cin: number, cout: number, addToOut: number, outTable: number): void;
  [name: string]: (...args: number[]) => void;
}

/** A Winograd variant: output tile size, number of transformed planes, transforms. */
interface Variant {
  tile: number;
  planes: number;
  transforms: Transforms;
}

/**
 * Whether the transforms run natively when the native kernels are loaded (default), or in wasm with only the
 * products native: for benchmarks and tests that compare the routes in one process.
 */
let nativeTransforms = true;

/** Turns the native transforms on or off on this thread (see `nativeTransforms`); returns the previous setting. */
export function setNativeWinogradTransforms(on: boolean): boolean {
  const previous = nativeTransforms;
  nativeTransforms = on;
  return previous;
}

/**
 * Whether, with the native transforms, a conv runs as ONE native call (`winogradConv` / `winogradConvFilterGradient`:
 * tiles in cache-sized blocks, native scratch) (default), or phase by phase through heap planes (gemmPlanes and the
 * transform exports). Both give the same bits; for benchmarks and tests that compare them.
 */
let fusedConvs = true;

/** Turns the one-call native convs on or off on this thread (see `fusedConvs`); returns the previous setting. */
export function setNativeWinogradFused(on: boolean): boolean {
  const previous = fusedConvs;
  fusedConvs = on;
  return previous;
}

/** The addon when convs run as one native call (native transforms on, addon loaded, `fusedConvs`), else undefined. */
function fusedNative(): NativeAddon | undefined {
  return nativeTransforms && fusedConvs ? nativeAddon() : undefined;
}

/** The wasm module's transforms of one variant. */
function wasmTransforms(wasm: WinogradExports, tile: 2 | 4): Transforms {
  const prefix = tile === 2 ? 'winograd_' : 'winograd4_';
  const fn = (name: string) => wasm[prefix + name];
  return { input: fn('input'), filter: fn('filter'), output: fn('output'), gradOutput: fn('grad_output'), gradFilter: fn('grad_filter') };
}

/**
 * The same transforms compiled natively (the addon's winograd* exports, range-checked), on the same heap. The
 * heap's buffer is read at every call: an allocation between calls may have grown the memory.
 */
function nativeTransformsOf(native: NativeAddon, backend: WasmBackendInternals, tile: 2 | 4): Transforms {
  const heap = () => heapBuffer(backend);
  return {
    input: (x, batch, h, w, c, padTop, padLeft, tilesH, tilesW, table) =>
      native.winogradInput(heap(), tile, x, batch, h, w, c, padTop, padLeft, tilesH, tilesW, table),
    filter: (g, cin, cout, table) => native.winogradFilter(heap(), tile, g, cin, cout, table),
    // The wasm export takes bias offset 0 for none (no tensor lives at address 0), the addon -1.
    output: (table, bias, batch, outH, outW, c, tilesH, tilesW, y) =>
      native.winogradOutput(heap(), tile, table, bias === 0 ? -1 : bias, batch, outH, outW, c, tilesH, tilesW, y),
    gradOutput: (dy, batch, outH, outW, c, tilesH, tilesW, table) =>
      native.winogradGradOutput(heap(), tile, dy, batch, outH, outW, c, tilesH, tilesW, table),
    gradFilter: (table, cin, cout, dg) => native.winogradGradFilter(heap(), tile, table, cin, cout, dg),
  };
}

function variant(wasm: WinogradExports, backend: WasmBackendInternals, tile: 2 | 4): Variant {
  const native = nativeTransforms ? nativeAddon() : undefined;
  return {
    tile,
    planes: tile === 2 ? 16 : 36,
    transforms: native ? nativeTransformsOf(native, backend, tile) : wasmTransforms(wasm, tile),
  };
}

/**
 * Which Winograd variant eligible convs use: `auto` (default) takes F(4x4, 3x3) when the output has at least
 * one full 4x4 tile each way, else F(2x2, 3x3); `f2` and `f4` force one (f4 still needs a 4x4 output); `off`
 * sends every conv to the stock XNNPACK kernels. Set with the `WELLSPRING_WINOGRAD` environment variable (read
 * at start-up) or `setWinogradMode`.
 */
export type WinogradMode = 'auto' | 'f2' | 'f4' | 'off';
const MODES: readonly WinogradMode[] = ['auto', 'f2', 'f4', 'off'];

function parseMode(value: string | undefined): WinogradMode {
  if (value === undefined || value === '') return 'auto';
  if (!(MODES as readonly string[]).includes(value)) {
    throw new Error(`WELLSPRING_WINOGRAD="${value}": expected one of ${MODES.join(', ')}`);
  }
  return value as WinogradMode;
}

let mode: WinogradMode = parseMode(process.env.WELLSPRING_WINOGRAD);

/** Sets the Winograd mode for this thread (see `WinogradMode`); returns the previous one. */
export function setWinogradMode(next: WinogradMode): WinogradMode {
  const previous = mode;
  mode = parseMode(next);
  return previous;
}

/** The Winograd mode in effect on this thread. */
export function winogradMode(): WinogradMode {
  return mode;
}

/** The output tile of the variant a conv with this output size takes (see `WinogradMode`). */
function chooseTile(outHeight: number, outWidth: number): 2 | 4 {
  return mode !== 'f2' && outHeight >= 4 && outWidth >= 4 ? 4 : 2;
}

function chooseVariant(wasm: WinogradExports, backend: WasmBackendInternals, outHeight: number, outWidth: number): Variant {
  return variant(wasm, backend, chooseTile(outHeight, outWidth));
}

/**
 * Whether a conv takes the Winograd path: mode not `off`, 3x3 filter, stride and dilation 1, channel counts
 * multiples of 4 and at least 8 (thinner convs are cheap, and XNNPACK handles their odd shapes).
 */
export function winogradEligible(filterShape: readonly number[], strides: readonly number[], dilations: readonly number[]): boolean {
  const [kh, kw, cin, cout] = filterShape;
  return (
    mode !== 'off' &&
    kh === 3 && kw === 3 && strides.every((s) => s === 1) && dilations.every((d) => d === 1) &&
    cin % 4 === 0 && cout % 4 === 0 && cin >= 8 && cout >= 8
  );
}

/**
 * The channel counts a 3x3 stride-1 conv would need for the Winograd path (each rounded up to a multiple of 4, at
 * least 8), or undefined when it cannot take it whatever its channels (mode `off`, other kernel, stride or
 * dilation). For filter gradients of thin convs (the DCAE's 5-channel ends): zero channels added to the input or
 * output gradient add zero rows or columns to the gradient, which are then cut off.
 */
export function winogradChannels(filterShape: readonly number[], strides: readonly number[], dilations: readonly number[]): [number, number] | undefined {
  const [kh, kw, cin, cout] = filterShape;
  if (mode === 'off' || kh !== 3 || kw !== 3 || !strides.every((s) => s === 1) || !dilations.every((d) => d === 1)) return undefined;
  const round = (c: number) => Math.max(8, Math.ceil(c / 4) * 4);
  return [round(cin), round(cout)];
}

/** Geometry of a stride-1 3x3 conv: batch, input and output sizes, zero padding before the first row and column. */
export interface WinogradGeometry {
  batch: number;
  height: number;
  width: number;
  outHeight: number;
  outWidth: number;
  padTop: number;
  padLeft: number;
}

/** Geometry of a Winograd-eligible conv from tfjs' conv info (padding resolved to top/left amounts). */
export function winogradGeometry(info: {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  padInfo: { top: number; left: number };
}): WinogradGeometry {
  return {
    batch: info.batchSize,
    height: info.inHeight,
    width: info.inWidth,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/**
 * Scratch budget of one call: a batch whose transformed planes would need more is processed in parts of whole
 * images (at least one), so the Winograd path never needs much more heap than the conv's own tensors. The parts
 * give bit-identical results (each output tile, and each filter-gradient sum, is computed in the same order).
 */
let scratchLimit = 256 * 2 ** 20;

/** Sets the scratch budget in bytes (default 256 MiB; lower it on a tight heap); returns the previous one. */
export function setWinogradScratchLimit(bytes: number): number {
  if (!(bytes > 0)) throw new Error(`Winograd scratch limit must be a positive number of bytes, got ${bytes}`);
  const previous = scratchLimit;
  scratchLimit = bytes;
  return previous;
}

/** Tiling of a conv's output for one variant, and the batch split that keeps scratch under the budget. */
function plan(g: WinogradGeometry, tile: number, planes: number, channels: number) {
  const tilesH = Math.ceil(g.outHeight / tile);
  const tilesW = Math.ceil(g.outWidth / tile);
  const perImage = planes * tilesH * tilesW * channels * 4;
  const part = Math.max(1, Math.min(g.batch, Math.floor(scratchLimit / perImage)));
  return { tilesH, tilesW, part, partTiles: part * tilesH * tilesW };
}

/**
 * y = conv3x3(x, filter) + bias for x [B, H, W, Cin] (heap tensor), filter [3, 3, Cin, Cout], bias [Cout] or
 * undefined, with zero padding `padTop`/`padLeft` and the output size in `geometry`. Returns y [B, Ho, Wo, Cout].
 */
export function winogradConv2d(
  backend: WasmBackendInternals,
  x: TensorInfo,
  filter: TensorInfo,
  bias: TensorInfo | undefined,
  g: WinogradGeometry,
): TensorInfo {
  const [cin, cout] = [filter.shape[2], filter.shape[3]];
  const fused = fusedNative();
  if (fused) {
    const y = backend.makeOutput([g.batch, g.outHeight, g.outWidth, cout], 'float32');
    const at = (t: TensorInfo) => heapOffset(backend, t);
    fused.winogradConv(heapBuffer(backend), chooseTile(g.outHeight, g.outWidth), at(x), at(filter), 0, bias ? at(bias) : -1, at(y),
      g.batch, g.height, g.width, cin, cout, g.outHeight, g.outWidth, g.padTop, g.padLeft);
    return y;
  }
  const wasm = ownKernels(backend) as unknown as WinogradExports;
  const { tile, planes, transforms } = chooseVariant(wasm, backend, g.outHeight, g.outWidth);
  const { tilesH, tilesW, part, partTiles } = plan(g, tile, planes, cin + cout);
  const scratch = new Scratch(backend);
  try {
    const [vTable, uTable, mTable] = [scratch.planes(planes, [partTiles, cin]), scratch.planes(planes, [cin, cout]), scratch.planes(planes, [partTiles, cout])];
    const y = backend.makeOutput([g.batch, g.outHeight, g.outWidth, cout], 'float32');
    transforms.filter(scratch.offset(filter), cin, cout, uTable);
    const biasOffset = bias ? scratch.offset(bias) : 0;
    for (let b0 = 0; b0 < g.batch; b0 += part) {
      const n = Math.min(part, g.batch - b0);
      const xAt = scratch.offset(x) + b0 * g.height * g.width * cin * 4;
      const yAt = scratch.offset(y) + b0 * g.outHeight * g.outWidth * cout * 4;
      transforms.input(xAt, n, g.height, g.width, cin, g.padTop, g.padLeft, tilesH, tilesW, vTable);
      const native = nativeAddon();
      if (native) native.gemmPlanes(heapBuffer(backend), planes, vTable, uTable, mTable, n * tilesH * tilesW, cin, cout, false, false);
      else wasm.winograd_multiply(planes, vTable, uTable, n * tilesH * tilesW, cin, cout, mTable);
      transforms.output(mTable, biasOffset, n, g.outHeight, g.outWidth, cout, tilesH, tilesW, yAt);
    }
    return y;
  } finally {
    scratch.release();
  }
}

/**
 * The input gradient dx [B, H, W, Cin] of y = conv3x3(x, W) (stride 1) from dy [B, Ho, Wo, Cout] and W [3, 3, Cin,
 * Cout], as the forward conv of dy with W flipped (in/out swapped), in one native call that flips W itself, when the
 * one-call native route is active (`fusedConvs`) and the flipped conv is Winograd-eligible; else undefined (the
 * caller flips and convolves). `g` is the geometry of that conv over dy: height/width Ho/Wo, output H/W, and its
 * top/left zero padding (kh - 1 - the forward conv's), which must not be negative.
 */
export function winogradConvInputGradient(backend: WasmBackendInternals, dy: TensorInfo, filter: TensorInfo, g: WinogradGeometry): TensorInfo | undefined {
  const [kh, kw, cin, cout] = filter.shape;
  const fused = fusedNative();
  if (!fused || dy.dtype !== 'float32' || g.padTop < 0 || g.padLeft < 0 || !winogradEligible([kh, kw, cout, cin], [1, 1], [1, 1])) return undefined;
  if (g.outHeight <= 0 || g.outWidth <= 0) return undefined;
  const dx = backend.makeOutput([g.batch, g.outHeight, g.outWidth, cin], 'float32');
  const at = (t: TensorInfo) => heapOffset(backend, t);
  fused.winogradConv(heapBuffer(backend), chooseTile(g.outHeight, g.outWidth), at(dy), at(filter), 1, -1, at(dx),
    g.batch, g.height, g.width, cout, cin, g.outHeight, g.outWidth, g.padTop, g.padLeft);
  return dx;
}

/**
 * The filter gradient dW [3, 3, Cin, Cout] of y = conv3x3(x, W) from x [B, H, W, Cin] and dy [B, Ho, Wo, Cout],
 * with the same zero padding as the forward conv.
 */
export function winogradFilterGradient(backend: WasmBackendInternals, x: TensorInfo, dy: TensorInfo, g: WinogradGeometry): TensorInfo {
  const cin = x.shape[3];
  const cout = dy.shape[3];
  const fused = fusedNative();
  if (fused) {
    const dw = backend.makeOutput([3, 3, cin, cout], 'float32');
    const at = (t: TensorInfo) => heapOffset(backend, t);
    fused.winogradConvFilterGradient(heapBuffer(backend), chooseTile(g.outHeight, g.outWidth), at(x), at(dy), at(dw),
      g.batch, g.height, g.width, cin, cout, g.outHeight, g.outWidth, g.padTop, g.padLeft);
    return dw;
  }
  const wasm = ownKernels(backend) as unknown as WinogradExports;
  const { tile, planes, transforms } = chooseVariant(wasm, backend, g.outHeight, g.outWidth);
  const { tilesH, tilesW, part, partTiles } = plan(g, tile, planes, cin + cout);
  const scratch = new Scratch(backend);
  try {
    const [vTable, wTable, uTable] = [scratch.planes(planes, [partTiles, cin]), scratch.planes(planes, [partTiles, cout]), scratch.planes(planes, [cin, cout])];
    const dw = backend.makeOutput([3, 3, cin, cout], 'float32');
    for (let b0 = 0; b0 < g.batch; b0 += part) {
      const n = Math.min(part, g.batch - b0);
      const xAt = scratch.offset(x) + b0 * g.height * g.width * cin * 4;
      const dyAt = scratch.offset(dy) + b0 * g.outHeight * g.outWidth * cout * 4;
      transforms.input(xAt, n, g.height, g.width, cin, g.padTop, g.padLeft, tilesH, tilesW, vTable);
      transforms.gradOutput(dyAt, n, g.outHeight, g.outWidth, cout, tilesH, tilesW, wTable);
      const native = nativeAddon();
      // dW planes [Cin, Cout] (+)= V^T W: M = Cin, K = tiles (V stored [tiles, Cin], read transposed), N = Cout.
      if (native) native.gemmPlanes(heapBuffer(backend), planes, vTable, wTable, uTable, cin, n * tilesH * tilesW, cout, true, b0 > 0);
      else wasm.winograd_accumulate(planes, vTable, wTable, n * tilesH * tilesW, cin, cout, b0 > 0 ? 1 : 0, uTable);
    }
    transforms.gradFilter(uTable, cin, cout, scratch.offset(dw));
    return dw;
  } finally {
    scratch.release();
  }
}
