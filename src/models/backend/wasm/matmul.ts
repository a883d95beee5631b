/**
 * Batched matrix products on the tfjs wasm backend through gemm.c's `batch_matmul`: every batch entry (attention's
 * batch x heads) in one call, with transposed operands read as they lie and broadcast operands not copied. The
 * stock path (XNNPACK) creates an operator and packs weights for each entry, which dominates for the small
 * per-head products of attention.
 */
import { type TensorInfo, util } from '@tensorflow/tfjs';
import { type WasmBackendInternals, Scratch, ownKernels } from './module.js';

/**
 * out[e] = op(a[e]) op(b[e]) for rank >= 2 tensors whose leading (batch) dims are equal or one of them is 1, or
 * undefined when this kernel does not apply (non-float32, batch shapes that broadcast partially, an empty
 * product, a column count not a multiple of 4, or a row count not a multiple of 4 with `transposeA`): the caller
 * then takes another path.
 */
export function ownBatchMatMul(
  backend: WasmBackendInternals,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const [k2, n] = transposeB ? [bc, br] : [br, bc];
  if (k !== k2 || n % 4 !== 0 || (transposeA && m % 4 !== 0) || m === 0 || n === 0 || k === 0) return undefined;
  const batchShapeA = a.shape.slice(0, -2);
  const batchShapeB = b.shape.slice(0, -2);
  const batchA = util.sizeFromShape(batchShapeA);
  const batchB = util.sizeFromShape(batchShapeB);
  let outBatch: number[];
  if (batchA === batchB && batchShapeA.length === batchShapeB.length && batchShapeA.every((d, i) => d === batchShapeB[i])) {
    outBatch = batchShapeA;
  } else if (batchB === 1 && batchShapeB.length <= batchShapeA.length) {
    outBatch = batchShapeA;
  } else if (batchA === 1 && batchShapeA.length <= batchShapeB.length) {
    outBatch = batchShapeB;
  } else {
    return undefined;
  }
  const batch = Math.max(batchA, batchB);
  const out = backend.makeOutput([...outBatch, m, n], 'float32');
  const scratch = new Scratch(backend);
  try {
    const transposed = transposeB ? scratch.tensor([k, n]) : undefined;
    ownKernels(backend).batch_matmul(
      scratch.offset(a),
      scratch.offset(b),
      scratch.offset(out),
      batch,
      batchA === 1 ? 0 : m * k,
      batchB === 1 ? 0 : k * n,
      m,
      k,
      n,
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
      transposed ? scratch.offset(transposed) : 0,
    );
    return out;
  } finally {
    scratch.release();
  }
}
