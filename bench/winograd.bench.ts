/**
 * The Winograd convolutions of the wasm backend (src/models/backend/wasm/winograd.ts) by route of their per-plane
 * products, on the 3x3 layers of the `dcae-small` autoencoder (batch 16; 64x64x32, 32x32x64, 16x16x128, 8x8x256,
 * Cin = Cout): forward (FusedConv2D with bias), input gradient (Conv2DBackpropInput) and filter gradient
 * (Conv2DBackpropFilter), each timed on the same operands in the same process, interleaved (wasm, native, wasm,
 * ...), medians over the rounds, with the load averages before and after and bench/conditions.ts's `underLoad`:
 * - wasm: the products in the project's wasm module (gemm.c, SIMD128), as without the native kernels
 *   (`setNativeKernels(false)`);
 * - native: the products on the native GEMM (`gemmPlanes`), when it is loaded.
 * The transforms run in wasm on both routes, so the difference is the products'. Only the variant the `auto`
 * mode picks is timed (F(4x4, 3x3) on these sizes).
 *
 * `node dist/bench/winograd.bench.js [--rounds 7] [--batch 16]`
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { nativeKernels, setNativeKernels } from '../src/models/backend/native/index.js';
import { Rng } from '../src/streams/random.js';
import { conditions, median, startInterval } from './conditions.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    batch: { type: 'string', default: '16' },
  },
});
const rounds = Number(values.rounds);
const batch = Number(values.batch);
await selectBackend({ prefer: 'wasm' });
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'winograd', ...line }));
emit({ figure: 'conditions at start', ...conditions() });
const native = nativeKernels();
emit({ figure: 'native kernels', ...native });
const rng = new Rng(5);

/** Runs `f` with the native kernels on or off on this thread, then restores the setting. */
function withNative<T>(on: boolean, f: () => T): T {
  const was = setNativeKernels(on);
  try {
    return f();
  } finally {
    setNativeKernels(was);
  }
}
const time = (f: () => tf.Tensor): number => {
  const t0 = performance.now();
  const out = f();
  out.dataSync();
  const ms = performance.now() - t0;
  out.dispose();
  return ms;
};

const routes: Array<[string, boolean]> = native.loaded ? [['wasm', false], ['native', true]] : [['wasm', false]];
const totals = routes.map(() => 0);
for (const [size, channels] of [[64, 32], [32, 64], [16, 128], [8, 256]]) {
  const xs: [number, number, number, number] = [batch, size, size, channels];
  const ws: [number, number, number, number] = [3, 3, channels, channels];
  const x = tf.tensor4d(rng.normalArray(xs.reduce((a, b) => a * b)), xs);
  const w = tf.tensor4d(rng.normalArray(ws.reduce((a, b) => a * b)), ws);
  const bias = tf.tensor1d(rng.normalArray(channels));
  const dy = tf.tensor4d(rng.normalArray(xs.reduce((a, b) => a * b)), xs);
  const conv = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
  const ops: Array<[string, () => tf.Tensor]> = [
    ['forward', () => tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias })],
    ['input gradient', () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, { ...conv, inputShape: xs } as unknown as tf.NamedAttrMap) as tf.Tensor],
    ['filter gradient', () => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { ...conv, filterShape: ws } as unknown as tf.NamedAttrMap) as tf.Tensor],
  ];
  for (const [name, f] of ops) {
    for (const [, on] of routes) withNative(on, () => time(f)); // warm-up
    const ms = routes.map((): number[] => []);
    const end = startInterval();
    for (let r = 0; r < rounds; r++) routes.forEach(([, on], i) => ms[i].push(withNative(on, () => time(f))));
    const cond = end();
    const medians = ms.map((m) => median(m));
    const line: Record<string, unknown> = { figure: `${name}`, shape: `x [${xs}] w [${ws}]` };
    routes.forEach(([route], i) => {
      line[`${route}Ms`] = Number(medians[i].toFixed(2));
      totals[i] += medians[i];
    });
    if (routes.length > 1) line.nativeSpeedup = Number((medians[0] / medians[1]).toFixed(2));
    emit({ ...line, unit: 'ms per call, medians of interleaved rounds; speed-up: wasm ms / native ms', rounds, ...cond });
  }
  tf.dispose([x, w, bias, dy]);
}
const total: Record<string, unknown> = { figure: 'all layers, forward + both gradients (sum of medians)' };
routes.forEach(([route], i) => (total[`${route}Ms`] = Number(totals[i].toFixed(1))));
if (routes.length > 1) total.nativeSpeedup = Number((totals[0] / totals[1]).toFixed(2));
emit(total);
emit({ figure: 'conditions at end', ...conditions() });
