/**
 * Fused layer kernels on the tfjs wasm backend (layers.c): channel LayerNorm, SiLU and inverted dropout, forward
 * and gradient, one pass each over memory. They are registered as tfjs kernels under the names below (see
 * wasm-kernels.ts); src/models/nn/layers.ts calls them when the active backend has them and falls back to
 * composite tfjs ops elsewhere.
 */
import { type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs';
import { type WasmBackendInternals, heapOffset, ownKernels } from './module.js';

/** Kernel names: LayerNorm returns [y, rstd]; the gradients return dx; Dropout is its own gradient. */
export const LAYER_NORM = 'WellspringLayerNorm';
export const LAYER_NORM_GRAD = 'WellspringLayerNormGrad';
export const SILU = 'WellspringSilu';
export const SILU_GRAD = 'WellspringSiluGrad';
export const DROPOUT = 'WellspringDropout';

type Inputs = Record<string, TensorInfo | undefined>;

function get(inputs: Inputs, name: string): TensorInfo {
  const t = inputs[name];
  if (!t) throw new Error(`wellspring fused kernel: missing input "${name}"`);
  if (t.dtype !== 'float32') throw new Error(`wellspring fused kernel: input "${name}" must be float32, got ${t.dtype}`);
  return t;
}

const size = (t: TensorInfo): number => util.sizeFromShape(t.shape);

function channelsOf(x: TensorInfo): number {
  const c = x.shape[x.shape.length - 1] ?? 1;
  if (c % 4 !== 0) throw new Error(`wellspring LayerNorm kernel: the last axis must be a multiple of 4, got shape [${x.shape}]`);
  return c;
}

const layerNormKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const be = backend as WasmBackendInternals;
  const x = get(inputs as Inputs, 'x');
  const c = channelsOf(x);
  const rows = size(x) / c;
  const y = be.makeOutput(x.shape.slice(), 'float32');
  const rstd = be.makeOutput([...x.shape.slice(0, -1), 1], 'float32');
  const at = (t: TensorInfo) => heapOffset(be, t);
  ownKernels(be).layer_norm(at(x), rows, c, (attrs as { eps: number }).eps, at(y), at(rstd));
  return [y, rstd];
};

const layerNormGradKernel: KernelFunc = ({ inputs, backend }) => {
  const be = backend as WasmBackendInternals;
  const [dy, y, rstd] = ['dy', 'y', 'rstd'].map((n) => get(inputs as Inputs, n));
  const c = channelsOf(y);
  const dx = be.makeOutput(y.shape.slice(), 'float32');
  const at = (t: TensorInfo) => heapOffset(be, t);
  ownKernels(be).layer_norm_grad(at(dy), at(y), at(rstd), size(y) / c, c, at(dx));
  return dx;
};

const siluKernel: KernelFunc = ({ inputs, backend }) => {
  const be = backend as WasmBackendInternals;
  const x = get(inputs as Inputs, 'x');
  const y = be.makeOutput(x.shape.slice(), 'float32');
  const at = (t: TensorInfo) => heapOffset(be, t);
  ownKernels(be).silu(at(x), size(x), at(y));
  return y;
};

const siluGradKernel: KernelFunc = ({ inputs, backend }) => {
  const be = backend as WasmBackendInternals;
  const [dy, x] = ['dy', 'x'].map((n) => get(inputs as Inputs, n));
  const dx = be.makeOutput(x.shape.slice(), 'float32');
  const at = (t: TensorInfo) => heapOffset(be, t);
  ownKernels(be).silu_grad(at(dy), at(x), size(x), at(dx));
  return dx;
};

/** Attributes of the dropout kernel: drop probability and 32-bit mask seed. */
export interface DropoutAttrs {
  rate: number;
  seed: number;
}

/** Elements whose 24-bit hash fraction is below this are dropped (`rate` rounded up to a multiple of 2^-24). */
export const dropThreshold = (rate: number): number => Math.ceil(rate * 2 ** 24);

const dropoutKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const be = backend as WasmBackendInternals;
  const x = get(inputs as Inputs, 'x');
  const { rate, seed } = attrs as unknown as DropoutAttrs;
  if (!(rate >= 0 && rate < 1)) throw new Error(`wellspring dropout kernel: rate must lie in [0, 1), got ${rate}`);
  const y = be.makeOutput(x.shape.slice(), 'float32');
  const at = (t: TensorInfo) => heapOffset(be, t);
  ownKernels(be).dropout(at(x), size(x), seed | 0, dropThreshold(rate), 1 / (1 - rate), at(y));
  return y;
};

/**
 * The same mask in JS: whether element `index` is kept for `seed` and `rate` (the hash of layers.c: a golden-ratio
 * step, then the lowbias32 finaliser; kept when the top 24 bits are at or above `rate` x 2^24).
 */
export function dropoutKeeps(seed: number, index: number, rate: number): boolean {
  let h = (Math.imul(index, 0x9e3779b9) + (seed | 0)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 8 >= dropThreshold(rate);
}

/** The fused kernels, for registration on the wasm backend. */
export const fusedLayerKernels: ReadonlyArray<readonly [string, KernelFunc]> = [
  [LAYER_NORM, layerNormKernel],
  [LAYER_NORM_GRAD, layerNormGradKernel],
  [SILU, siluKernel],
  [SILU_GRAD, siluGradKernel],
  [DROPOUT, dropoutKernel],
];
