/**
 * The deep-compression convolutional autoencoder (DCAE) of the reference system, NHWC, 2D.
 *
 * Encoder, level by level: a 3x3 conv into the level's width (level 0), or a 2x2 space-to-channel patchify and
 * a 3x3 conv (deeper levels), then residual blocks x + FFN(LN(x)); after the last level a 3x3 conv to the latent
 * channels, and a softclip bounds the latents. The decoder mirrors it: 3x3 conv from the latent channels, and
 * per level residual blocks then a 3x3 conv and pixel shuffle up (or a 3x3 conv out at level 0). Convolutions
 * pad circularly on periodic axes and with zeros elsewhere. With L levels the spatial size shrinks by 2^(L-1).
 *
 * Parameter names: `encoder.levels.<i>.{in,down,out}.{weight,bias}`,
 * `encoder.levels.<i>.blocks.<j>.ffn.{conv1,conv2}.{weight,bias}`, and the same under `decoder.` with
 * `{in,up,out}`; level i is always the level at resolution 2^-i, in encoder and decoder alike.
 */
import * as tf from '@tensorflow/tfjs';
import { type Conv2d, type Periodic, createConv2d, dropout, layerNorm, patchify, silu, softclip, unpatchify } from './layers.js';
import { rematerialize } from './remat.js';
import { type ApplyOptions, type Network, type ParameterMap, ParameterScope, checkShape, disposeParameters, formatShape } from './module.js';

export interface DcaeConfig {
  /** Channels of the physical fields (input of the encoder, output of the decoder). */
  inChannels: number;
  /** Channels of the latent state. */
  latentChannels: number;
  /** Width of each level, finest first; the number of levels is its length. */
  channels: readonly number[];
  /** Residual blocks per level (one number for every level). */
  blocks: number | readonly number[];
  /** Which spatial axes (H, W) are periodic (default none). */
  periodic?: Periodic;
  /** Kernel size of every conv (default 3). */
  kernel?: number;
  /** Hidden width factor of the residual FFN (default 1). */
  ffnFactor?: number;
  /** Dropout rate inside the residual FFN, active in training mode (default 0.05). */
  dropout?: number;
  /** Softclip bound of the latents, or null for none (default 5). */
  softclipBound?: number | null;
  /** Start the resampling and in/out-of-latent convs as pseudo-identities (default true, as the reference). */
  identityInit?: boolean;
  /** Exact input size [H, W] to enforce, if any (presets set it). */
  inputSize?: readonly [number, number];
  /** Recompute residual blocks during backprop instead of keeping their intermediates (default false). */
  checkpointing?: boolean;
  /** Seed of the initial weights (default 0). */
  seed?: number;
}

/** A DCAE config with every default filled in. */
export type ResolvedDcaeConfig = Required<Omit<DcaeConfig, 'inputSize' | 'blocks'>> & {
  blocks: readonly number[];
  inputSize: readonly [number, number] | undefined;
};

function resolve(config: DcaeConfig): ResolvedDcaeConfig {
  const levels = config.channels.length;
  if (levels < 1) throw new Error('dcae config: channels must list at least one level');
  const blocks = typeof config.blocks === 'number' ? config.channels.map(() => config.blocks as number) : config.blocks;
  if (blocks.length !== levels) {
    throw new Error(`dcae config: blocks has ${blocks.length} entries, channels has ${levels} levels`);
  }
  for (const [name, v] of [['inChannels', config.inChannels], ['latentChannels', config.latentChannels], ...config.channels.map((c, i) => [`channels[${i}]`, c] as const)] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`dcae config: ${name} must be a positive integer, got ${v}`);
  }
  const resolved: ResolvedDcaeConfig = {
    inChannels: config.inChannels,
    latentChannels: config.latentChannels,
    channels: [...config.channels],
    blocks: [...blocks],
    periodic: config.periodic ?? [false, false],
    kernel: config.kernel ?? 3,
    ffnFactor: config.ffnFactor ?? 1,
    dropout: config.dropout ?? 0.05,
    softclipBound: config.softclipBound === undefined ? 5 : config.softclipBound,
    identityInit: config.identityInit ?? true,
    inputSize: config.inputSize,
    checkpointing: config.checkpointing ?? false,
    seed: config.seed ?? 0,
  };
  const f = 2 ** (levels - 1);
  if (resolved.inputSize && resolved.inputSize.some((s) => s % f !== 0)) {
    throw new Error(`dcae config: inputSize ${formatShape(resolved.inputSize)} must be multiples of ${f} for ${levels} levels`);
  }
  return resolved;
}

// ---------------------------------------------------------------------------------------------------------

export interface ResidualBlock {
  apply(x: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D;
}

/**
 * x + FFN(LN(x)): LayerNorm over channels (no affine), FFN = conv -> SiLU -> dropout -> conv, the last conv
 * initialised 1e-2 times smaller so each block starts near the identity.
 */
export function createResidualBlock(
  scope: ParameterScope,
  channels: number,
  options: { periodic: Periodic; kernel: number; ffnFactor: number; dropout: number; checkpointing?: boolean },
): ResidualBlock {
  const ffn = scope.child('ffn');
  const hidden = channels * options.ffnFactor;
  const conv1 = createConv2d(ffn.child('conv1'), channels, hidden, { kernel: options.kernel, periodic: options.periodic });
  const conv2 = createConv2d(ffn.child('conv2'), hidden, channels, {
    kernel: options.kernel,
    periodic: options.periodic,
    weightScale: 1e-2,
  });
  const params = [...scope.params].filter(([name]) => name.startsWith(`${scope.prefix}.`)).map(([, v]) => v);
  const forward = (x: tf.Tensor4D, applyOptions: ApplyOptions) =>
    tf.tidy(() => {
      let y = conv1.apply(layerNorm(x) as tf.Tensor4D);
      y = dropout(silu(y) as tf.Tensor4D, options.dropout, applyOptions);
      return x.add(conv2.apply(y)) as tf.Tensor4D;
    });
  return {
    apply(x, applyOptions = {}) {
      if (!options.checkpointing) return forward(x, applyOptions);
      const body = ([input]: tf.Tensor[], random: () => number) => forward(input as tf.Tensor4D, { ...applyOptions, random });
      return rematerialize(body, [x], params, applyOptions.random ?? Math.random) as tf.Tensor4D;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

export interface DcaeHalf {
  apply(x: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D;
}

export interface Dcae extends Network {
  readonly config: Readonly<ResolvedDcaeConfig>;
  /** Spatial downsampling factor 2^(levels - 1). */
  readonly factor: number;
  /** Raw encoder (no softclip): [B, H, W, inChannels] -> [B, H/f, W/f, latentChannels]. */
  readonly encoder: DcaeHalf;
  /** Decoder: [B, h, w, latentChannels] -> [B, h f, w f, inChannels]. */
  readonly decoder: DcaeHalf;
  /** Encoder followed by the softclip: the latents the emulators see. */
  encode(x: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D;
  decode(z: tf.Tensor4D, options?: ApplyOptions): tf.Tensor4D;
  /** Reconstruction and latents of one batch. */
  apply(x: tf.Tensor4D, options?: ApplyOptions): { y: tf.Tensor4D; z: tf.Tensor4D };
  /** Latent shape [h, w, latentChannels] for an input of size [H, W]. */
  latentShape(size: readonly [number, number]): [number, number, number];
}

function buildEncoder(scope: ParameterScope, c: ResolvedDcaeConfig, factor: number): DcaeHalf {
  const convOptions = { kernel: c.kernel, periodic: c.periodic };
  const blockOptions = { ...convOptions, ffnFactor: c.ffnFactor, dropout: c.dropout, checkpointing: c.checkpointing };
  const last = c.channels.length - 1;
  const levels = c.channels.map((width, i) => {
    const level = scope.child('levels').child(i);
    const entry: Conv2d =
      i === 0
        ? createConv2d(level.child('in'), c.inChannels, width, convOptions)
        : createConv2d(level.child('down'), c.channels[i - 1] * 4, width, { ...convOptions, identityInit: c.identityInit });
    const blocks = Array.from({ length: c.blocks[i] }, (_, j) => createResidualBlock(level.child('blocks').child(j), width, blockOptions));
    const exit = i === last ? createConv2d(level.child('out'), width, c.latentChannels, { ...convOptions, identityInit: c.identityInit }) : undefined;
    return { entry, blocks, exit, down: i > 0 };
  });
  return {
    apply(x, options = {}) {
      checkShape('dcae encoder input', x, ['B', c.inputSize?.[0] ?? 'H', c.inputSize?.[1] ?? 'W', c.inChannels], {
        test: (s) => s[1] % factor === 0 && s[2] % factor === 0,
        describe: `H and W multiples of ${factor}`,
      });
      return tf.tidy(() => {
        let h = x;
        for (const level of levels) {
          h = level.entry.apply(level.down ? patchify(h) : h);
          for (const block of level.blocks) h = block.apply(h, options);
          if (level.exit) h = level.exit.apply(h);
        }
        return h;
      });
    },
  };
}

function buildDecoder(scope: ParameterScope, c: ResolvedDcaeConfig, factor: number): DcaeHalf {
  const convOptions = { kernel: c.kernel, periodic: c.periodic };
  const blockOptions = { ...convOptions, ffnFactor: c.ffnFactor, dropout: c.dropout, checkpointing: c.checkpointing };
  const last = c.channels.length - 1;
  // Created deepest level first (the order they run in), named by resolution level like the encoder.
  const levels = c.channels
    .map((width, i) => ({ width, i }))
    .reverse()
    .map(({ width, i }) => {
      const level = scope.child('levels').child(i);
      const entry = i === last ? createConv2d(level.child('in'), c.latentChannels, width, { ...convOptions, identityInit: c.identityInit }) : undefined;
      const blocks = Array.from({ length: c.blocks[i] }, (_, j) => createResidualBlock(level.child('blocks').child(j), width, blockOptions));
      const exit =
        i > 0
          ? createConv2d(level.child('up'), width, c.channels[i - 1] * 4, { ...convOptions, identityInit: c.identityInit })
          : createConv2d(level.child('out'), width, c.inChannels, convOptions);
      return { entry, blocks, exit, up: i > 0 };
    });
  const expected = c.inputSize ? c.inputSize.map((s) => s / factor) : undefined;
  return {
    apply(z, options = {}) {
      checkShape('dcae decoder input', z, ['B', expected?.[0] ?? 'h', expected?.[1] ?? 'w', c.latentChannels]);
      return tf.tidy(() => {
        let h = z;
        for (const level of levels) {
          if (level.entry) h = level.entry.apply(h);
          for (const block of level.blocks) h = block.apply(h, options);
          h = level.exit.apply(h);
          if (level.up) h = unpatchify(h);
        }
        return h;
      });
    },
  };
}

/** Builds a DCAE with fresh parameters (seeded by `config.seed`). */
export function createDcae(config: DcaeConfig): Dcae {
  const c = resolve(config);
  const factor = 2 ** (c.channels.length - 1);
  const root = ParameterScope.root(c.seed);
  const encoder = buildEncoder(root.child('encoder'), c, factor);
  const decoder = buildDecoder(root.child('decoder'), c, factor);
  const params: ParameterMap = root.params;
  const bound = c.softclipBound;
  const encode = (x: tf.Tensor4D, options: ApplyOptions = {}) =>
    tf.tidy(() => {
      const z = encoder.apply(x, options);
      return bound === null ? z : softclip(z, bound);
    });
  return {
    config: c,
    factor,
    params,
    encoder,
    decoder,
    encode,
    decode: (z, options = {}) => decoder.apply(z, options),
    apply(x, options = {}) {
      const z = encode(x, options);
      const y = decoder.apply(z, options);
      return { y, z };
    },
    latentShape([h, w]) {
      if (h % factor !== 0 || w % factor !== 0) throw new Error(`dcae: input size [${h}, ${w}] is not a multiple of ${factor}`);
      return [h / factor, w / factor, c.latentChannels];
    },
    dispose: () => disposeParameters(params),
  };
}

// ---------------------------------------------------------------------------------------------------------

export interface VmseOptions {
  /** Added to the variance (default 1e-2, as the reference). */
  eps?: number;
  /** Average the square roots of the per-(sample, channel) ratios instead (the "VRMSE" loss). */
  sqrt?: boolean;
}

/**
 * Variance-normalised MSE of channel-last tensors [B, ...spatial, C]: for every sample and channel,
 * mean over space of (target - prediction)^2 divided by (unbiased spatial variance of the target + eps),
 * then the mean over samples and channels. Returns a scalar.
 */
export function vmseLoss(target: tf.Tensor, prediction: tf.Tensor, options: VmseOptions = {}): tf.Scalar {
  const eps = options.eps ?? 1e-2;
  if (target.rank < 3 || target.shape.some((d, i) => d !== prediction.shape[i]) || target.rank !== prediction.rank) {
    throw new Error(
      `vmseLoss: expected target and prediction of the same shape [B, ...spatial, C], received ${formatShape(target.shape)} and ${formatShape(prediction.shape)}`,
    );
  }
  const spatial = Array.from({ length: target.rank - 2 }, (_, i) => i + 1);
  const n = spatial.reduce((a, i) => a * target.shape[i], 1);
  if (n < 2) throw new Error(`vmseLoss: need at least 2 spatial points, received ${formatShape(target.shape)}`);
  return tf.tidy(() => {
    const mse = tf.squaredDifference(target, prediction).mean(spatial);
    const mean = target.mean(spatial, true);
    const variance = tf.squaredDifference(target, mean).sum(spatial).div(n - 1);
    const ratio = mse.div(variance.add(eps));
    return (options.sqrt ? ratio.sqrt() : ratio).mean() as tf.Scalar;
  });
}
