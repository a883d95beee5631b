/**
 * Rotary position embedding as one kernel each way, on the tfjs wasm backend (plain JS over the heap).
 *
 * Forward, per channel pair (a, b) = (x[i], x[i + d/2]) of the last axis (d channels) with angle cos / sin:
 *   y[i] = a cos - b sin,   y[i + d/2] = a sin + b cos.
 * Backward, from dy = (dy1, dy2):
 *   da = dy1 cos + dy2 sin,   db = dy2 cos - dy1 sin,
 *   dcos = sum over the batch of (dy1 a + dy2 b),   dsin = sum over the batch of (dy2 a - dy1 b).
 *
 * x is [B, ...rest, d] and cos / sin [...rest, d/2] (the same angles for every leading index). The composite form
 * (split, four products, a difference, a sum, concat) takes about ten kernels forward and more backward; the
 * split and concat copies alone were 5-18% of a ViT training step. The forward pass gives the composite's bits
 * (each product rounded to float32, then the sum or difference); the gradients add the same terms, the batch
 * sums in float64, so they agree with the composite's to float32 rounding. With the native kernels loaded the loops
 * run natively (native/rotary.cc: the same operations in the same order, so the same bits); the JS loops below are
 * the fallback.
 */
import { type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs';
import { nativeAddon } from '../native/index.js';

/** Kernel names: the forward returns y; the gradient returns [dx, dcos, dsin]. */
export const ROTARY = 'WellspringRotary';
export const ROTARY_GRAD = 'WellspringRotaryGrad';

/** The part of the wasm backend the kernels use. */
interface HeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

function get(inputs: Record<string, TensorInfo | undefined>, name: string): TensorInfo {
  const t = inputs[name];
  if (!t) throw new Error(`wellspring rotary kernel: missing input "${name}"`);
  if (t.dtype !== 'float32') throw new Error(`wellspring rotary kernel: input "${name}" must be float32, got ${t.dtype}`);
  return t;
}

/**
 * Whether x [B, ...rest, d] and angles [...rest, d/2] fit the kernels: d even, the angles' shape x's without its
 * first axis and with the last halved.
 */
export function rotaryShapesFit(x: readonly number[], angles: readonly number[]): boolean {
  const d = x[x.length - 1] ?? 0;
  if (x.length < 2 || d % 2 !== 0 || angles.length !== x.length - 1) return false;
  return angles.every((n, i) => n === (i === angles.length - 1 ? d / 2 : x[i + 1]));
}

/** The batch count, the angle count per batch entry and the half width, after checking the shapes. */
function geometry(x: TensorInfo, cos: TensorInfo, sin: TensorInfo): { batch: number; angles: number; half: number } {
  if (!rotaryShapesFit(x.shape, cos.shape) || !util.arraysEqual(cos.shape, sin.shape)) {
    throw new Error(`wellspring rotary kernel: x [${x.shape}] needs cos and sin of shape [x's shape without its first axis, last halved], got [${cos.shape}] and [${sin.shape}]`);
  }
  const half = x.shape[x.shape.length - 1]! / 2;
  return { batch: x.shape[0]!, angles: util.sizeFromShape(cos.shape), half };
}

const rotaryKernel: KernelFunc = ({ inputs, backend }) => {
  const be = backend as unknown as HeapBackend;
  const [x, cos, sin] = ['x', 'cos', 'sin'].map((n) => get(inputs, n));
  const { batch, angles, half } = geometry(x, cos, sin);
  const out = be.makeOutput(x.shape.slice(), 'float32');
  const [xv, c, s, y] = [x, cos, sin, out].map((t) => be.typedArrayFromHeap(t));
  const native = nativeAddon();
  if (native) {
    native.rotary(xv, c, s, half, y);
    return out;
  }
  const fr = Math.fround;
  for (let e = 0, o = 0; e < batch; e++) {
    for (let j = 0; j < angles; j += half, o += 2 * half) {
      for (let i = 0; i < half; i++) {
        const a = xv[o + i]!;
        const b = xv[o + half + i]!;
        const ci = c[j + i]!;
        const si = s[j + i]!;
        y[o + i] = fr(a * ci) - fr(b * si);
        y[o + half + i] = fr(a * si) + fr(b * ci);
      }
    }
  }
  return out;
};

const rotaryGradKernel: KernelFunc = ({ inputs, backend }) => {
  const be = backend as unknown as HeapBackend;
  const [dy, x, cos, sin] = ['dy', 'x', 'cos', 'sin'].map((n) => get(inputs, n));
  const { batch, angles, half } = geometry(x, cos, sin);
  if (!util.arraysEqual(dy.shape, x.shape)) throw new Error(`wellspring rotary gradient: dy [${dy.shape}] must have x's shape [${x.shape}]`);
  const dx = be.makeOutput(x.shape.slice(), 'float32');
  const dcos = be.makeOutput(cos.shape.slice(), 'float32');
  const dsin = be.makeOutput(sin.shape.slice(), 'float32');
  const [g, xv, c, s, gx] = [dy, x, cos, sin, dx].map((t) => be.typedArrayFromHeap(t));
  const native = nativeAddon();
  if (native) {
    native.rotaryGrad(g, xv, c, s, half, gx, be.typedArrayFromHeap(dcos), be.typedArrayFromHeap(dsin));
    return [dx, dcos, dsin];
  }
  const accC = new Float64Array(angles);
  const accS = new Float64Array(angles);
  const fr = Math.fround;
  for (let e = 0, o = 0; e < batch; e++) {
    for (let j = 0; j < angles; j += half, o += 2 * half) {
      for (let i = 0; i < half; i++) {
        const a = xv[o + i]!;
        const b = xv[o + half + i]!;
        const g1 = g[o + i]!;
        const g2 = g[o + half + i]!;
        const ci = c[j + i]!;
        const si = s[j + i]!;
        gx[o + i] = fr(g1 * ci) + fr(g2 * si);
        gx[o + half + i] = fr(g2 * ci) - fr(g1 * si);
        accC[j + i] += fr(g1 * a) + fr(g2 * b);
        accS[j + i] += fr(g2 * a) - fr(g1 * b);
      }
    }
  }
  be.typedArrayFromHeap(dcos).set(accC);
  be.typedArrayFromHeap(dsin).set(accS);
  return [dx, dcos, dsin];
};

/** The rotary kernels, for registration on the wasm backend. */
export const rotaryKernels: ReadonlyArray<readonly [string, KernelFunc]> = [
  [ROTARY, rotaryKernel],
  [ROTARY_GRAD, rotaryGradKernel],
];
