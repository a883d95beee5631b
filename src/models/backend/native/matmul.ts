/**
 * Matrix products of the tfjs wasm backend through the native GEMM (gemm.cc): the addon reads and writes the
 * backend's heap in place (its `WebAssembly.Memory` buffer, taken afresh at each call since growing the heap
 * replaces it) at the tensors' heap offsets, so nothing is copied. Transposed operands are read as they lie (the
 * GEMM packs them), a batch operand of size 1 is shared by every entry (stride 0), and a bias of length N is added
 * to every row.
 */
import { type TensorInfo, util } from '@tensorflow/tfjs';
import { type WasmBackendInternals, heapBuffer, heapOffset } from '../wasm/module.js';
import { nativeAddon } from './addon.js';

/** The batch shape of `out` when the leading dims of a and b are equal or one of them holds one entry. */
function outBatchShape(batchShapeA: number[], batchShapeB: number[]): number[] | undefined {
  const batchA = util.sizeFromShape(batchShapeA);
  const batchB = util.sizeFromShape(batchShapeB);
  if (batchShapeA.length === batchShapeB.length && batchShapeA.every((d, i) => d === batchShapeB[i])) return batchShapeA;
  if (batchB === 1 && batchShapeB.length <= batchShapeA.length) return batchShapeA;
  if (batchA === 1 && batchShapeA.length <= batchShapeB.length) return batchShapeB;
  return undefined;
}

/**
 * out[e] = op(a[e]) op(b[e]) (+ bias) for float32 tensors of rank >= 2 on the wasm backend, or undefined when the
 * native kernels are not loaded or do not apply (another dtype, batch shapes that broadcast partially, a bias
 * that is not one value per output column): the caller then takes another path.
 */
export function nativeMatMul(
  backend: WasmBackendInternals,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  bias?: TensorInfo,
): TensorInfo | undefined {
  const addon = nativeAddon();
  if (!addon || a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const [k2, n] = transposeB ? [bc, br] : [br, bc];
  if (k !== k2) return undefined;
  if (bias && (bias.dtype !== 'float32' || util.sizeFromShape(bias.shape) !== n || bias.shape.slice(0, -1).some((d) => d !== 1))) {
    return undefined;
  }
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  const outBatch = outBatchShape(batchShapeA, batchShapeB);
  if (!outBatch) return undefined;
  const batchA = util.sizeFromShape(batchShapeA);
  const batchB = util.sizeFromShape(batchShapeB);
  const out = backend.makeOutput([...outBatch, m, n], 'float32'); // allocate first: it may grow the heap
  if (m === 0 || n === 0) return out;
  addon.gemm(
    heapBuffer(backend),
    heapOffset(backend, a),
    heapOffset(backend, b),
    heapOffset(backend, out),
    bias ? heapOffset(backend, bias) : -1,
    Math.max(batchA, batchB),
    batchA === 1 ? 0 : m * k,
    batchB === 1 ? 0 : k * n,
    m,
    k,
    n,
    transposeA,
    transposeB,
  );
  return out;
}
