/**
 * Loss and gradients of one batch, optionally in micro-batches (gradient accumulation). tfjs keeps every forward
 * activation and every intermediate gradient of a backward pass alive until the pass ends (with the native
 * kernels a vit-small step grows the wasm heap by about 65 MB per sample: 1.1 GB for 16, 2.1 GB for 32), so large
 * batches must be split to fit the wasm heap (4 GB at most); splitting costs speed (micro-batches of 4 took about
 * 7% more CPU than 16 at once for vit-small). The
 * micro-batch gradients are averaged with weights proportional to their sizes, which equals the whole-batch
 * gradient for losses that are means over the batch.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from './optim.js';
import type { LossFunction, StepContext, TensorGradients } from './types.js';

/** Number of samples (first dimension) of a tensor or a record of tensors; undefined for other batches. */
export function batchSize(batch: unknown): number | undefined {
  if (batch instanceof tf.Tensor) return batch.rank > 0 ? batch.shape[0] : undefined;
  if (typeof batch !== 'object' || batch === null) return undefined;
  const values = Object.values(batch);
  if (values.length === 0 || !values.every((v) => v instanceof tf.Tensor && v.rank > 0)) return undefined;
  const n = (values[0] as tf.Tensor).shape[0];
  return values.every((v) => (v as tf.Tensor).shape[0] === n) ? n : undefined;
}

/** Rows [start, start + size) of every tensor in the batch (new tensors). */
export function sliceBatch<B>(batch: B, start: number, size: number): B {
  const cut = (t: tf.Tensor) => tf.slice(t, [start, ...t.shape.slice(1).map(() => 0)], [size, ...t.shape.slice(1)]);
  if (batch instanceof tf.Tensor) return cut(batch) as B;
  return Object.fromEntries(Object.entries(batch as Record<string, tf.Tensor>).map(([k, v]) => [k, cut(v)])) as B;
}

/**
 * Loss and named gradients of `batch`, in chunks of at most `microBatch` samples when given (the batch must then
 * be a tensor or a record of tensors sharing their first dimension).
 */
export async function computeGradients<B>(
  loss: LossFunction<B>,
  batch: B,
  context: StepContext,
  variables: tf.Variable[],
  nameOf: Map<string, string>,
  microBatch?: number,
): Promise<TensorGradients> {
  const n = microBatch === undefined ? undefined : batchSize(batch);
  if (microBatch !== undefined && n === undefined) {
    throw new Error('micro-batching needs a batch that is a tensor or a record of tensors with the same first dimension');
  }
  if (microBatch !== undefined && !(Number.isInteger(microBatch) && microBatch >= 1)) {
    throw new Error(`microBatch must be a positive integer, got ${microBatch}`);
  }
  const one = async (part: B): Promise<{ loss: number; grads: NamedTensors }> => {
    const { value, grads } = tf.tidy(() => tf.variableGrads(() => loss(part, context), variables));
    const named = new Map<string, tf.Tensor>();
    for (const [varName, g] of Object.entries(grads)) named.set(nameOf.get(varName) ?? varName, g);
    try {
      return { loss: (await value.data())[0], grads: named };
    } finally {
      value.dispose();
    }
  };
  if (n === undefined || microBatch === undefined || n <= microBatch) return one(batch);
  let total = 0;
  const sum = new Map<string, tf.Tensor>();
  try {
    for (let start = 0; start < n; start += microBatch) {
      const size = Math.min(microBatch, n - start);
      const weight = size / n;
      const part = sliceBatch(batch, start, size);
      let result: { loss: number; grads: NamedTensors };
      try {
        result = await one(part);
      } finally {
        tf.dispose(part as unknown as tf.TensorContainer);
      }
      total += weight * result.loss;
      for (const [name, g] of result.grads) {
        const previous = sum.get(name);
        sum.set(name, tf.tidy(() => (previous ? previous.add(g.mul(weight)) : g.mul(weight))));
        previous?.dispose();
        g.dispose();
      }
    }
  } catch (err) {
    tf.dispose([...sum.values()]);
    throw err;
  }
  return { loss: total, grads: sum };
}
