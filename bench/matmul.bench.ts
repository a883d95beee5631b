/**
 * Dense-layer and attention matrix products of the `vit-small` emulator on the wasm backend, by route, on the same
 * operands in the same process, interleaved (stock, own, native, stock, ...) and reported as medians over the
 * rounds, each with the load averages before and after and bench/conditions.ts's `underLoad` verdict:
 * - stock: what runs without the native kernels (`setNativeKernels(false)`): XNNPACK's fully connected operator,
 *   with the gradients' transposes made explicit first; for batched products the own kernel;
 * - own: the project's wasm SIMD GEMM (src/models/backend/wasm/gemm.c through `ownBatchMatMul`);
 * - native: the native GEMM (src/models/backend/native, built at install), when loaded.
 * GFLOP/s count 2 M K N per product. The peak is measured, not looked up: `peakGflops` runs 12 independent
 * register-only FMA chains of the native module's widest ISA for 0.5 s on one core (at start and at end; under
 * load it is depressed like every other figure), the ceiling any single-core GEMM can approach.
 *
 * Dense shapes: M = rows (tokens x batch: 4 x 320 for a training micro-batch, 16 x 320 for a rollout denoiser
 * call), K -> N the layer (256 -> 768 qkv, 256 -> 256 out, 256 -> 1024 and 1024 -> 256 MLP). Per layer three
 * products: forward x W [M, K] x [K, N], input gradient dY W^T, weight gradient X^T dY. Attention: heads x batch
 * entries of scores q k^T, weights times values, and their gradients.
 *
 * `node dist/bench/matmul.bench.js [--rounds 7] [--rows 1280,5120] [--no-attention]`
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { nativeAddon, nativeKernels, nativeMatMul, setNativeKernels } from '../src/models/backend/native/index.js';
import { type WasmBackendInternals, ownBatchMatMul } from '../src/models/backend/wasm/index.js';
import { Rng } from '../src/streams/random.js';
import { conditions, median, startInterval } from './conditions.js';
import { timeCall } from './profile.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    rows: { type: 'string', default: '1280,5120' },
    'no-attention': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
await selectBackend({ prefer: 'wasm' });
const backend = tf.backend() as unknown as WasmBackendInternals;
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'matmul', ...line }));
emit({ figure: 'conditions at start', ...conditions() });
const rng = new Rng(3);

const native = nativeKernels();
const addon = nativeAddon();
const peak = () => (addon && native.isa ? Number(addon.peakGflops(native.isa, 0.5).toFixed(1)) : undefined);
emit({
  figure: 'native kernels',
  ...native,
  peakGflops: peak(),
  peakNote: 'one core, 12 register-only FMA chains for 0.5 s (2 flops per lane per FMA)',
});

/** The result of a route as a tensor (a kernel's TensorInfo adopted by the engine). */
const adopt = (info: tf.TensorInfo | undefined, what: string): tf.Tensor => {
  if (!info) throw new Error(`${what}: the route does not apply`);
  return tf.engine().makeTensorFromTensorInfo(info);
};
/** tf.matMul with the native kernels off: the route that runs without them. */
const stockMatMul = (a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean): tf.Tensor => {
  const was = setNativeKernels(false);
  try {
    return tf.matMul(a, b, ta, tb);
  } finally {
    setNativeKernels(was);
  }
};

/** Times the routes interleaved and emits one line: ms, GFLOP/s and speed-ups against stock. */
function measure(figure: string, shape: string, flops: number, a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean, withStock: boolean): void {
  const routes: Array<[string, () => tf.Tensor]> = [];
  if (withStock) routes.push(['stock', () => stockMatMul(a, b, ta, tb)]);
  routes.push(['own', () => adopt(ownBatchMatMul(backend, a, b, ta, tb), `own kernel, ${figure}`)]);
  if (addon) routes.push(['native', () => adopt(nativeMatMul(backend, a, b, ta, tb), `native GEMM, ${figure}`)]);
  for (const [, f] of routes) timeCall(f); // warm-up
  const ms = routes.map((): number[] => []);
  const end = startInterval();
  for (let r = 0; r < rounds; r++) routes.forEach(([, f], i) => ms[i].push(timeCall(f)));
  const cond = end();
  const line: Record<string, unknown> = { figure, shape };
  const medians = ms.map((m) => median(m));
  routes.forEach(([name], i) => {
    line[`${name}Ms`] = Number(medians[i].toFixed(2));
    line[`${name}Gflops`] = Number((flops / medians[i] / 1e6).toFixed(1));
  });
  const base = medians[0];
  routes.slice(1).forEach(([name], i) => (line[`${name}Speedup`] = Number((base / medians[i + 1]).toFixed(2))));
  emit({ ...line, unit: `speed-ups: ${routes[0][0]} ms / route ms, medians of interleaved rounds`, rounds, ...cond });
}

const layers: Array<[string, number, number]> = [
  ['qkv', 256, 768],
  ['out', 256, 256],
  ['mlp1', 256, 1024],
  ['mlp2', 1024, 256],
];

for (const m of values.rows.split(',').map(Number)) {
  for (const [name, k, n] of layers) {
    const x = tf.tensor2d(rng.normalArray(m * k), [m, k]);
    const w = tf.tensor2d(rng.normalArray(k * n), [k, n]);
    const dy = tf.tensor2d(rng.normalArray(m * n), [m, n]);
    const products: Array<[string, tf.Tensor, tf.Tensor, boolean, boolean]> = [
      ['forward x W', x, w, false, false],
      ['input grad dY W^T', dy, w, false, true],
      ['weight grad X^T dY', x, dy, true, false],
    ];
    for (const [label, a, b, ta, tb] of products) measure(`${name} ${label}`, `M=${m} K=${k} N=${n}`, 2 * m * k * n, a, b, ta, tb, true);
    tf.dispose([x, w, dy]);
  }
}

if (!values['no-attention']) {
  // [entries (batch x heads), tokens, head width]: the rollout denoiser's 16 x 320 x 64 and a smaller 128 x 80 x 24.
  for (const [e, t, d] of [[16, 320, 64], [128, 80, 24]]) {
    const q = tf.tensor3d(rng.normalArray(e * t * d), [e, t, d]);
    const kk = tf.tensor3d(rng.normalArray(e * t * d), [e, t, d]);
    const p = tf.tensor3d(rng.normalArray(e * t * t), [e, t, t]);
    const products: Array<[string, tf.Tensor, tf.Tensor, boolean, boolean, number, number, number]> = [
      ['scores q k^T', q, kk, false, true, t, d, t],
      ['weights x values P V', p, kk, false, false, t, t, d],
      ['grad of P: dY V^T', q, kk, false, true, t, d, t],
      ['grad of V: P^T dY', p, q, true, false, t, t, d],
    ];
    for (const [label, a, b, ta, tb, m, k, n] of products) {
      measure(`attention ${label}`, `${e} x [${m}x${k}]x[${k}x${n}]`, 2 * e * m * k * n, a, b, ta, tb, false);
    }
    tf.dispose([q, kk, p]);
  }
}
emit({ figure: 'conditions at end', ...conditions(), peakGflops: peak() });
