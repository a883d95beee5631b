/**
 * Layers as plain tfjs functions (NHWC layout): linear and conv modules with explicit parameters, periodic
 * (circular) padding, channel normalisations, SiLU, dropout, 2x2 space-to-channel patchify / pixel shuffle and
 * the latent softclip. Every op used here has a gradient in tfjs, on every backend.
 *
 * Weight layouts are tfjs-native: linear `weight` is [in, out] (PyTorch: [out, in], transpose it), conv `weight`
 * is [kh, kw, in, out] (PyTorch: [out, in, kh, kw], transpose with perm [3, 2, 0, 1]).
 */
import * as tf from '@tensorflow/tfjs';
import { DROPOUT, LAYER_NORM, LAYER_NORM_GRAD, SILU, SILU_GRAD } from '../backend/wasm/layers.js';
import {
  type ApplyOptions,
  type Initializer,
  type ParameterScope,
  checkShape,
  dropoutSeed,
  formatShape,
  scaledInit,
  uniformInit,
  zerosInit,
} from './module.js';

/** Which spatial axes (H, W) wrap around. */
export type Periodic = readonly [boolean, boolean];

// ---------------------------------------------------------------------------------------------------------
// Linear

export interface LinearOptions {
  /** Add a bias (default true). */
  bias?: boolean;
  /** Multiply the initial weight by this (e.g. 1e-2 for layers that should start near zero). */
  weightScale?: number;
  /** Start the bias at zero instead of the default uniform init. */
  zeroBias?: boolean;
}

export interface Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Applies to the last axis of a tensor of any rank >= 1. */
  apply(x: tf.Tensor): tf.Tensor;
}

/** A dense layer `x W + b` on the last axis; PyTorch's default init (uniform, bound 1/sqrt(in)). */
export function createLinear(scope: ParameterScope, inFeatures: number, outFeatures: number, options: LinearOptions = {}): Linear {
  const bound = 1 / Math.sqrt(inFeatures);
  const weight = scope.create('weight', [inFeatures, outFeatures], scaledInit(uniformInit(bound), options.weightScale ?? 1));
  const bias =
    options.bias === false ? undefined : scope.create('bias', [outFeatures], options.zeroBias ? zerosInit : uniformInit(bound));
  const name = scope.prefix || 'linear';
  return {
    inFeatures,
    outFeatures,
    apply(x) {
      const shape = x.shape;
      if (shape[shape.length - 1] !== inFeatures) {
        throw new Error(`${name}: expected last axis of size ${inFeatures}, received shape ${formatShape(shape)}`);
      }
      return tf.tidy(() => {
        // fused bias: one output tensor and one kernel instead of two
        const y = tf.fused.matMul({ a: x.reshape([-1, inFeatures]) as tf.Tensor2D, b: weight as tf.Tensor2D, bias });
        return y.reshape([...shape.slice(0, -1), outFeatures]);
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Padding

type PadPair = readonly [number, number];

/** Slice of `x` along `axis` covering [begin, begin + size). */
function sliceAxis(x: tf.Tensor, axis: number, begin: number, size: number): tf.Tensor {
  const b = x.shape.map((_, i) => (i === axis ? begin : 0));
  const s = x.shape.map((d, i) => (i === axis ? size : d));
  return tf.slice(x, b, s);
}

/**
 * Pads one axis periodically: the `before` last entries are prepended and the `after` first entries appended
 * (torch's `padding_mode="circular"`). Built from slices and a concat, so it has gradients everywhere.
 */
export function circularPadAxis(x: tf.Tensor, axis: number, before: number, after: number): tf.Tensor {
  const n = x.shape[axis];
  if (before < 0 || after < 0 || before > n || after > n) {
    throw new Error(`circular padding of (${before}, ${after}) on an axis of size ${n}: each side must be in [0, ${n}]`);
  }
  if (before === 0 && after === 0) return x;
  return tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    if (before > 0) parts.push(sliceAxis(x, axis, n - before, before));
    parts.push(x);
    if (after > 0) parts.push(sliceAxis(x, axis, 0, after));
    return tf.concat(parts, axis);
  });
}

function normalisePadding(padding: number | readonly [PadPair, PadPair]): readonly [PadPair, PadPair] {
  return typeof padding === 'number' ? [[padding, padding], [padding, padding]] : padding;
}

/**
 * Pads the spatial axes of an NHWC tensor: periodically on the axes flagged in `periodic` (default: both),
 * with zeros on the others. `padding` is one size for every side, or `[[top, bottom], [left, right]]`.
 * H is padded before W, so corners are consistent with a 2D periodic extension.
 */
export function circularPad(
  x: tf.Tensor4D,
  padding: number | readonly [PadPair, PadPair],
  periodic: Periodic = [true, true],
): tf.Tensor4D {
  checkShape('circularPad input', x, ['B', 'H', 'W', 'C']);
  const [[top, bottom], [left, right]] = normalisePadding(padding);
  return tf.tidy(() => {
    let y: tf.Tensor = x;
    y = periodic[0] ? circularPadAxis(y, 1, top, bottom) : top || bottom ? tf.pad(y, [[0, 0], [top, bottom], [0, 0], [0, 0]]) : y;
    y = periodic[1] ? circularPadAxis(y, 2, left, right) : left || right ? tf.pad(y, [[0, 0], [0, 0], [left, right], [0, 0]]) : y;
    return y as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Convolution

export interface Conv2dOptions {
  /** Square kernel size, odd (default 3). */
  kernel?: number;
  /** Axes with periodic boundary (circular padding); others are zero-padded. Default none. */
  periodic?: Periodic;
  /** Add a bias (default true). */
  bias?: boolean;
  /** Multiply the initial weight by this (the residual FFN's last conv uses 1e-2). */
  weightScale?: number;
  /**
   * Start as a pseudo-identity: centre tap of output channel o reads input channel o mod in, plus the default
   * random weight times 1e-2 (the reference's init for the resampling convs).
   */
  identityInit?: boolean;
}

export interface Conv2d {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Stride-1 "same" convolution of an NHWC tensor. */
  apply(x: tf.Tensor4D): tf.Tensor4D;
}

function identityPlusSmall(kernel: number, inC: number, outC: number, base: Initializer): Initializer {
  return (shape, random) => {
    const values = base(shape, random);
    for (let i = 0; i < values.length; i++) values[i] *= 1e-2;
    const c = (kernel - 1) / 2;
    for (let o = 0; o < outC; o++) values[((c * kernel + c) * inC + (o % inC)) * outC + o] += 1;
    return values;
  };
}

/** A stride-1, size-preserving 2D convolution with per-axis periodic or zero padding. */
export function createConv2d(scope: ParameterScope, inChannels: number, outChannels: number, options: Conv2dOptions = {}): Conv2d {
  const kernel = options.kernel ?? 3;
  if (kernel % 2 !== 1) throw new Error(`${scope.prefix}: kernel size must be odd, got ${kernel}`);
  const periodic = options.periodic ?? [false, false];
  const bound = 1 / Math.sqrt(inChannels * kernel * kernel);
  let init = scaledInit(uniformInit(bound), options.weightScale ?? 1);
  if (options.identityInit) init = identityPlusSmall(kernel, inChannels, outChannels, init);
  const weight = scope.create('weight', [kernel, kernel, inChannels, outChannels], init) as tf.Variable<tf.Rank.R4>;
  const bias = options.bias === false ? undefined : scope.create('bias', [outChannels], uniformInit(bound));
  const half = (kernel - 1) / 2;
  const anyPeriodic = periodic[0] || periodic[1];
  const name = scope.prefix || 'conv';
  return {
    inChannels,
    outChannels,
    apply(x) {
      checkShape(name, x, ['B', 'H', 'W', inChannels]);
      return tf.tidy(() => {
        // Without periodic axes tfjs' own "same" padding is the zero padding we want (and fastest).
        // fused bias: one output tensor and one kernel instead of two
        return anyPeriodic
          ? tf.fused.conv2d({ x: circularPad(x, half, periodic), filter: weight, strides: 1, pad: 'valid', bias })
          : tf.fused.conv2d({ x, filter: weight, strides: 1, pad: 'same', bias });
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation and activations

// These three have hand-written gradients (tf.customGrad): autodiff of their composite forms keeps four or five
// full-size intermediates per call on the tape (tfjs saves the inputs of nearly every op), the custom forms keep
// one, and their backward passes take fewer kernels. test/nn/layers.test.ts checks them against autodiff.

/** Whether the active backend has one of the project's fused kernels (the wasm backend does). */
const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) !== undefined;
const run = (name: string, inputs: tf.NamedTensorMap, attrs: object = {}): tf.Tensor | tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];

/**
 * Standardises over the last (channel) axis, no affine parameters: (x - mean) / sqrt(var + eps). On wasm with
 * channels in multiples of 4, forward and backward are one fused kernel each.
 */
export function layerNorm(x: tf.Tensor, eps = 1e-5): tf.Tensor {
  const fused = x.dtype === 'float32' && x.shape[x.rank - 1] % 4 === 0 && hasKernel(LAYER_NORM);
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = input as tf.Tensor;
    if (fused) {
      const [y, rstd] = run(LAYER_NORM, { x: v }, { eps }) as tf.Tensor[];
      (save as tf.GradSaveFunc)([y, rstd]);
      return { value: y, gradFunc: (dy: tf.Tensor, [ys, r]: tf.Tensor[]) => run(LAYER_NORM_GRAD, { dy, y: ys, rstd: r }) as tf.Tensor };
    }
    const axis = v.rank - 1;
    const { mean, variance } = tf.moments(v, axis, true);
    const rstd = tf.rsqrt(variance.add(eps));
    const y = v.sub(mean).mul(rstd);
    (save as tf.GradSaveFunc)([y, rstd]);
    return {
      value: y,
      // dx = rstd (dy - mean(dy) - y mean(dy y))
      gradFunc: (dy: tf.Tensor, [ys, r]: tf.Tensor[]) =>
        dy.sub(dy.mean(axis, true)).sub(ys.mul(dy.mul(ys).mean(axis, true))).mul(r),
    };
  });
  return op(x);
}

/** Divides by the root mean square over the last axis, no affine parameters: x / sqrt(mean(x^2) + eps). */
export function rmsNorm(x: tf.Tensor, eps = 1e-5): tf.Tensor {
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = input as tf.Tensor;
    const axis = v.rank - 1;
    const r = tf.rsqrt(v.square().mean(axis, true).add(eps));
    const y = v.mul(r);
    (save as tf.GradSaveFunc)([y, r]);
    return {
      value: y,
      // dx = r (dy - y mean(dy y))
      gradFunc: (dy: tf.Tensor, [ys, rs]: tf.Tensor[]) => dy.sub(ys.mul(dy.mul(ys).mean(axis, true))).mul(rs),
    };
  });
  return op(x);
}

/** SiLU (swish): x * sigmoid(x); one fused kernel each way on wasm. */
export function silu(x: tf.Tensor): tf.Tensor {
  const fused = x.dtype === 'float32' && hasKernel(SILU);
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = input as tf.Tensor;
    (save as tf.GradSaveFunc)([v]);
    if (fused) {
      return { value: run(SILU, { x: v }) as tf.Tensor, gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => run(SILU_GRAD, { dy, x: xs }) as tf.Tensor };
    }
    return {
      value: v.mul(tf.sigmoid(v)),
      // d/dx x s(x) = s (1 + x (1 - s))
      gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => {
        const s = tf.sigmoid(xs);
        return dy.mul(s).mul(xs.mul(tf.sub(1, s)).add(1));
      },
    };
  });
  return op(x);
}

/**
 * Inverted dropout, active only when `options.training`; masks are seeded from `options.random`. On wasm the mask
 * is a hash of the seed and the element index (wasm/layers.ts), regenerated in the backward pass rather than
 * stored; elsewhere it is tfjs' `tf.dropout`. Either way the same seed gives the same mask on one backend.
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, options: ApplyOptions = {}): T {
  if (!options.training || rate <= 0) return x;
  const seed = dropoutSeed(options);
  if (x.dtype !== 'float32' || !hasKernel(DROPOUT)) return tf.dropout(x, rate, undefined, seed) as T;
  const attrs = { rate, seed };
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc) => ({
    value: run(DROPOUT, { x: input as tf.Tensor }, attrs) as tf.Tensor,
    gradFunc: (dy: tf.Tensor) => run(DROPOUT, { x: dy }, attrs) as tf.Tensor,
  }));
  return op(x) as T;
}

/** Bounds latents smoothly to (-bound, bound): z / sqrt(1 + (z / bound)^2), near identity for |z| << bound. */
export function softclip<T extends tf.Tensor>(z: T, bound = 5): T {
  return tf.tidy(() => z.mul(tf.rsqrt(z.div(bound).square().add(1)))) as T;
}

// ---------------------------------------------------------------------------------------------------------
// Space-to-channel resampling

/**
 * 2D space-to-channel: [B, H, W, C] -> [B, H/f, W/f, C f f]. Output channel c*f*f + i*f + j holds pixel
 * (f y + i, f x + j) of channel c, the same ordering as the reference's `C (H h) (W w) -> (C h w) H W`.
 */
export function patchify(x: tf.Tensor4D, factor = 2): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (h % factor !== 0 || w % factor !== 0) {
    throw new Error(`patchify: spatial sizes must be multiples of ${factor}, received ${formatShape(x.shape)}`);
  }
  return tf.tidy(() =>
    x
      .reshape([b * (h / factor), factor, w / factor, factor, c])
      .transpose([0, 2, 4, 1, 3])
      .reshape([b, h / factor, w / factor, c * factor * factor]),
  );
}

/** Pixel shuffle, the inverse of `patchify`: [B, H, W, C f f] -> [B, H f, W f, C]. */
export function unpatchify(x: tf.Tensor4D, factor = 2): tf.Tensor4D {
  const [b, h, w, cff] = x.shape;
  if (cff % (factor * factor) !== 0) {
    throw new Error(`unpatchify: channels must be a multiple of ${factor * factor}, received ${formatShape(x.shape)}`);
  }
  const c = cff / (factor * factor);
  return tf.tidy(() =>
    x
      .reshape([b * h, w, c, factor, factor])
      .transpose([0, 3, 1, 4, 2])
      .reshape([b, h * factor, w * factor, c]),
  );
}
