/** A tiny conv model module for the data-parallel test: workers import it and call `build`. */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/streams/random.js';
import type { ParallelModel } from '../../src/models/train/parallel.js';

export function build(options: { seed: number; channels?: number }): ParallelModel<Record<string, tf.Tensor>> {
  const rng = new Rng(options.seed);
  const c = options.channels ?? 3;
  const v = (shape: number[], scale: number) =>
    tf.variable(tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)).map((x) => x * scale), shape));
  const params = new Map([
    ['conv.weight', v([3, 3, 2, c], 0.3)],
    ['conv.bias', v([c], 0.1)],
    ['head.weight', v([c, 2], 0.5)],
  ]);
  return {
    params,
    loss: ({ x, y }) => {
      const h = tf.conv2d(x as tf.Tensor4D, params.get('conv.weight') as tf.Tensor4D, 1, 'same').add(params.get('conv.bias')!);
      const pred = tf.tanh(h).mean([1, 2]).matMul(params.get('head.weight')!);
      return pred.sub(y).square().mean() as tf.Scalar;
    },
  };
}
