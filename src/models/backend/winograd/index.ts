/**
 * Winograd F(2x2, 3x3) convolutions on the tfjs wasm backend: the forward pass and the filter gradient of every
 * 3x3, stride-1 NHWC convolution whose channel counts are multiples of 4 (the input gradient is a forward
 * convolution with the flipped filter, so it takes the same path). A 3x3 conv then costs 16 matrix products with
 * 16/36 of the direct method's multiply-adds. Transforms and products run in the project's own small wasm module
 * (winograd.c, SIMD128), which works in place on the tfjs heap: it imports the backend's `WebAssembly.Memory`, so
 * no tensor is copied in or out. Scratch planes (about 4x the input and output sizes) live for one call.
 *
 * Accuracy: the transforms use only +, - and x0.5, so results match direct convolution to float32 rounding
 * (relative error about 1e-6 at these channel counts; tests check against the cpu backend).
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import { winogradWasmBase64 } from './module.generated.js';

/** The parts of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The parts of tfjs-backend-wasm's `BackendWasm` these kernels use (tfjs does not export them as types). */
export interface WasmBackendInternals {
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  disposeData(dataId: object): boolean;
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { HEAP32: Int32Array; asm?: { memory?: object } };
}

interface WinogradExports {
  winograd_input(x: number, batch: number, h: number, w: number, c: number, padTop: number, padLeft: number, tilesH: number, tilesW: number, table: number): void;
  winograd_filter(g: number, cin: number, cout: number, table: number): void;
  winograd_output(table: number, bias: number, batch: number, outH: number, outW: number, c: number, tilesH: number, tilesW: number, y: number): void;
  winograd_grad_output(dy: number, batch: number, outH: number, outW: number, c: number, tilesH: number, tilesW: number, table: number): void;
  winograd_grad_filter(table: number, cin: number, cout: number, dg: number): void;
  winograd_multiply(vTable: number, uTable: number, tiles: number, cin: number, cout: number, outTable: number): void;
  winograd_accumulate(vTable: number, wTable: number, tiles: number, cin: number, cout: number, outTable: number): void;
}

const instances = new WeakMap<object, WinogradExports>();
let compiled: object | undefined;

/** The Winograd module instantiated on this backend's heap (once per backend, i.e. per thread). */
function kernels(backend: WasmBackendInternals): WinogradExports {
  let found = instances.get(backend);
  if (!found) {
    const memory = backend.wasm.asm?.memory;
    if (!(memory instanceof Wasm.Memory)) {
      throw new Error('winograd kernels: the tfjs wasm backend does not expose its WebAssembly.Memory (asm.memory)');
    }
    compiled ??= new Wasm.Module(Buffer.from(winogradWasmBase64, 'base64'));
    found = new Wasm.Instance(compiled, { env: { memory } }).exports as unknown as WinogradExports;
    instances.set(backend, found);
  }
  return found;
}

/** Whether a conv can take the Winograd path: 3x3 filter, stride and dilation 1, channels multiples of 4. */
export function winogradEligible(filterShape: readonly number[], strides: readonly number[], dilations: readonly number[]): boolean {
  const [kh, kw, cin, cout] = filterShape;
  return (
    kh === 3 && kw === 3 && strides.every((s) => s === 1) && dilations.every((d) => d === 1) &&
    cin % 4 === 0 && cout % 4 === 0 && cin >= 8 && cout >= 8
  );
}

/** Geometry of a stride-1 3x3 conv: output size, tiles, padding. */
export interface WinogradGeometry {
  batch: number;
  height: number;
  width: number;
  outHeight: number;
  outWidth: number;
  padTop: number;
  padLeft: number;
}

/** Allocates and frees heap tensors for one kernel call, and fills plane tables. */
class Scratch {
  private readonly held: TensorInfo[] = [];
  constructor(private readonly backend: WasmBackendInternals) {}

  tensor(shape: number[], dtype: 'float32' | 'int32' = 'float32'): TensorInfo {
    const t = this.backend.makeOutput(shape, dtype);
    this.held.push(t);
    return t;
  }

  planes(shape: number[]): TensorInfo[] {
    return Array.from({ length: 16 }, () => this.tensor(shape));
  }


  offset(t: TensorInfo): number {
    const entry = this.backend.dataIdMap.get(t.dataId);
    if (!entry) throw new Error('winograd kernels: tensor is not on the wasm backend');
    return entry.memoryOffset;
  }

  /** An int32 heap array of the planes' offsets. Call after every allocation of the step (growth moves views). */
  table(planes: TensorInfo[]): number {
    const t = this.tensor([planes.length], 'int32');
    const at = this.offset(t) >> 2;
    const heap = this.backend.wasm.HEAP32;
    planes.forEach((p, i) => (heap[at + i] = this.offset(p)));
    return this.offset(t);
  }

  release(): void {
    for (const t of this.held.splice(0)) this.backend.disposeData(t.dataId);
  }
}

const tilesOf = (n: number) => Math.ceil(n / 2);


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
  const wasm = kernels(backend);
  const [cin, cout] = [filter.shape[2], filter.shape[3]];
  const tilesH = tilesOf(g.outHeight);
  const tilesW = tilesOf(g.outWidth);
  const tiles = g.batch * tilesH * tilesW;
  const scratch = new Scratch(backend);
  try {
    const v = scratch.planes([tiles, cin]);
    const u = scratch.planes([cin, cout]);
    const m = scratch.planes([tiles, cout]);
    const y = backend.makeOutput([g.batch, g.outHeight, g.outWidth, cout], 'float32');
    const [vTable, uTable, mTable] = [scratch.table(v), scratch.table(u), scratch.table(m)];
    wasm.winograd_input(scratch.offset(x), g.batch, g.height, g.width, cin, g.padTop, g.padLeft, tilesH, tilesW, vTable);
    wasm.winograd_filter(scratch.offset(filter), cin, cout, uTable);
    wasm.winograd_multiply(vTable, uTable, tiles, cin, cout, mTable);
    const biasOffset = bias ? scratch.offset(bias) : 0;
    wasm.winograd_output(mTable, biasOffset, g.batch, g.outHeight, g.outWidth, cout, tilesH, tilesW, scratch.offset(y));
    return y;
  } finally {
    scratch.release();
  }
}

/**
 * The filter gradient dW [3, 3, Cin, Cout] of y = conv3x3(x, W) from x [B, H, W, Cin] and dy [B, Ho, Wo, Cout],
 * with the same zero padding as the forward conv.
 */
export function winogradFilterGradient(backend: WasmBackendInternals, x: TensorInfo, dy: TensorInfo, g: WinogradGeometry): TensorInfo {
  const wasm = kernels(backend);
  const cin = x.shape[3];
  const cout = dy.shape[3];
  const tilesH = tilesOf(g.outHeight);
  const tilesW = tilesOf(g.outWidth);
  const tiles = g.batch * tilesH * tilesW;
  const scratch = new Scratch(backend);
  try {
    const v = scratch.planes([tiles, cin]);
    const w = scratch.planes([tiles, cout]);
    const u = scratch.planes([cin, cout]);
    const dw = backend.makeOutput([3, 3, cin, cout], 'float32');
    const [vTable, wTable, uTable] = [scratch.table(v), scratch.table(w), scratch.table(u)];
    wasm.winograd_input(scratch.offset(x), g.batch, g.height, g.width, cin, g.padTop, g.padLeft, tilesH, tilesW, vTable);
    wasm.winograd_grad_output(scratch.offset(dy), g.batch, g.outHeight, g.outWidth, cout, tilesH, tilesW, wTable);
    wasm.winograd_accumulate(vTable, wTable, tiles, cin, cout, uTable);
    wasm.winograd_grad_filter(uTable, cin, cout, scratch.offset(dw));
    return dw;
  } finally {
    scratch.release();
  }
}
