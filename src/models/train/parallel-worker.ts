/**
 * Worker-thread side of `ParallelGradients` (parallel.ts): builds the network from the model module on its own
 * wasm backend, then for each shard reads the current weights from the shared buffer, computes loss and gradients
 * and writes the gradients into its shared gradient region (straight from the wasm heap; zeros for parameters
 * without a gradient), and answers with the loss and which parameters got a gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '../backend/select.js';
import { heapBuffer, heapOffset, type WasmBackendInternals } from '../backend/wasm/module.js';
import { slotOf } from './layout.js';
import { Rng } from '../../streams/random.js';
import { computeGradients } from './gradients.js';
import { assignWeights, checkLayout, type FromWorker, type ParallelModel, type ParameterLayout, type ShardableBatch, type ToWorker, type WireShard } from './parallel.js';

interface Init {
  moduleUrl: string;
  exportName: string;
  options: unknown;
  layout: ParameterLayout;
  paramBuffer: SharedArrayBuffer;
  gradBuffer: SharedArrayBuffer;
  microBatch?: number;
}

if (!parentPort) throw new Error('parallel-worker must run in a worker thread');
const port = parentPort;
const init = workerData as Init;
const send = (msg: FromWorker) => port.postMessage(msg);

function fromWire(shard: WireShard): ShardableBatch {
  if ('data' in shard && ArrayBuffer.isView(shard.data)) {
    const s = shard as { data: Float32Array | Int32Array; shape: number[]; dtype: 'float32' | 'int32' };
    return tf.tensor(s.data, s.shape, s.dtype);
  }
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(shard as Record<string, WireShard>)) out[k] = fromWire(v) as tf.Tensor;
  return out;
}

async function main(): Promise<void> {
  await selectBackend({ prefer: 'wasm' });
  const mod = (await import(init.moduleUrl)) as Record<string, unknown>;
  const factory = mod[init.exportName];
  if (typeof factory !== 'function') {
    throw new Error(`${init.moduleUrl} has no function export "${init.exportName}" (the model factory)`);
  }
  const model = (await (factory as (o: unknown) => unknown)(init.options)) as ParallelModel<ShardableBatch>;
  const { layout } = init;
  checkLayout(layout, model.params, 'the model module');

  const params = new Map(layout.names.map((n) => [n, model.params.get(n) as tf.Variable]));
  const variables = [...params.values()].filter((v) => v.trainable);
  const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
  const weights = new Float32Array(init.paramBuffer);
  const gradients = new Float32Array(init.gradBuffer);
  const indexOf = new Map(layout.names.map((n, i) => [n, i]));
  const wasm = tf.getBackend() === 'wasm' ? (tf.backend() as unknown as WasmBackendInternals) : undefined;
  send({ type: 'ready' });

  port.on('message', async (msg: ToWorker) => {
    if (msg.type === 'close') {
      process.exit(0);
    }
    try {
      const t0 = performance.now();
      assignWeights(layout, weights, params); // the current weights
      const t1 = performance.now();
      const batch = fromWire(msg.shard);
      const rng = new Rng(msg.seed);
      const context = { params, step: msg.step, random: () => rng.uniform(), rng };
      let computed;
      try {
        computed = await computeGradients(model.loss, batch, context, variables, nameOf, init.microBatch);
      } finally {
        tf.dispose(batch as tf.TensorContainer);
      }
      const { loss, grads } = computed;
      const t2 = performance.now();
      const got = layout.names.map(() => false);
      try {
        for (const [name, g] of grads) {
          const i = indexOf.get(name);
          if (i === undefined) continue;
          if (g.dtype !== 'float32') throw new Error(`gradient of ${name} has dtype ${g.dtype}, expected float32`);
          // On wasm, copy straight from the heap (one copy instead of two).
          const values = wasm ? new Float32Array(heapBuffer(wasm), heapOffset(wasm, g), g.size) : ((await g.data()) as Float32Array);
          slotOf(layout, gradients, i).set(values);
          got[i] = true;
        }
      } finally {
        tf.dispose([...grads.values()]);
      }
      got.forEach((has, i) => {
        if (!has) slotOf(layout, gradients, i).fill(0);
      });
      const present = got.flatMap((has, i) => (has ? [i] : []));
      send({ type: 'done', loss, present, timings: { pull: t1 - t0, compute: t2 - t1, push: performance.now() - t2 } });
    } catch (err) {
      send({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  });
}

main().catch((err: Error) => send({ type: 'error', message: err.stack ?? String(err) }));
