/**
 * The project's own wasm module (winograd.c, gemm.c, layers.c; built by scripts/build-wasm.mjs into
 * module.generated.ts) and what its kernels share: instantiation on a tfjs wasm backend's heap, and per-call
 * scratch tensors. The module imports the backend's `WebAssembly.Memory`, so its functions take heap offsets of
 * tfjs tensors and read and write them in place; it has no memory of its own (no data segments, no shadow stack:
 * the build checks both).
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import { wasmModuleBase64 } from './module.generated.js';

/** The parts of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The parts of tfjs-backend-wasm's `BackendWasm` the kernels use (tfjs does not export them as types). */
export interface WasmBackendInternals {
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  disposeData(dataId: object): boolean;
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  wasm: { HEAP32: Int32Array; asm?: { memory?: object } };
}

/** Exported functions of the module, by name (all take and return numbers). */
export type OwnKernels = Record<string, (...args: number[]) => number | undefined>;

const instances = new WeakMap<object, OwnKernels>();
let compiled: object | undefined;

/** The module instantiated on this backend's heap (once per backend, i.e. per thread). */
export function ownKernels(backend: WasmBackendInternals): OwnKernels {
  let found = instances.get(backend);
  if (!found) {
    const memory = backend.wasm.asm?.memory;
    if (!(memory instanceof Wasm.Memory)) {
      throw new Error('wellspring wasm kernels: the tfjs wasm backend does not expose its WebAssembly.Memory (asm.memory)');
    }
    compiled ??= new Wasm.Module(Buffer.from(wasmModuleBase64, 'base64'));
    found = new Wasm.Instance(compiled, { env: { memory } }).exports as OwnKernels;
    instances.set(backend, found);
  }
  return found;
}

/** The heap offset of a tensor of this backend (what the module's functions take as a pointer). */
export function heapOffset(backend: WasmBackendInternals, t: TensorInfo): number {
  const entry = backend.dataIdMap.get(t.dataId);
  if (!entry) throw new Error('wellspring wasm kernels: tensor is not on the wasm backend');
  return entry.memoryOffset;
}

/**
 * The backend's heap as an ArrayBuffer, read now: growing the heap replaces the buffer, so take it after the last
 * allocation before a call that uses it (what the native kernels read and write in place).
 */
export function heapBuffer(backend: WasmBackendInternals): ArrayBuffer {
  const buffer = (backend.wasm.asm?.memory as { buffer?: unknown } | undefined)?.buffer;
  if (!(buffer instanceof ArrayBuffer)) {
    throw new Error('wellspring kernels: the tfjs wasm backend does not expose its memory (asm.memory.buffer)');
  }
  return buffer;
}

/** Allocates and frees heap tensors for one kernel call, and fills tables of their offsets. */
export class Scratch {
  private readonly held: TensorInfo[] = [];
  constructor(private readonly backend: WasmBackendInternals) {}

  /** A heap tensor freed by `release`. */
  tensor(shape: number[], dtype: 'float32' | 'int32' = 'float32'): TensorInfo {
    const t = this.backend.makeOutput(shape, dtype);
    this.held.push(t);
    return t;
  }

  /** The heap offset of a tensor of this backend. */
  offset(t: TensorInfo): number {
    return heapOffset(this.backend, t);
  }

  /**
   * `count` planes of one shape in ONE heap tensor, returned as the heap offset of an int32 table of the planes'
   * offsets (a "plane table" of winograd.c). One allocation instead of `count`: a Winograd call needs 3 tables of
   * 36 planes, and tfjs heap tensors one by one cost more than the small convs' transforms. Consecutive planes are
   * a whole number of 64-byte lines plus one apart: the transforms read or write all planes at the same position
   * at once, and planes a multiple of 4 KiB apart (as 16-128 channel planes are) would all fall in one L1 set.
   */
  planes(count: number, shape: number[]): number {
    const size = shape.reduce((a, b) => a * b, 1);
    const stride = Math.ceil(size / 16) * 16 + 16; // floats: whole 64-byte lines, plus one
    const data = this.tensor([count * stride]);
    const t = this.tensor([count], 'int32');
    const base = this.offset(data);
    const at = this.offset(t) >> 2;
    const heap = this.backend.wasm.HEAP32; // after both allocations (growing the heap replaces HEAP32)
    for (let i = 0; i < count; i++) heap[at + i] = base + i * stride * 4;
    return this.offset(t);
  }

  /** Frees every tensor allocated through this scratch. */
  release(): void {
    for (const t of this.held.splice(0)) this.backend.disposeData(t.dataId);
  }
}
