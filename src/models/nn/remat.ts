/**
 * Gradient checkpointing (rematerialisation) for tfjs: run a sub-network without keeping its intermediates for
 * backprop, and recompute them when its gradient is needed. A ViT block at batch 32 keeps about a gigabyte of
 * intermediates on the tape (tfjs saves the inputs of nearly every op, even when only their shapes are needed);
 * the wasm backend's heap stops at 4 GB. With rematerialisation only each block's inputs stay alive; the price
 * is one extra forward pass of the block during backprop.
 *
 * tfjs has no such facility. It is built from `tf.customGrad`: the forward runs with the tape off (tfjs records
 * nothing inside a custom op), and the gradient function re-runs the body under `engine.gradients`. tfjs 4.22
 * does not expect a fresh gradient computation in the middle of a backward pass (the inner call replaces, then
 * clears, the engine's active tape), so the outer tape is put back afterwards. Dropout inside the body draws its
 * seeds through the `random` it is given; the draws are recorded and replayed, so the recomputed forward uses the
 * same masks.
 */
import * as tf from '@tensorflow/tfjs';

interface EngineTapeState {
  state: { activeTape: unknown };
}

/**
 * Computes `body(inputs, random)` so that backprop recomputes it instead of storing its intermediates.
 * `body` must use only `inputs` (tensors it receives) and `params` (variables it closes over); tensors it
 * captures otherwise would be freed before the recomputation. Returns the body's output.
 */
export function rematerialize(
  body: (inputs: tf.Tensor[], random: () => number) => tf.Tensor,
  inputs: readonly tf.Tensor[],
  params: readonly tf.Variable[],
  random: () => number = Math.random,
): tf.Tensor {
  const draws: number[] = [];
  const recording = () => {
    const value = random();
    draws.push(value);
    return value;
  };
  const count = inputs.length;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, count) as tf.Tensor[];
    save(xs);
    const value = body(xs, recording);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        let k = 0;
        const replay = () => {
          if (k >= draws.length) throw new Error('rematerialize: the recomputation drew more random numbers than the forward pass');
          return draws[k++];
        };
        const targets: tf.Tensor[] = [...saved, ...params];
        const engine = tf.engine() as unknown as EngineTapeState;
        const outerTape = engine.state.activeTape;
        try {
          const { value: recomputed, grads } = tf.engine().gradients(() => body(saved, replay), targets, dy, true);
          recomputed.dispose();
          return targets.map((t, i) => grads[i] ?? tf.zerosLike(t));
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  });
  return op(...inputs, ...params);
}
