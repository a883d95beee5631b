/**
 * Kernels the project registers on the wasm backend (tfjs-backend-wasm 4.22.0): gradients it lacks, and faster
 * replacements for slow ones. Importing this module registers them once (idempotent); `selectBackend` imports it
 * before it initialises wasm.
 *
 * Why each one (measured on one core of the project's machine; XNNPACK forward conv and plain matmul run at
 * 20-30 GFLOP/s, the stock fallbacks below at about 2):
 * - `Conv2D` and `FusedConv2D` (bias, linear activation): 3x3 stride-1 convs whose channel counts are multiples
 *   of 4 (every conv of the DCAE but its 5-channel ends) run as Winograd F(4x4, 3x3) or F(2x2, 3x3) in the
 *   project's own wasm module (wasm/winograd.c): 36/144 or 16/36 of the multiply-adds, register-blocked products
 *   at about 30 GFLOP/s, so 45-100 GFLOP/s direct-equivalent; with the native kernels loaded, each conv is one
 *   native call (transforms and products natively, tiles in cache-sized blocks: wasm/winograd.ts). Other convs
 *   keep the stock XNNPACK kernel.
 * - `Conv2DBackpropFilter` is missing. For Winograd-eligible convs it is the Winograd filter gradient (the
 *   transformed input and output gradient, multiplied and summed over tiles); thin 3x3 stride-1 convs (fewer than
 *   8 or not a multiple of 4 channels, like the DCAE's 5-channel ends) take it too, on channels zero-padded to
 *   Winograd's counts, the extra rows and columns of the gradient cut off. Otherwise it is ONE forward
 *   convolution (XNNPACK): the input with channels and batch swapped, `[Cin, H, W, B]`, convolved with the
 *   output gradient as filter, `[Ho, Wo, B, Cout]`, dilated by the stride; the result `[Cin, kh, kw, Cout]` is
 *   transposed to the filter layout.
 * - `Conv2DBackpropInput` exists but is naive (about 2 GFLOP/s). It is computed as a forward convolution of the
 *   output gradient (zero-dilated by the stride) with the spatially flipped, in/out-swapped filter, which takes
 *   the Winograd path when the forward conv did.
 * - Matrix products go to the native GEMM (native/: C++ built at install, AVX-512 / AVX2 / portable; on the ViT's
 *   shapes 49-88 GFLOP/s on one core against XNNPACK's 12-29, quiet) when it is loaded: `_FusedMatMul` with a linear activation (every
 *   dense layer's forward pass, bias included) and every `BatchMatMul` (the gradients' transposed products,
 *   attention's batched ones). Without it (no compiler at install, `WELLSPRING_NATIVE=off`) the paths below run.
 * - `BatchMatMul` falls off XNNPACK (2 GFLOP/s) with `transposeA`/`transposeB` or a batch > 1. Batched products
 *   (attention) run in the project's own wasm kernel (wasm/matmul.ts: every entry in one call, transposes read
 *   in place); otherwise operands are transposed explicitly, a batch against a shared matrix becomes one tall
 *   product, other batches one stock (XNNPACK) product per entry.
 * - The filter flip of the input gradient is a one-pass JS kernel (`WellspringFlipFilter`; the stock `Reverse` is
 *   an element loop), native when the native kernels are loaded.
 * - `Transpose` of float32 / int32 tensors runs natively when the native kernels are loaded (the stock kernel
 *   took ~4.6 ns per element on the DCAE's rank-5 patchify permutations; native/permute.cc copies whole runs).
 * - `Slice`, `StridedSlice` and `SplitV` copy element by element; they are replaced by copies of contiguous runs.
 * - `UnsortedSegmentSum` (the gradient of `gather`, i.e. of embeddings) is missing: a direct accumulation loop.
 * - `Sum` over leading axes (bias and normalisation gradients) is one pass of column sums (native when loaded);
 *   the stock kernel transposes the reduced axes to the end first.
 * - `Identity` shares its input's buffer (reference counted) instead of copying it: tfjs-core clones every tensor
 *   a gradient saves.
 * - Fused layer kernels of the project's own (wasm/layers.ts: LayerNorm, SiLU, dropout, with gradients; wasm/rotary.ts:
 *   the rotary position embedding and its gradient), which src/models/nn uses where the backend has them.
 * The gradients tfjs-core lacks on every backend (gradients.ts) are registered too.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerMissingGradients, stridedSliceInfo } from './gradients.js';
import { nativeAddon, nativeMatMul } from './native/index.js';
import { type WasmBackendInternals, fusedLayerKernels, rotaryKernels, ownBatchMatMul, winogradChannels, winogradConv2d, winogradConvInputGradient, winogradEligible, winogradFilterGradient, winogradGeometry } from './wasm/index.js';
import type {
  BatchMatMulAttrs,
  _FusedMatMulAttrs,
  Conv2DAttrs,
  Conv2DBackpropFilterAttrs,
  FusedConv2DAttrs,
  Conv2DBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  SliceAttrs,
  SplitVAttrs,
  SumAttrs,
  StridedSliceAttrs,
  TransposeAttrs,
  TensorInfo,
  UnsortedSegmentSumAttrs,
} from '@tensorflow/tfjs';

type Typed = Float32Array | Int32Array | Uint8Array;

/** The part of tfjs-backend-wasm's `BackendWasm` the kernels below use (not exported as a type by tfjs). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Typed;
}

const BACKEND = 'wasm';
const registered = new Set<string>();
const originals = new Map<string, KernelConfig>();

/** Replaces (or adds) a wasm kernel, keeping the stock one reachable through `original(name)`. */
function replaceKernel(name: string, kernelFunc: KernelFunc): void {
  if (registered.has(name)) return;
  const stock = tf.getKernel(name, BACKEND);
  if (stock) {
    originals.set(name, stock);
    tf.unregisterKernel(name, BACKEND);
  }
  tf.registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc, setupFunc: stock?.setupFunc });
  registered.add(name);
}

function original(name: string): KernelFunc {
  const stock = originals.get(name);
  if (!stock) throw new Error(`wasm kernel ${name} has no stock implementation`);
  return stock.kernelFunc;
}

const wasmBackend = (backend: unknown): WasmHeapBackend => backend as WasmHeapBackend;
const asTensor = (info: TensorInfo): tf.Tensor => info as tf.Tensor;

/** A kernel input by name (tfjs types every input as optional). */
function input(inputs: tf.NamedTensorInfoMap, name: string): TensorInfo {
  const found = inputs[name];
  if (!found) throw new Error(`wasm kernel: missing input "${name}"`);
  return found;
}

// ---------------------------------------------------------------------------------------------- slices

/**
 * Copies the box `begin .. begin+size` (with per-axis `step`, all positive) of `src` (shape `shape`) into `dst`,
 * moving whole contiguous runs with `TypedArray.set` when the innermost step is 1.
 */
function copyBox(src: Typed, shape: number[], begin: number[], size: number[], step: number[], dst: Typed): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  // Merge trailing axes taken whole (begin 0, full size, step 1) into one contiguous run.
  let inner = rank - 1;
  let run = size[rank - 1];
  while (inner > 0 && step[inner] === 1 && begin[inner] === 0 && size[inner] === shape[inner] && step[inner - 1] === 1) {
    inner--;
    run *= size[inner];
  }
  const outer = size.slice(0, inner);
  const total = outer.reduce((a, b) => a * b, 1);
  const index = new Array<number>(inner).fill(0);
  const innerStep = step[inner] * strides[inner];
  let out = 0;
  for (let n = 0; n < total; n++) {
    let offset = begin[inner] * strides[inner];
    for (let d = 0; d < inner; d++) offset += (begin[d] + index[d] * step[d]) * strides[d];
    if (step[inner] === 1) {
      dst.set(src.subarray(offset, offset + run), out);
      out += run;
    } else {
      for (let i = 0; i < run; i++) dst[out++] = src[offset + i * innerStep];
    }
    for (let d = inner - 1; d >= 0; d--) {
      if (++index[d] < outer[d]) break;
      index[d] = 0;
    }
  }
}

const sliceKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  if (x.dtype === 'string') return original(tf.Slice)({ inputs, backend, attrs });
  const { begin, size } = attrs as unknown as SliceAttrs;
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  const wasm = wasmBackend(backend);
  const out = wasm.makeOutput(s, x.dtype); // allocate first: growing the heap detaches older views
  if (s.some((n) => n === 0)) return out;
  copyBox(wasm.typedArrayFromHeap(x), x.shape, b, s, s.map(() => 1), wasm.typedArrayFromHeap(out));
  return out;
};

const stridedSliceKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const a = attrs as unknown as StridedSliceAttrs;
  const info = stridedSliceInfo(x.shape, a);
  const steps = info.strides;
  if (x.dtype === 'string' || info.isIdentity || steps.some((st) => st <= 0)) {
    return original(tf.StridedSlice)({ inputs, backend, attrs });
  }
  const wasm = wasmBackend(backend);
  const out = wasm.makeOutput(info.finalShape, x.dtype);
  // The full-rank box (shrunk axes kept with size 1); finalShapeSparse drops shrunk axes.
  const size = tf.slice_util.computeOutShape(info.begin, info.end, steps);
  if (size.some((n) => n <= 0)) return out;
  copyBox(wasm.typedArrayFromHeap(x), x.shape, info.begin, size, steps, wasm.typedArrayFromHeap(out));
  return out;
};

/** SplitV: each part is a run-copy slice (the stock kernel uses its element-wise slice). */
const splitVKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { numOrSizeSplits, axis } = attrs as unknown as SplitVAttrs;
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, $axis);
  const begin = x.shape.map(() => 0);
  return sizes.map((n) => {
    const size = x.shape.slice();
    size[$axis] = n;
    const part = sliceKernel({ inputs: { x }, backend, attrs: { begin: begin.slice(), size } as unknown as NamedAttrMap });
    begin[$axis] += n;
    return part as TensorInfo;
  });
};

// ---------------------------------------------------------------------------------------------- convolutions

function convInfo(xShape: number[], filterShape: number[], a: Conv2DBackpropFilterAttrs | Conv2DBackpropInputAttrs) {
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`wasm conv gradient: only NHWC is supported, got dataFormat ${a.dataFormat}`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
}

/**
 * Pads (positive amounts) or crops (negative amounts) the two spatial axes of an NHWC tensor. Positive amounts are
 * returned for the convolution to apply itself (explicit padding costs nothing extra there); negative ones are
 * cropped here.
 */
function cropNegative(x: tf.Tensor4D, pads: [number, number, number, number]): [tf.Tensor4D, number[][]] {
  const [t, b, l, r] = pads;
  const [n, h, w, c] = x.shape;
  const ct = Math.max(0, -t);
  const cb = Math.max(0, -b);
  const cl = Math.max(0, -l);
  const cr = Math.max(0, -r);
  const cropped = ct || cb || cl || cr ? tf.slice(x, [0, ct, cl, 0], [n, h - ct - cb, w - cl - cr, c]) : x;
  return [cropped, [[0, 0], [Math.max(0, t), Math.max(0, b)], [Math.max(0, l), Math.max(0, r)], [0, 0]]];
}

/** Inserts `s - 1` zeros after every element along axes 1 and 2 (the trailing zeros are kept). */
function zeroDilate(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape;
  return tf
    .pad(x.reshape([n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
    .reshape([n, h * sh, w * sw, c]);
}

/** Name of the project kernel that flips a filter spatially and swaps its in/out channels in one pass. */
export const FLIP_FILTER = 'WellspringFlipFilter';

/**
 * [kh, kw, in, out] -> [kh, kw, out, in] with both spatial axes reversed (stock Reverse is an element loop): natively
 * when the native kernels are loaded (blocked transposes, about 10x this loop's speed), else one pass in JS.
 */
const flipFilterKernel: KernelFunc = ({ inputs, backend }) => {
  const w = input(inputs, 'x');
  const [kh, kw, ci, co] = w.shape;
  const wasm = wasmBackend(backend);
  const out = wasm.makeOutput([kh, kw, co, ci], 'float32');
  const src = wasm.typedArrayFromHeap(w);
  const dst = wasm.typedArrayFromHeap(out);
  const native = nativeAddon();
  if (native && src instanceof Float32Array && dst instanceof Float32Array) {
    native.flipFilter(src, dst, kh, kw, ci, co);
    return out;
  }
  const block = ci * co;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const s = (i * kw + j) * block;
      const d = ((kh - 1 - i) * kw + (kw - 1 - j)) * block;
      for (let a = 0; a < ci; a++) {
        const row = s + a * co;
        for (let b = 0; b < co; b++) dst[d + b * ci + a] = src[row + b];
      }
    }
  }
  return out;
};

const conv2DBackpropInputKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as Conv2DBackpropInputAttrs;
  const dy = asTensor(input(inputs, 'dy')) as tf.Tensor4D;
  const filter = asTensor(input(inputs, 'filter')) as tf.Tensor4D;
  const info = convInfo(a.inputShape, filter.shape, a);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const [, h, w] = a.inputShape;
  if (sh === 1 && sw === 1) {
    // One native call that flips the filter itself, when the Winograd route is native (else undefined: below).
    const [batch, height, width] = dy.shape;
    const g = { batch, height, width, outHeight: h, outWidth: w, padTop: kh - 1 - info.padInfo.top, padLeft: kw - 1 - info.padInfo.left };
    const dx = winogradConvInputGradient(backend as WasmBackendInternals, dy, filter, g);
    if (dx) return dx;
  }
  return tf.tidy(() => {
    const dilated = zeroDilate(dy, sh, sw); // [B, Ho*sh, Wo*sw, Cout]
    const top = kh - 1 - info.padInfo.top;
    const left = kw - 1 - info.padInfo.left;
    const bottom = h + kh - 1 - dilated.shape[1] - top;
    const right = w + kw - 1 - dilated.shape[2] - left;
    const [src, pads] = cropNegative(dilated, [top, bottom, left, right]);
    const flipped = tf.engine().runKernel(FLIP_FILTER, { x: filter }, {}) as tf.Tensor4D;
    return tf.conv2d(src, flipped, 1, pads as tf.backend_util.ExplicitPadding);
  });
};

/** The conv info of a Conv2D / FusedConv2D call when it can take the Winograd path, else undefined. */
function forwardInfo(x: TensorInfo, filter: TensorInfo, a: Conv2DAttrs): tf.backend_util.Conv2DInfo | undefined {
  const channelsLast = a.dataFormat === undefined || a.dataFormat === 'NHWC' || (a.dataFormat as string) === 'channelsLast';
  if (!channelsLast || x.dtype !== 'float32') return undefined;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations,
    a.pad,
    a.dimRoundingMode,
  );
  const eligible = winogradEligible(filter.shape, [info.strideHeight, info.strideWidth], [info.dilationHeight, info.dilationWidth]);
  return eligible && info.outHeight > 0 && info.outWidth > 0 ? info : undefined;
}

/** Conv2D: Winograd for 3x3 stride-1 convs with channels in multiples of 4, XNNPACK otherwise. */
const conv2DKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const filter = input(inputs, 'filter');
  const info = forwardInfo(x, filter, attrs as unknown as Conv2DAttrs);
  if (!info) return original(tf.Conv2D)({ inputs, backend, attrs });
  return winogradConv2d(backend as WasmBackendInternals, x, filter, undefined, winogradGeometry(info));
};

/** FusedConv2D (conv + bias, linear activation): as Conv2D; other activations keep the stock kernel. */
const fusedConv2DKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as FusedConv2DAttrs;
  const x = input(inputs, 'x');
  const filter = input(inputs, 'filter');
  const bias = inputs.bias;
  const info = a.activation === 'linear' || a.activation === undefined ? forwardInfo(x, filter, a) : undefined;
  if (!info || (bias && (bias.shape.length !== 1 || bias.shape[0] !== filter.shape[3]))) {
    return original(tf.FusedConv2D)({ inputs, backend, attrs });
  }
  return winogradConv2d(backend as WasmBackendInternals, x, filter, bias, winogradGeometry(info));
};

const conv2DBackpropFilterKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as Conv2DBackpropFilterAttrs;
  const x = asTensor(input(inputs, 'x')) as tf.Tensor4D;
  const dy = asTensor(input(inputs, 'dy')) as tf.Tensor4D;
  const info = convInfo(x.shape, a.filterShape, a);
  const strides = [info.strideHeight, info.strideWidth];
  if (x.dtype === 'float32' && winogradEligible(a.filterShape, strides, [1, 1])) {
    return winogradFilterGradient(backend as WasmBackendInternals, x, dy, winogradGeometry(info));
  }
  const padded = x.dtype === 'float32' ? winogradChannels(a.filterShape, strides, [1, 1]) : undefined;
  if (padded) {
    // Thin 3x3 convs (the DCAE's 5-channel ends): zero channels up to Winograd's multiples of 4, the gradient of the
    // padded conv, its real channels cut out. About 5x faster than the swapped convolution below at 32x32x5x16
    // (whose 32x32 "filter" XNNPACK runs slowly), with a different summation order (float32 rounding only).
    const [cin, cout] = [a.filterShape[2], a.filterShape[3]];
    return tf.tidy(() => {
      const widen = (t: tf.Tensor4D, c: number): tf.Tensor4D => (c === t.shape[3] ? t : tf.pad(t, [[0, 0], [0, 0], [0, 0], [0, c - t.shape[3]]]));
      const [xp, dyp] = [widen(x, padded[0]), widen(dy, padded[1])];
      const dw = tf.engine().makeTensorFromTensorInfo(winogradFilterGradient(backend as WasmBackendInternals, xp, dyp, winogradGeometry(info)));
      return tf.slice(dw, [0, 0, 0, 0], [3, 3, cin, cout]);
    });
  }
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: ho, outWidth: wo } = info;
  const [, h, w] = x.shape;
  return tf.tidy(() => {
    // out[ci, i, j, co] = sum_{b,y,x} xpad[b, i + y*sh, j + x*sw, ci] * dy[b, y, x, co]: a 'valid' convolution of
    // the channel/batch-swapped input by the gradient used as filter, with dilation = stride.
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const bottom = kh + (ho - 1) * sh - h - top;
    const right = kw + (wo - 1) * sw - w - left;
    const [src, pads] = cropNegative(x, [top, bottom, left, right]);
    const xt = src.transpose([3, 1, 2, 0]) as tf.Tensor4D; // [Cin, H, W, B]
    const dyt = dy.transpose([1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, B, Cout]
    const swapped: tf.Tensor4D =
      sh === 1 && sw === 1
        ? tf.conv2d(xt, dyt, 1, pads as tf.backend_util.ExplicitPadding)
        : // tf.conv2d refuses explicit padding with dilations > 1 on some paths; pad first then 'valid'.
          tf.conv2d(tf.pad(xt, pads as Array<[number, number]>), dyt, 1, 'valid', 'NHWC', [sh, sw]);
    return swapped.transpose([1, 2, 0, 3]); // [kh, kw, Cin, Cout]
  });
};

// ---------------------------------------------------------------------------------------------- transpose

/**
 * Transpose of 4-byte data (float32, int32) through the native kernels when they are loaded (runs of the trailing
 * axes the permutation keeps, copied whole: native/permute.cc); the stock kernel otherwise, and for tiny tensors.
 */
const transposeKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { perm } = attrs as unknown as TransposeAttrs;
  const native = nativeAddon();
  const size = tf.util.sizeFromShape(x.shape);
  if (!native || (x.dtype !== 'float32' && x.dtype !== 'int32') || size < 1024 || x.shape.length > 8) {
    return original(tf.Transpose)({ inputs, backend, attrs });
  }
  const wasm = wasmBackend(backend);
  const out = wasm.makeOutput(perm.map((p) => x.shape[p]), x.dtype); // allocate first: growing the heap detaches views
  const view = (t: TensorInfo): Float32Array => {
    const a = wasm.typedArrayFromHeap(t);
    return new Float32Array(a.buffer, a.byteOffset, a.length);
  };
  native.permute(view(x), view(out), Float64Array.from([...x.shape, ...perm]));
  return out;
};

// ---------------------------------------------------------------------------------------------- matmul

/**
 * BatchMatMul. The stock kernel runs XNNPACK only for a single matrix product without transposes; batched
 * products (attention) and transposed ones (every linear layer's gradient) fall to naive loops at ~2 GFLOP/s.
 * Here: transposed operands are transposed explicitly; a batch against one shared matrix becomes one tall product;
 * other batches run one XNNPACK product per batch entry (slices and the concat are contiguous copies).
 */
const batchMatMulKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
  const a0 = asTensor(input(inputs, 'a'));
  const b0 = asTensor(input(inputs, 'b'));
  const native = nativeMatMul(backend as WasmBackendInternals, a0, b0, transposeA, transposeB);
  if (native) return native;
  const plain = { ...attrs, transposeA: false, transposeB: false } as unknown as NamedAttrMap;
  const batchOf = (t: tf.Tensor) => t.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchA = batchOf(a0);
  const batchB = batchOf(b0);
  if (!transposeA && !transposeB && batchA === 1 && batchB === 1) return original(tf.BatchMatMul)({ inputs, backend, attrs });
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(a0.shape.slice(0, -2), b0.shape.slice(0, -2));
  if (batchA > 1 || batchB > 1) {
    // Batched products (attention): all entries in one call of the project's own kernel, when it applies.
    const own = ownBatchMatMul(backend as WasmBackendInternals, a0, b0, transposeA, transposeB);
    if (own) return own;
  }
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) {
    return original(tf.BatchMatMul)({ inputs, backend, attrs }); // partial broadcasting: rare, keep the stock path
  }
  return tf.tidy(() => {
    const swapLast = (t: tf.Tensor3D): tf.Tensor3D => tf.transpose(t, [0, 2, 1]);
    const as3 = (t: tf.Tensor, batch: number): tf.Tensor3D => t.reshape([batch, t.shape[t.rank - 2], t.shape[t.rank - 1]]);
    const a = transposeA ? swapLast(as3(a0, batchA)) : as3(a0, batchA); // [batchA, M, K]
    const b = transposeB ? swapLast(as3(b0, batchB)) : as3(b0, batchB); // [batchB, K, N]
    const [, m, k] = a.shape;
    const n = b.shape[2];
    const product = (x: tf.Tensor3D, y: tf.Tensor3D): tf.Tensor3D =>
      tf.engine().makeTensorFromTensorInfo(
        original(tf.BatchMatMul)({ inputs: { a: x, b: y }, backend, attrs: plain }) as TensorInfo,
      ) as tf.Tensor3D;
    let out: tf.Tensor;
    if (batchB === 1) {
      out = product(a.reshape([1, batchA * m, k]), b); // one tall product
    } else {
      const parts: tf.Tensor3D[] = [];
      for (let i = 0; i < batchB; i++) {
        const ai = batchA === 1 ? a : tf.slice(a, [i, 0, 0], [1, m, k]);
        parts.push(product(ai, tf.slice(b, [i, 0, 0], [1, k, n])));
      }
      out = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    }
    return out.reshape([...outBatch, m, n]);
  });
};

/**
 * _FusedMatMul (tf.fused.matMul: the dense layers' forward pass) through the native GEMM when it is loaded and the
 * activation is linear (the bias, one value per column, is added in the GEMM); other activations, PReLU weights,
 * other bias shapes, or no native kernels: the stock kernel (XNNPACK).
 */
const fusedMatMulKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { transposeA, transposeB, activation } = attrs as unknown as _FusedMatMulAttrs;
  if ((activation === 'linear' || activation === undefined) && !inputs.preluActivationWeights) {
    const native = nativeMatMul(backend as WasmBackendInternals, input(inputs, 'a'), input(inputs, 'b'), transposeA, transposeB, inputs.bias);
    if (native) return native;
  }
  return original(tf._FusedMatMul)({ inputs, backend, attrs });
};

// ---------------------------------------------------------------------------------------------- sum

/**
 * Sum over leading axes (float32): column sums of the [rows, cols] view, accumulated in float64, in one pass over
 * the input. The stock kernel transposes the reduced axes to the end first (a full copy); bias and normalisation
 * gradients reduce over the leading (batch, token) axes, so that transpose was most of their cost. With the
 * native kernels loaded the pass is native (`columnSums`, vectorised across columns: the same bits as the JS loop,
 * about 7% of a vit-small step before). Other reductions keep the stock kernel.
 */
const sumKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { axis, keepDims } = attrs as unknown as SumAttrs;
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const rank = x.shape.length;
  const k = axes.length;
  const leading = k > 0 && k < rank && [...axes].sort((a, b) => a - b).every((a, i) => a === i);
  if (x.dtype !== 'float32' || !leading) return original(tf.Sum)({ inputs, backend, attrs });
  const cols = tf.util.sizeFromShape(x.shape.slice(k));
  const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
  const wasm = wasmBackend(backend);
  const out = wasm.makeOutput(keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k), 'float32');
  const src = wasm.typedArrayFromHeap(x) as Float32Array;
  const dst = wasm.typedArrayFromHeap(out) as Float32Array;
  const native = nativeAddon();
  if (native && cols > 0) {
    native.columnSums(src, dst);
    return out;
  }
  const acc = new Float64Array(cols);
  for (let r = 0, off = 0; r < rows; r++, off += cols) for (let c = 0; c < cols; c++) acc[c] += src[off + c]!;
  dst.set(acc);
  return out;
};

// ---------------------------------------------------------------------------------------------- identity

/**
 * Identity without a copy: the output shares the input's buffer, its reference count raised (as the cpu and
 * webgl backends do; the stock wasm kernel copies). tfjs-core calls it for every tensor a gradient saves
 * (`clone` in saveTensorsForBackwardMode and customGrad's save), about 575 copies per step of the demo's ViT (6-8%
 * of a step). Sharing is sound because no kernel writes into its inputs: outputs are always fresh allocations
 * (`makeOutput`), and weights are replaced by new tensors (`assign`), never overwritten.
 */
const identityKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  if (x.dtype === 'string') return original(tf.Identity)({ inputs, backend, attrs });
  (backend as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

// ---------------------------------------------------------------------------------------------- segment sum

const unsortedSegmentSumKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const x = input(inputs, 'x');
  const ids = input(inputs, 'segmentIds');
  const wasm = wasmBackend(backend);
  const rowShape = x.shape.slice(ids.shape.length);
  const row = rowShape.reduce((p, q) => p * q, 1);
  const out = wasm.makeOutput([numSegments, ...rowShape], x.dtype);
  const dst = wasm.typedArrayFromHeap(out);
  dst.fill(0);
  const src = wasm.typedArrayFromHeap(x);
  const seg = wasm.typedArrayFromHeap(ids);
  for (let i = 0; i < seg.length; i++) {
    const s = seg[i];
    if (s < 0 || s >= numSegments) continue; // TensorFlow drops out-of-range ids
    const o = s * row;
    const k = i * row;
    for (let j = 0; j < row; j++) dst[o + j] += src[k + j];
  }
  return out;
};

// ---------------------------------------------------------------------------------------------- registration

/** Names of the wasm kernels this module registers or replaces (for reports and tests). */
export const wasmKernelNames = [
  tf.Conv2D,
  tf.FusedConv2D,
  tf.Conv2DBackpropFilter,
  tf.Conv2DBackpropInput,
  tf.BatchMatMul,
  tf._FusedMatMul,
  tf.Slice,
  tf.StridedSlice,
  tf.SplitV,
  tf.UnsortedSegmentSum,
  tf.Sum,
  tf.Identity,
  tf.Transpose,
] as const;

/** Registers the project's wasm kernels and missing gradients. Idempotent; called on import. */
export function registerWasmKernels(): void {
  replaceKernel(tf.Conv2D, conv2DKernel);
  replaceKernel(tf.FusedConv2D, fusedConv2DKernel);
  replaceKernel(tf.Conv2DBackpropFilter, conv2DBackpropFilterKernel);
  replaceKernel(tf.Conv2DBackpropInput, conv2DBackpropInputKernel);
  replaceKernel(tf.BatchMatMul, batchMatMulKernel);
  replaceKernel(tf._FusedMatMul, fusedMatMulKernel);
  replaceKernel(tf.Slice, sliceKernel);
  replaceKernel(tf.StridedSlice, stridedSliceKernel);
  replaceKernel(tf.SplitV, splitVKernel);
  replaceKernel(tf.UnsortedSegmentSum, unsortedSegmentSumKernel);
  replaceKernel(tf.Sum, sumKernel);
  replaceKernel(tf.Identity, identityKernel);
  replaceKernel(tf.Transpose, transposeKernel);
  replaceKernel(FLIP_FILTER, flipFilterKernel);
  for (const [name, kernelFunc] of [...fusedLayerKernels, ...rotaryKernels]) replaceKernel(name, kernelFunc);
  registerMissingGradients();
}

registerWasmKernels();
