/**
 * Loads the native kernels (addon.cc, gemm.cc; built at install into `<package root>/build/wellspring_native.node`
 * by scripts/build-native.mjs) once per thread, and says whether they are in use. `WELLSPRING_NATIVE` chooses:
 * `off` (never load), `auto` or unset (the widest ISA the CPU has), or `avx512` / `avx2` / `generic` (that path;
 * not loaded when the CPU lacks it). When the module is missing or fails to load, the wasm kernels run and
 * `nativeKernels().reason` says why.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type NativeIsa = 'avx512' | 'avx2' | 'generic';

export interface NativeKernelsInfo {
  loaded: boolean;
  /** The micro-kernel in use, when loaded. */
  isa?: NativeIsa;
  /** Why the native kernels are not in use, when not loaded. */
  reason?: string;
}

/** The addon's exports (see addon.cc). Offsets are byte offsets into `heap`; bias -1 for none. */
export interface NativeAddon {
  gemm(
    heap: ArrayBuffer,
    a: number,
    b: number,
    c: number,
    bias: number,
    batch: number,
    strideA: number,
    strideB: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
  ): void;
  /**
   * Per-plane products of the Winograd convolutions: for p < planes, C_p = op(A_p) B_p (or C_p += ... with
   * `accumulate`), op(A_p) m x k (stored [k, m] with transA), B_p [k, n], C_p [m, n]; the tables are heap byte
   * offsets of int32 arrays holding each plane's byte offset.
   */
  gemmPlanes(
    heap: ArrayBuffer,
    planes: number,
    aTable: number,
    bTable: number,
    cTable: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    accumulate: boolean,
  ): void;
  /**
   * The Winograd transforms of wasm/winograd.c compiled natively (F(2x2, 3x3) for tile 2, F(4x4, 3x3) for tile
   * 4), with the wasm exports' arguments after `heap` and `tile`: heap byte offsets (bias -1: none) and plane
   * tables (heap byte offsets of int32 arrays of 16 / 36 plane offsets). Every operand and plane is range-checked
   * first (a RangeError names the export and the place).
   */
  winogradInput(heap: ArrayBuffer, tile: 2 | 4, x: number, batch: number, height: number, width: number, channels: number, padTop: number, padLeft: number, tilesH: number, tilesW: number, table: number): void;
  winogradFilter(heap: ArrayBuffer, tile: 2 | 4, g: number, inChannels: number, outChannels: number, table: number): void;
  winogradOutput(heap: ArrayBuffer, tile: 2 | 4, table: number, bias: number, batch: number, outH: number, outW: number, channels: number, tilesH: number, tilesW: number, y: number): void;
  winogradGradOutput(heap: ArrayBuffer, tile: 2 | 4, dy: number, batch: number, outH: number, outW: number, channels: number, tilesH: number, tilesW: number, table: number): void;
  winogradGradFilter(heap: ArrayBuffer, tile: 2 | 4, table: number, inChannels: number, outChannels: number, dg: number): void;
  /**
   * A whole Winograd conv y = conv3x3(x, filter) + bias (bias -1: none) in one call, tiles in blocks whose planes
   * stay in cache (native/winograd_conv.h); the bits of the transforms and gemmPlanes above. Heap byte offsets.
   * With flip 1 the filter is [3, 3, Cout, Cin], used flipped (`flipFilter`): a conv's input gradient.
   */
  winogradConv(heap: ArrayBuffer, tile: 2 | 4, x: number, filter: number, flip: 0 | 1, bias: number, y: number, batch: number, height: number, width: number, inChannels: number, outChannels: number, outH: number, outW: number, padTop: number, padLeft: number): void;
  /** The filter gradient dw [3, 3, Cin, Cout] of such a conv from x and dy, in one call (as `winogradConv`). */
  winogradConvFilterGradient(heap: ArrayBuffer, tile: 2 | 4, x: number, dy: number, dw: number, batch: number, height: number, width: number, inChannels: number, outChannels: number, outH: number, outW: number, padTop: number, padLeft: number): void;
  /**
   * dst = src with its axes permuted (4-byte elements: a Float32Array view of int32 data works too); shapeAndPerm
   * holds src's shape then the permutation.
   */
  permute(src: Float32Array, dst: Float32Array, shapeAndPerm: Float64Array): void;
  /** dst [kh, kw, out, in] = src [kh, kw, in, out] with both spatial axes reversed (a conv input gradient's filter). */
  flipFilter(src: Float32Array, dst: Float32Array, kh: number, kw: number, inChannels: number, outChannels: number): void;
  /**
   * One fused AdamW (+ EMA) update of one parameter in place (optim.cc; the math in train/fused.ts): w, m, v, g,
   * ema (null: none) of one length; `constants` the 14 numbers of `adamwConstants` (train/fused.ts).
   */
  adamw(w: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, ema: Float32Array | null, constants: Float64Array): void;
  /** ema <- decay ema + oneMinusDecay w. */
  emaUpdate(ema: Float32Array, w: Float32Array, decay: number, oneMinusDecay: number): void;
  /** out <- weight src (first) or out + weight src (double, rounded to float32). */
  accumulate(out: Float32Array, src: Float32Array, weight: number, first: boolean): void;
  /** Sum of the squares, float32 additions in order (as tfjs' square().sum()). */
  sumSquares(x: Float32Array): number;
  /** out[c] = sum over rows of x[r * out.length + c], in double, rounded once (reduce.cc); no overlap. */
  columnSums(x: Float32Array, out: Float32Array): void;
  /** The rotary embedding (rotary.cc; the math in wasm/rotary.ts): y from x, cos, sin, pairs (i, i + half). */
  rotary(x: Float32Array, cos: Float32Array, sin: Float32Array, half: number, y: Float32Array): void;
  /** Its gradient: dx, and dcos / dsin summed over the batch. */
  rotaryGrad(dy: Float32Array, x: Float32Array, cos: Float32Array, sin: Float32Array, half: number, dx: Float32Array, dcos: Float32Array, dsin: Float32Array): void;
  isa(): NativeIsa;
  setIsa(isa: NativeIsa): NativeIsa;
  supported(): NativeIsa[];
  peakGflops(isa: NativeIsa, seconds: number): number;
}

export const NATIVE_MODULE_FILE = 'wellspring_native.node';
const ISAS: readonly string[] = ['avx512', 'avx2', 'generic'];

/** The folder holding the package's package.json, from this file (src/... under a TS loader, or dist/src/...). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`wellspring: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Where the built module is looked for. */
export function nativeModulePath(): string {
  return join(packageRoot(), 'build', NATIVE_MODULE_FILE);
}

let state: { addon?: NativeAddon; info: NativeKernelsInfo } | undefined;
let enabled = true;

function load(): { addon?: NativeAddon; info: NativeKernelsInfo } {
  const setting = (process.env.WELLSPRING_NATIVE ?? 'auto').trim().toLowerCase();
  if (setting === 'off') return { info: { loaded: false, reason: 'disabled by WELLSPRING_NATIVE=off' } };
  if (setting !== 'auto' && setting !== '' && !ISAS.includes(setting)) {
    return { info: { loaded: false, reason: `WELLSPRING_NATIVE="${setting}" is not one of off, auto, avx512, avx2, generic` } };
  }
  let path: string;
  try {
    path = nativeModulePath();
  } catch (err) {
    return { info: { loaded: false, reason: (err as Error).message } };
  }
  if (!existsSync(path)) {
    return { info: { loaded: false, reason: `not built (${path} is missing; npm run build:native builds it)` } };
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    return { info: { loaded: false, reason: `${path} failed to load: ${(err as Error).message.split('\n')[0]}` } };
  }
  if (setting !== 'auto' && setting !== '') {
    if (!addon.supported().includes(setting as NativeIsa)) {
      return { info: { loaded: false, reason: `WELLSPRING_NATIVE=${setting}: this CPU does not support it` } };
    }
    addon.setIsa(setting as NativeIsa);
  }
  return { addon, info: { loaded: true, isa: addon.isa() } };
}

/** Whether the native kernels are in use on this thread, with the ISA or the reason they are not. */
export function nativeKernels(): NativeKernelsInfo {
  state ??= load();
  if (state.addon && !enabled) return { loaded: false, reason: 'turned off by setNativeKernels(false)' };
  return { ...state.info };
}

/** The loaded addon, or undefined when the native kernels are not in use. */
export function nativeAddon(): NativeAddon | undefined {
  state ??= load();
  return enabled ? state.addon : undefined;
}

/**
 * Turns the native kernels off (the wasm paths run) or back on, on this thread, and returns the previous setting:
 * for benchmarks and tests that compare the routes in one process. `WELLSPRING_NATIVE=off` is the setting for runs.
 */
export function setNativeKernels(on: boolean): boolean {
  const previous = enabled;
  enabled = on;
  return previous;
}
