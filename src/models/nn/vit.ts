/**
 * A vision transformer over space-time latent tokens, the backbone of the latent emulators.
 *
 * Input: latent windows [B, L, H, W, C] (L frames of H x W latent pixels) and mask channels [B, L, H, W, Cm]
 * saying which values are observed. Every latent pixel of every frame is one token (patch size 1): the tokens
 * (latents concatenated with mask channels) are projected to the model width, a learned projection of
 * sinusoidal features of the token's (t, h, w) coordinates is added, and DiT-style blocks follow:
 *
 *   h = LN(x) (1 + scale1) + shift1;  x = x + gate1 * Attention(h)
 *   h = LN(x) (1 + scale2) + shift2;  x = x + gate2 * FFN(h)
 *
 * with the six modulation vectors computed per sample from an embedding (noise embedding of c_noise: sinusoidal
 * features then an MLP; plus a label embedding: an MLP of the simulation-parameter vector). A network without
 * noise nor labels (the deterministic surrogate without labels) learns one fixed modulation per block instead.
 * Attention is full multi-head self-attention with RMS-normalised queries and keys (QK-norm) and rotary
 * position embedding over (t, h, w) with learned mixed frequencies per block and head (RoPE-Mixed): the angle of
 * a channel pair is theta . (t, h, w). Keeping both encodings follows the reference: RoPE makes attention
 * depend on relative offsets, the absolute embedding tells the network which frame is which. A final modulated
 * LayerNorm and a linear projection give an output of the input's latent shape.
 *
 * Parameter names: `in_proj`, `out_proj`, `positional_embedding`, `noise_embedding.{fc1,fc2}`,
 * `label_embedding.{fc1,fc2}`, `blocks.<i>.modulation`, `blocks.<i>.attn.{qkv,out,theta}`,
 * `blocks.<i>.ffn.{fc1,fc2}`, `final.modulation`.
 */
import * as tf from '@tensorflow/tfjs';
import { type Linear, createLinear, dropout, layerNorm, rmsNorm, silu } from './layers.js';
import { rematerialize } from './remat.js';
import { ROTARY, ROTARY_GRAD, rotaryShapesFit } from '../backend/wasm/rotary.js';
import type { SeededRandom } from '../../streams/random.js';
import {
  type ApplyOptions,
  type Network,
  ParameterScope,
  checkShape,
  disposeParameters,
  formatShape,
  normalInit,
} from './module.js';

export interface VitConfig {
  /** Latent channels C of the input and output. */
  channels: number;
  /** Mask channels concatenated to the input (default: `channels`, as the reference; 0 for none). */
  maskChannels?: number;
  /** Token width. */
  width: number;
  /** Number of transformer blocks. */
  depth: number;
  /** Attention heads (width / heads must be even, for the rotary pairs). */
  heads: number;
  /** FFN hidden width = ffnFactor * width (default 4). */
  ffnFactor?: number;
  /** Width of the noise/label embedding that drives the modulation (default 256). */
  embeddingFeatures?: number;
  /** Whether the network takes a noise level c_noise (default true; false for a deterministic surrogate). */
  noise?: boolean;
  /** Size of the simulation-parameter vector (default 0: no labels). */
  labelFeatures?: number;
  /** Rotary position embedding over (t, h, w) (default true). */
  rope?: boolean;
  /** Learned projection of sinusoidal (t, h, w) features added to the tokens (default true). */
  absolutePosition?: boolean;
  /** Sinusoidal features per coordinate axis for the absolute embedding (default 32). */
  positionFeatures?: number;
  /** Dropout in the FFN, in training mode (default 0). */
  dropout?: number;
  /**
   * Recompute each block's intermediates during backprop instead of keeping them (gradient checkpointing):
   * memory for one block instead of all, for about one more forward pass (default false).
   */
  checkpointing?: boolean;
  /** Exact token grid [L, H, W] to enforce, if any (presets set it). */
  tokens?: readonly [number, number, number];
  /** Seed of the initial weights (default 0). */
  seed?: number;
}

/** Conditioning inputs of one call. */
export interface VitInputs {
  /** Mask channels [B, L, H, W, maskChannels] (1 where observed), required when maskChannels > 0. */
  mask?: tf.Tensor;
  /** Noise conditioning c_noise, [B] (or a scalar for the whole batch); required when `noise` is on. */
  noise?: tf.Tensor;
  /** Simulation parameters [B, labelFeatures]; required when labelFeatures > 0. */
  label?: tf.Tensor;
}

/** A ViT config with every default filled in. */
export type ResolvedVitConfig = Required<Omit<VitConfig, 'tokens'>> & { tokens: readonly [number, number, number] | undefined };

export interface Vit extends Network {
  readonly config: Readonly<ResolvedVitConfig>;
  /** [B, L, H, W, C] latents (+ conditioning) -> [B, L, H, W, C]. */
  apply(x: tf.Tensor, inputs?: VitInputs, options?: ApplyOptions): tf.Tensor;
}

function resolveVit(config: VitConfig): ResolvedVitConfig {
  const c: ResolvedVitConfig = {
    channels: config.channels,
    maskChannels: config.maskChannels ?? config.channels,
    width: config.width,
    depth: config.depth,
    heads: config.heads,
    ffnFactor: config.ffnFactor ?? 4,
    embeddingFeatures: config.embeddingFeatures ?? 256,
    noise: config.noise ?? true,
    labelFeatures: config.labelFeatures ?? 0,
    rope: config.rope ?? true,
    absolutePosition: config.absolutePosition ?? true,
    positionFeatures: config.positionFeatures ?? 32,
    dropout: config.dropout ?? 0,
    checkpointing: config.checkpointing ?? false,
    tokens: config.tokens,
    seed: config.seed ?? 0,
  };
  for (const key of ['channels', 'width', 'depth', 'heads', 'ffnFactor', 'embeddingFeatures'] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`vit config: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.width % c.heads !== 0 || (c.width / c.heads) % 2 !== 0) {
    throw new Error(`vit config: width ${c.width} must split into ${c.heads} heads of even size`);
  }
  if (c.embeddingFeatures % 2 !== 0 || c.positionFeatures % 2 !== 0) {
    throw new Error('vit config: embeddingFeatures and positionFeatures must be even');
  }
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Encodings

/**
 * Sinusoidal features of scalars: [..., 1] -> [..., features], sin and cos at `features / 2` frequencies
 * geometrically spaced from 1 down to 1 / maxPeriod (radians per unit).
 */
export function sinusoidalEncoding(values: tf.Tensor, features: number, maxPeriod = 1e3): tf.Tensor {
  const half = features / 2;
  const freqs = Array.from({ length: half }, (_, i) => maxPeriod ** (-i / Math.max(half - 1, 1)));
  return tf.tidy(() => {
    const angles = values.mul(tf.tensor1d(freqs));
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1);
  });
}

/** Integer (t, h, w) coordinates of the tokens of an [L, H, W] grid in row-major order, [N, 3]. */
export function tokenCoordinates(frames: number, height: number, width: number): tf.Tensor2D {
  const n = frames * height * width;
  const coords = new Float32Array(n * 3);
  let k = 0;
  for (let t = 0; t < frames; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        coords[k++] = t;
        coords[k++] = y;
        coords[k++] = x;
      }
  return tf.tensor2d(coords, [n, 3]);
}

/**
 * Rotates channel pairs of queries or keys [B, heads, N, d] by per-token angles [heads, N, d/2]: channel i is
 * paired with channel i + d/2 (the "rotate half" pairing). The dot product of a rotated query and key then
 * depends on the positions only through the angle difference.
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && rotaryShapesFit(x.shape, cos.shape) && tf.getKernel(ROTARY, tf.getBackend())) {
    // One kernel each way (backend/wasm/rotary.ts) instead of split, four products, two sums and concat.
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [v, c, s] = args as tf.Tensor[];
      (args[3] as tf.GradSaveFunc)([v, c, s]);
      return {
        value: tf.engine().runKernel(ROTARY, { x: v, cos: c, sin: s }) as tf.Tensor,
        gradFunc: (dy: tf.Tensor, [vs, cs, ss]: tf.Tensor[]) => tf.engine().runKernel(ROTARY_GRAD, { dy, x: vs, cos: cs, sin: ss }) as tf.Tensor[],
      };
    });
    return op(x, cos, sin);
  }
  return tf.tidy(() => {
    const [a, b] = tf.split(x, 2, -1);
    return tf.concat([a.mul(cos).sub(b.mul(sin)), a.mul(sin).add(b.mul(cos))], -1);
  });
}

/**
 * Estimated wasm-heap bytes a ViT training step needs to keep its tape (every block's intermediates) for `batch`
 * samples on one thread, without gradient checkpointing: 4 bytes x 100 x tokens x width per block and sample.
 * The factor is measured (heap growth over training steps, with the wasm kernels' zero-copy Identity): vit-small
 * (width 256, 6 blocks, 320 tokens) 1.50 GB at batch 8 and 2.95 GB at 16; the demo's ViT (width 96, 4 blocks,
 * 80 tokens) 0.19 GB at batch 16 and 0.34 GB at 32 (2026-11-30).
 */
export function vitTapeBytes(config: Pick<VitConfig, 'width' | 'depth'> & { tokens: readonly [number, number, number] }, batch: number): number {
  const tokens = config.tokens[0] * config.tokens[1] * config.tokens[2];
  return 4 * 100 * tokens * config.width * config.depth * batch;
}

/**
 * The tape size above which training checkpoints (recomputes) the blocks, out of the wasm backend's 4 GB heap:
 * below it the tape is kept, since recomputation measured 1.5x (vit-small) to 2.5x (the demo's ViT) a step's time.
 */
export const CHECKPOINTING_BUDGET_BYTES = 2 * 2 ** 30;

/**
 * Whether to checkpoint for a `setting` of 'on', 'off' or 'auto' (checkpoint only when the estimated tape of
 * `batch` samples per thread, `vitTapeBytes`, passes CHECKPOINTING_BUDGET_BYTES).
 */
export function resolveCheckpointing(
  setting: string,
  config: Pick<VitConfig, 'width' | 'depth'> & { tokens: readonly [number, number, number] },
  batch: number,
): boolean {
  if (setting === 'on') return true;
  if (setting === 'off') return false;
  if (setting !== 'auto') throw new Error(`checkpointing must be "auto", "on" or "off", got "${setting}"`);
  return vitTapeBytes(config, batch) > CHECKPOINTING_BUDGET_BYTES;
}

/** Mixed rotary frequencies: per pair, a random unit direction in (t, h, w) times a log-uniform magnitude. */
function ropeInit(shape: readonly number[], random: SeededRandom): Float32Array {
  const [axes, pairs] = shape;
  const out = new Float32Array(axes * pairs);
  for (let p = 0; p < pairs; p++) {
    const magnitude = 10 ** -(2 * random.uniform()); // in [1e-2, 1] radians per token
    const dir = Array.from({ length: axes }, () => random.normal());
    const norm = Math.hypot(...dir) || 1;
    for (let a = 0; a < axes; a++) out[a * pairs + p] = (magnitude * dir[a]) / norm;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Blocks

interface Modulation {
  /** [B, k C] or [k C] modulation from the embedding (or fixed). */
  apply(embedding: tf.Tensor | undefined): tf.Tensor;
}

/** Per-sample modulation SiLU(emb) W + b (W initialised small), or a learned constant when there is no input. */
function createModulation(scope: ParameterScope, embeddingFeatures: number | undefined, outputs: number): Modulation {
  if (embeddingFeatures === undefined) {
    const constant = scope.create('bias', [outputs], normalInit(1e-2));
    return { apply: () => constant };
  }
  const linear = createLinear(scope, embeddingFeatures, outputs, { weightScale: 1e-2, zeroBias: true });
  return {
    apply: (embedding) => {
      if (!embedding) throw new Error(`${scope.prefix}: modulation embedding missing`);
      return linear.apply(silu(embedding));
    },
  };
}

/** Adds the token axis so per-sample vectors broadcast over tokens: [B, C] -> [B, 1, C]; [C] stays. */
const overTokens = (v: tf.Tensor) => (v.rank === 2 ? v.expandDims(1) : v);

function modulate(x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor): tf.Tensor {
  return layerNorm(x).mul(overTokens(scale).add(1)).add(overTokens(shift));
}

interface Block {
  /** Tokens [B, N, width], embedding [B, E] (if any), token coordinates [N, 3]. */
  apply(x: tf.Tensor, embedding: tf.Tensor | undefined, coords: tf.Tensor, options: ApplyOptions): tf.Tensor;
}

function createBlock(scope: ParameterScope, c: ResolvedVitConfig, embeddingFeatures: number | undefined): Block {
  const width = c.width;
  const heads = c.heads;
  const headDim = width / heads;
  const modulation = createModulation(scope.child('modulation'), embeddingFeatures, 6 * width);
  const attnScope = scope.child('attn');
  const qkv = createLinear(attnScope.child('qkv'), width, 3 * width, { bias: false });
  const out = createLinear(attnScope.child('out'), width, width);
  const theta = c.rope ? attnScope.create('theta', [3, width / 2], ropeInit) : undefined;
  const fc1 = createLinear(scope.child('ffn').child('fc1'), width, c.ffnFactor * width);
  const fc2 = createLinear(scope.child('ffn').child('fc2'), c.ffnFactor * width, width);
  const params = [...scope.params].filter(([name]) => name.startsWith(`${scope.prefix}.`)).map(([, v]) => v);

  const attention = (h: tf.Tensor, coords: tf.Tensor) => {
    const [b, n] = h.shape;
    const toHeads = (t: tf.Tensor) => t.reshape([b, n, heads, headDim]).transpose([0, 2, 1, 3]);
    const [q0, k0, v0] = tf.split(qkv.apply(h), 3, -1);
    // the 1/sqrt(d) scale goes on the queries: scaling the [N, N] scores would keep another copy of them
    let q = rmsNorm(toHeads(q0)).mul(1 / Math.sqrt(headDim));
    let k = rmsNorm(toHeads(k0));
    const v = toHeads(v0);
    if (theta) {
      // [N, 3] x [3, width/2] -> per head [heads, N, headDim/2]
      const angles = tf.matMul(coords, theta).reshape([n, heads, headDim / 2]).transpose([1, 0, 2]);
      const cos = tf.cos(angles);
      const sin = tf.sin(angles);
      q = applyRotary(q, cos, sin);
      k = applyRotary(k, cos, sin);
    }
    const weights = tf.softmax(tf.matMul(q, k, false, true));
    const y = tf.matMul(weights, v).transpose([0, 2, 1, 3]).reshape([b, n, width]);
    return out.apply(y);
  };

  const forward = (x: tf.Tensor, embedding: tf.Tensor | undefined, coords: tf.Tensor, options: ApplyOptions) =>
    tf.tidy(() => {
      const [shift1, scale1, gate1, shift2, scale2, gate2] = tf.split(modulation.apply(embedding), 6, -1);
      let y = x.add(overTokens(gate1).mul(attention(modulate(x, shift1, scale1), coords)));
      const hidden = dropout(silu(fc1.apply(modulate(y, shift2, scale2))), c.dropout, options);
      y = y.add(overTokens(gate2).mul(fc2.apply(hidden)));
      return y;
    });

  return {
    apply(x, embedding, coords, options) {
      if (!c.checkpointing) return forward(x, embedding, coords, options);
      const inputs = embedding ? [x, embedding, coords] : [x, coords];
      const body = (xs: tf.Tensor[], random: () => number) =>
        embedding ? forward(xs[0], xs[1], xs[2], { ...options, random }) : forward(xs[0], undefined, xs[1], { ...options, random });
      return rematerialize(body, inputs, params, options.random ?? Math.random);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

interface Embedder {
  apply(inputs: tf.Tensor): tf.Tensor;
}

function createMlp(scope: ParameterScope, inFeatures: number, features: number): Embedder {
  const fc1 = createLinear(scope.child('fc1'), inFeatures, features);
  const fc2 = createLinear(scope.child('fc2'), features, features);
  return { apply: (x) => tf.tidy(() => fc2.apply(silu(fc1.apply(x)))) };
}

/** Builds a ViT with fresh parameters (seeded by `config.seed`). */
export function createVit(config: VitConfig): Vit {
  const c = resolveVit(config);
  const root = ParameterScope.root(c.seed);
  const hasEmbedding = c.noise || c.labelFeatures > 0;
  const emb = hasEmbedding ? c.embeddingFeatures : undefined;

  const inProj = createLinear(root.child('in_proj'), c.channels + c.maskChannels, c.width);
  const positional: Linear | undefined = c.absolutePosition
    ? createLinear(root.child('positional_embedding'), 3 * c.positionFeatures, c.width)
    : undefined;
  const noiseEmbedding = c.noise ? createMlp(root.child('noise_embedding'), c.embeddingFeatures, c.embeddingFeatures) : undefined;
  const labelEmbedding = c.labelFeatures > 0 ? createMlp(root.child('label_embedding'), c.labelFeatures, c.embeddingFeatures) : undefined;
  const blocks = Array.from({ length: c.depth }, (_, i) => createBlock(root.child('blocks').child(i), c, emb));
  const finalModulation = createModulation(root.child('final').child('modulation'), emb, 2 * c.width);
  const outProj = createLinear(root.child('out_proj'), c.width, c.channels);
  const params = root.params;

  function check(x: tf.Tensor, inputs: VitInputs) {
    const [tl, th, tw] = c.tokens ?? ['L', 'H', 'W'];
    checkShape('vit input', x, ['B', tl, th, tw, c.channels]);
    const [b, l, h, w] = x.shape;
    if (c.maskChannels > 0) {
      if (!inputs.mask) throw new Error(`vit: mask of shape ${formatShape([b, l, h, w, c.maskChannels])} required`);
      checkShape('vit mask', inputs.mask, [b, l, h, w, c.maskChannels]);
    } else if (inputs.mask) {
      throw new Error('vit: a mask was given but the network has maskChannels = 0');
    }
    if (c.noise) {
      if (!inputs.noise) throw new Error(`vit: noise level c_noise of shape [${b}] required`);
      if (inputs.noise.rank !== 0) checkShape('vit noise', inputs.noise, [b]);
    } else if (inputs.noise) {
      throw new Error('vit: a noise level was given but the network was built with noise = false');
    }
    if (c.labelFeatures > 0) {
      if (!inputs.label) throw new Error(`vit: label of shape ${formatShape([b, c.labelFeatures])} required`);
      checkShape('vit label', inputs.label, [b, c.labelFeatures]);
    } else if (inputs.label) {
      throw new Error('vit: a label was given but the network was built with labelFeatures = 0');
    }
  }

  return {
    config: c,
    params,
    apply(x, inputs = {}, options = {}) {
      check(x, inputs);
      const [b, l, h, w] = x.shape;
      const n = l * h * w;
      return tf.tidy(() => {
        const features = inputs.mask ? tf.concat([x, inputs.mask], -1) : x;
        let tokens = inProj.apply(features.reshape([b, n, c.channels + c.maskChannels]));
        const coords = tokenCoordinates(l, h, w);
        if (positional) {
          const enc = sinusoidalEncoding(coords.reshape([n, 3, 1]), c.positionFeatures, 1e2).reshape([n, 3 * c.positionFeatures]);
          tokens = tokens.add(positional.apply(enc));
        }
        let embedding: tf.Tensor | undefined;
        if (noiseEmbedding && inputs.noise) {
          const noise = inputs.noise.rank === 0 ? inputs.noise.reshape([1, 1]).tile([b, 1]) : inputs.noise.reshape([b, 1]);
          embedding = noiseEmbedding.apply(sinusoidalEncoding(noise, c.embeddingFeatures));
        }
        if (labelEmbedding && inputs.label) {
          const e = labelEmbedding.apply(inputs.label);
          embedding = embedding ? embedding.add(e) : e;
        }
        for (const block of blocks) tokens = block.apply(tokens, embedding, coords, options);
        const [shift, scale] = tf.split(finalModulation.apply(embedding), 2, -1);
        const y = outProj.apply(modulate(tokens, shift, scale));
        return y.reshape([b, l, h, w, c.channels]);
      });
    },
    dispose: () => disposeParameters(params),
  };
}

/**
 * Mask channels for context frames: [B, L, H, W, C] with ones on the first `observed[b]` frames of sample b
 * (one number: the same for every sample), zeros elsewhere.
 */
export function contextMask(shape: readonly [number, number, number, number, number], observed: number | readonly number[]): tf.Tensor {
  const [b, l, h, w, ch] = shape;
  const counts = typeof observed === 'number' ? Array.from({ length: b }, () => observed) : observed;
  if (counts.length !== b) throw new Error(`contextMask: ${counts.length} observed counts for a batch of ${b}`);
  const frame = h * w * ch;
  const values = new Float32Array(b * l * frame);
  counts.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k > l) throw new Error(`contextMask: observed frames must be in [0, ${l}], got ${k}`);
    values.fill(1, i * l * frame, (i * l + k) * frame);
  });
  return tf.tensor(values, [b, l, h, w, ch]);
}
