/**
 * Autoregressive rollouts: from initial context frames and labels, an emulator predicts a window of L states,
 * the last `context` predicted states become the next call's context, and so on. States are yielded one by one
 * as soon as their window is generated, and the next window is only computed when the consumer pulls past the
 * current one. An ensemble of M members runs batched in one call per window. Memory is bounded by the window:
 * only the context tensor persists between calls, whatever the horizon.
 */
import * as tf from '@tensorflow/tfjs';
import type { Emulator } from './emulator.js';
import { Rng } from '../../streams/random.js';
import { tensorSeed } from './random.js';

/** Where a rollout starts. */
export interface RolloutStart {
  /** Initial states (K, H, W, C) with K >= context; the last `context` are used. */
  states: Float32Array;
  shape: readonly [number, number, number, number];
  /** Simulation parameters (P), or null. */
  labels: Float32Array | null;
  /** An identifier passed through to the yielded states (trajectory name...). */
  id?: string | number;
}

export interface RolloutOptions {
  /** Number of states to generate. */
  horizon: number;
  /** States per emulator call (default 5; must match the emulator's training windows). */
  window?: number;
  /** States carried over between calls as context (default 1). */
  context?: number;
  /** Ensemble members, batched together (default 1). */
  ensemble?: number;
  /** Seed of the rollout (default 0): the same seed gives the same states. */
  seed?: number;
}

export interface RolloutState {
  /** Lead time: 1 for the first state after the initial context. */
  lead: number;
  /** The members' states (M, H, W, C). */
  states: Float32Array;
  shape: readonly [number, number, number, number];
  id?: string | number;
}

function checkOptions(options: RolloutOptions): Required<RolloutOptions> {
  const { horizon, window = 5, context = 1, ensemble = 1, seed = 0 } = options;
  const positive = (name: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new Error(`rollout: ${name} must be an integer >= ${min}, got ${v}`);
  };
  positive('horizon', horizon, 0);
  positive('window', window, 2);
  positive('context', context);
  positive('ensemble', ensemble);
  if (context >= window) throw new Error(`rollout: context (${context}) must be smaller than the window (${window})`);
  return { horizon, window, context, ensemble, seed };
}

/**
 * Rolls one trajectory out for `horizon` states (a source: nothing runs until pulled). Holds the context
 * (M, context, H, W, C) between calls and one window while yielding its states.
 */
export function rollout(emulator: Emulator, start: RolloutStart, options: RolloutOptions): AsyncIterable<RolloutState> {
  const { horizon, window, context, ensemble, seed } = checkOptions(options);
  const [K, H, W, C] = start.shape;
  const frame = H * W * C;
  if (start.states.length !== K * frame) {
    throw new Error(`rollout${start.id === undefined ? '' : ` ${start.id}`}: states has ${start.states.length} values, expected ${K * frame} for shape [${start.shape}]`);
  }
  if (K < context) throw new Error(`rollout: ${K} initial states given, context needs ${context}`);
  return {
    async *[Symbol.asyncIterator]() {
      const rng = new Rng(seed);
      const initial = start.states.subarray((K - context) * frame);
      // Every member starts from the same context; members differ through the sampler's noise.
      let ctx = tf.tidy(() => tf.tile(tf.tensor5d(initial, [1, context, H, W, C]), [ensemble, 1, 1, 1, 1])) as tf.Tensor5D;
      const mask = tf.tensor2d(
        Array.from({ length: ensemble * window }, (_, i) => (i % window < context ? 1 : 0)),
        [ensemble, window],
      );
      const labels = start.labels
        ? tf.tidy(() => tf.tile(tf.tensor2d(start.labels!, [1, start.labels!.length]), [ensemble, 1]) as tf.Tensor2D)
        : null;
      try {
        let lead = 0;
        while (lead < horizon) {
          const observed = tf.tidy(() => tf.concat([ctx, tf.zeros([ensemble, window - context, H, W, C])], 1)) as tf.Tensor5D;
          let predicted: tf.Tensor5D;
          try {
            predicted = emulator.predict({ observed, mask, labels }, tensorSeed(rng));
          } finally {
            observed.dispose();
          }
          let values: Float32Array;
          try {
            values = (await predicted.data()) as Float32Array;
            const next = tf.slice(predicted, [0, window - context], [ensemble, context]) as tf.Tensor5D;
            ctx.dispose();
            ctx = next;
          } finally {
            predicted.dispose();
          }
          for (let f = context; f < window && lead < horizon; f++) {
            const states = new Float32Array(ensemble * frame);
            for (let m = 0; m < ensemble; m++) {
              states.set(values.subarray((m * window + f) * frame, (m * window + f + 1) * frame), m * frame);
            }
            lead++;
            yield { lead, states, shape: [ensemble, H, W, C] as const, id: start.id };
          }
        }
      } finally {
        tf.dispose([ctx, mask]);
        if (labels) labels.dispose();
      }
    },
  };
}
