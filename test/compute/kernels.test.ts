/**
 * The project's wasm kernels against the cpu backend (an independent implementation) on random shapes, and their
 * gradients against central finite differences on wasm.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { registerWasmKernels } from '../../src/models/backend/wasm-kernels.js';
import { Rng } from '../../src/models/train/rng.js';

registerWasmKernels();
const rng = new Rng(20261123);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)];
const randInt = (lo: number, hi: number): number => lo + Math.floor(rng.uniform() * (hi - lo + 1));
const randn = (shape: number[]): Float32Array => rng.normalArray(shape.reduce((a, b) => a * b, 1));

/** Runs `f` on a backend and returns its outputs as plain arrays (tensors disposed). */
async function on(backend: string, f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(f);
  const data = await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return data;
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

t.before(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  t.ok(await tf.setBackend('wasm'), 'wasm backend starts');
});

t.test('conv2d gradients match the cpu backend on random shapes', async (t) => {
  for (let trial = 0; trial < 24; trial++) {
    const stride = trial % 2 === 0 ? 1 : 2;
    const pad = pick(['same', 'valid'] as const);
    const k = pick([1, 2, 3, 5]);
    const b = randInt(1, 3);
    const h = randInt(k, 11);
    const w = randInt(k, 10);
    const cin = randInt(1, 5);
    const cout = randInt(1, 6);
    const xs = [b, h, w, cin];
    const ws = [k, k, cin, cout];
    const xv = randn(xs);
    const wv = randn(ws);
    const f = (): tf.Tensor[] => {
      const x = tf.tensor4d(xv, xs as [number, number, number, number]);
      const wt = tf.tensor4d(wv, ws as [number, number, number, number]);
      const loss = (a: tf.Tensor4D, c: tf.Tensor4D): tf.Scalar => tf.conv2d(a, c, stride, pad).square().sum();
      const [gx, gw] = tf.grads(loss as (...args: tf.Tensor[]) => tf.Tensor)([x, wt]);
      return [gx, gw];
    };
    const [cx, cw] = await on('cpu', f);
    const [wx, ww] = await on('wasm', f);
    const label = `x ${xs} w ${ws} stride ${stride} ${pad}`;
    t.ok(maxRelErr(wx, cx) < 1e-4, `input gradient: ${label} (rel err ${maxRelErr(wx, cx).toExponential(1)})`);
    t.ok(maxRelErr(ww, cw) < 1e-4, `filter gradient: ${label} (rel err ${maxRelErr(ww, cw).toExponential(1)})`);
  }
});
