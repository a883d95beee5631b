/**
 * The Winograd convolutions of the wasm backend (src/models/backend/wasm/winograd.ts) by route, on the 3x3 layers of the `dcae-small` autoencoder (batch 16; 64x64x32, 32x32x64, 16x16x128, 8x8x256,
 * Cin = Cout): forward (FusedConv2D with bias), input gradient (Conv2DBackpropInput) and filter gradient
 * (Conv2DBackpropFilter), each timed on the same operands in the same process, interleaved (wasm, native, wasm,
 * ...), medians over the rounds, with the load averages before and after and bench/conditions.ts's `underLoad`:
 * - wasm: transforms and products in the project's wasm module (winograd.c, gemm.c, SIMD128), as without the
 *   native kernels (`setNativeKernels(false)`);
 * - nativeProducts: the products on the native GEMM (`gemmPlanes`), the transforms in wasm
 *   (`setNativeWinogradTransforms(false)`);
 * - native: the products on the native GEMM and the transforms natively (the addon's winograd* exports), the
 *   default when the native kernels are loaded.
 * The two native routes are timed only when the native kernels are loaded. Only the variant the `auto` mode picks
 * is timed (F(4x4, 3x3) on these sizes).
 *
 * `node dist/bench/winograd.bench.js [--rounds 7] [--batch 16]`
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { setNativeWinogradTransforms } from '../src/models/backend/wasm/index.js';
import { nativeKernels, setNativeKernels } from '../src/models/backend/native/index.js';
import { Rng } from '../src/streams/random.js';
import { conditions, median, startInterval } from './conditions.js';
import { timeCall } from './profile.js';

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

/** A route: whether the native kernels are on, and whether the transforms run natively when they are. */
interface Route {
  name: string;
  native: boolean;
  transforms: boolean;
}
/** Runs `f` on a route on this thread, then restores the settings. */
function withRoute<T>(route: Route, f: () => T): T {
  const was = setNativeKernels(route.native);
  const wasTransforms = setNativeWinogradTransforms(route.transforms);
  try {
    return f();
  } finally {
    setNativeKernels(was);
    setNativeWinogradTransforms(wasTransforms);
  }
}

const routes: Route[] = [
  { name: 'wasm', native: false, transforms: false },
  ...(native.loaded
    ? [
        { name: 'nativeProducts', native: true, transforms: false },
        { name: 'native', native: true, transforms: true },
      ]
    : []),
];
const totals = routes.map(() => 0);
const UNIT = 'ms per call, medians of interleaved rounds; speed-ups: wasm ms / route ms, transformsSpeedup: nativeProducts ms / native ms';
/** Adds the speed-ups of the native routes over wasm, and of native transforms over wasm ones, to a line. */
function speedups(line: Record<string, unknown>, ms: number[]): void {
  if (routes.length < 3) return;
  line.nativeProductsSpeedup = Number((ms[0] / ms[1]).toFixed(2));
  line.nativeSpeedup = Number((ms[0] / ms[2]).toFixed(2));
  line.transformsSpeedup = Number((ms[1] / ms[2]).toFixed(2));
}
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
    for (const route of routes) withRoute(route, () => timeCall(f)); // warm-up
    const ms = routes.map((): number[] => []);
    const end = startInterval();
    for (let r = 0; r < rounds; r++) routes.forEach((route, i) => ms[i].push(withRoute(route, () => timeCall(f))));
    const cond = end();
    const medians = ms.map((m) => median(m));
    const line: Record<string, unknown> = { figure: `${name}`, shape: `x [${xs}] w [${ws}]` };
    routes.forEach((route, i) => {
      line[`${route.name}Ms`] = Number(medians[i].toFixed(2));
      totals[i] += medians[i];
    });
    speedups(line, medians);
    emit({ ...line, unit: UNIT, rounds, ...cond });
  }
  tf.dispose([x, w, bias, dy]);
}
const total: Record<string, unknown> = { figure: 'all layers, forward + both gradients (sum of medians)' };
routes.forEach((route, i) => (total[`${route.name}Ms`] = Number(totals[i].toFixed(1))));
speedups(total, totals);
emit(total);
emit({ figure: 'conditions at end', ...conditions() });
