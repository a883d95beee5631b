/**
 * Test helpers: a small MLP backbone over flattened windows (with mask, noise features and labels concatenated
 * to its input) and a plain Adam training loop, so emulator tests train real models in seconds.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone, Emulator, WindowBatch } from '../../src/models/diffusion/index.js';
import { Rng } from '../../src/streams/random.js';

export interface MlpOptions {
  /** Window shape (L, H, W, C). */
  window: readonly [number, number, number, number];
  hidden?: number;
  layers?: number;
  labels?: number;
  /** Whether c_noise is an input (false for a surrogate). */
  noise?: boolean;
  seed?: number;
}

const NOISE_FREQS = [1 / 64, 1 / 16, 1 / 4, 1];

/** Sinusoidal features of c_noise (which spans about [-70, 70]) plus a linear one. */
function noiseFeatures(cNoise: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const c = tf.reshape(cNoise, [-1, 1]);
    const angles = tf.mul(c, tf.tensor2d([NOISE_FREQS]));
    return tf.concat([tf.div(c, 70), tf.sin(angles), tf.cos(angles)], 1) as tf.Tensor2D;
  });
}

export function mlpBackbone(options: MlpOptions): Backbone {
  const { window, hidden = 128, layers = 3, labels = 0, noise = true, seed = 0 } = options;
  const [L, H, W, C] = window;
  const size = L * H * W * C;
  const inputs = size + L + (noise ? 1 + 2 * NOISE_FREQS.length : 0) + labels;
  const rng = new Rng(seed);
  const variable = (value: tf.Tensor) => {
    const v = tf.variable(value);
    value.dispose();
    return v;
  };
  const init = (rows: number, cols: number, scale: number) =>
    variable(tf.tensor2d(Float32Array.from({ length: rows * cols }, () => rng.normal() * scale), [rows, cols]));
  const weights: tf.Variable[] = [];
  const biases: tf.Variable[] = [];
  let fanIn = inputs;
  for (let i = 0; i <= layers; i++) {
    const out = i === layers ? size : hidden;
    weights.push(init(fanIn, out, i === layers ? 0.01 : Math.sqrt(2 / fanIn)));
    biases.push(variable(tf.zeros([out])));
    fanIn = out;
  }
  const fn = (x: tf.Tensor5D, mask: tf.Tensor2D | null, cNoise: tf.Tensor1D | null, label: tf.Tensor2D | null) =>
    tf.tidy(() => {
      const B = x.shape[0];
      const parts: tf.Tensor[] = [tf.reshape(x, [B, size]), mask ?? tf.zeros([B, L])];
      if (noise) {
        if (!cNoise) throw new Error('mlp: c_noise required');
        parts.push(noiseFeatures(cNoise));
      }
      if (labels > 0) {
        if (!label) throw new Error('mlp: labels required');
        parts.push(label);
      }
      let h: tf.Tensor = tf.concat(parts, 1);
      for (let i = 0; i <= layers; i++) {
        h = tf.add(tf.matMul(h, weights[i]), biases[i]);
        if (i < layers) h = tf.mul(h, tf.sigmoid(h)); // SiLU
      }
      return tf.reshape(h, x.shape) as tf.Tensor5D;
    });
  return Object.assign(fn, { variables: [...weights, ...biases] });
}

/**
 * Trains an emulator with Adam (cosine-decayed learning rate) on batches from `nextBatch`; returns the mean loss of
 * the last 10% of the steps. Tensors of each batch are disposed after its step.
 */
export function train(
  emulator: Emulator,
  nextBatch: (step: number) => WindowBatch,
  options: { steps: number; lr?: number; seed?: number },
): number {
  const { steps, lr = 3e-3, seed = 1 } = options;
  const variables = [...(emulator.backbone.variables ?? [])];
  const optimizer = tf.train.adam(lr);
  const rng = new Rng(seed);
  let tail = 0;
  let tailCount = 0;
  for (let step = 0; step < steps; step++) {
    (optimizer as unknown as { learningRate: number }).learningRate = lr * 0.5 * (1 + Math.cos((Math.PI * step) / steps));
    const batch = nextBatch(step);
    const loss = optimizer.minimize(() => emulator.loss(batch, rng), true, variables)!;
    if (step >= steps * 0.9) {
      tail += loss.dataSync()[0];
      tailCount++;
    }
    tf.dispose([loss, batch.x, batch.mask, batch.labels]);
  }
  optimizer.dispose();
  return tail / tailCount;
}
