/**
 * The Winograd convolutions of the wasm backend (src/models/backend/wasm/winograd.ts) by route, on the 3x3 layers
 * of an autoencoder: `--model dcae-small` (default; batch 16; 64x64x32, 32x32x64, 16x16x128, 8x8x256, Cin = Cout)
 * or `--model dcae-demo` (the demo's autoencoder: channels 16-32-64-128 on 32x32 inputs, every distinct eligible
 * conv: the residual blocks', the down / up convs' (Cin or Cout 4x the previous level's) and the latent convs'
 * (16 channels); batch 16, or 8 for one of two workers' shards): forward (FusedConv2D with bias), input gradient
 * (Conv2DBackpropInput) and filter gradient (Conv2DBackpropFilter), each timed on the same operands in the same
 * process, interleaved (wasm, native, wasm, ...), medians over the rounds, with the load averages before and after
 * and bench/conditions.ts's `underLoad`:
 * - wasm: transforms and products in the project's wasm module (winograd.c, gemm.c, SIMD128), as without the
 *   native kernels (`setNativeKernels(false)`);
 * - nativeProducts: the products on the native GEMM (`gemmPlanes`), the transforms in wasm
 *   (`setNativeWinogradTransforms(false)`);
 * - phases: products and transforms native, phase by phase through heap planes (`setNativeWinogradFused(false)`);
 * - native: one native call per conv (tiles in cache-sized blocks, native/winograd_conv.cc), the default when the
 *   native kernels are loaded.
 * The native routes are timed only when the native kernels are loaded. Only the variant the `auto` mode picks is
 * timed (F(4x4, 3x3) on these sizes). Caveat: the heap routes reuse the blocks tfjs just freed, so each finds its
 * planes warm from the route before it, while the one-call route's native scratch was last touched a round earlier;
 * on convs whose planes are megabytes (4x4 maps, 128-256 channels) that alone made `phases` look up to 1.8x faster
 * here, though direct addon calls on the same operands time the one-call route 15% faster and a whole training
 * step is 10-20% faster with it (2026-11-30). Compare whole steps for decisions.
 *
 * `node dist/bench/winograd.bench.js [--rounds 7] [--batch 16] [--model dcae-small|dcae-demo]`
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { setNativeWinogradFused, setNativeWinogradTransforms } from '../src/models/backend/wasm/index.js';
import { nativeKernels, setNativeKernels } from '../src/models/backend/native/index.js';
import { Rng } from '../src/streams/random.js';
import { conditions, median, startInterval } from './conditions.js';
import { timeCall } from './profile.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    batch: { type: 'string', default: '16' },
    model: { type: 'string', default: 'dcae-small' },
  },
});
if (values.model !== 'dcae-small' && values.model !== 'dcae-demo') throw new Error(`--model: expected dcae-small or dcae-demo, got ${values.model}`);
const rounds = Number(values.rounds);
const batch = Number(values.batch);
await selectBackend({ prefer: 'wasm' });
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'winograd', ...line }));
emit({ figure: 'conditions at start', ...conditions() });
const native = nativeKernels();
emit({ figure: 'native kernels', ...native });
const rng = new Rng(5);

/** A route: whether the native kernels are on, whether the transforms run natively, whether a conv is one call. */
interface Route {
  name: string;
  native: boolean;
  transforms: boolean;
  fused: boolean;
}
/** Runs `f` on a route on this thread, then restores the settings. */
function withRoute<T>(route: Route, f: () => T): T {
  const was = setNativeKernels(route.native);
  const wasTransforms = setNativeWinogradTransforms(route.transforms);
  const wasFused = setNativeWinogradFused(route.fused);
  try {
    return f();
  } finally {
    setNativeKernels(was);
    setNativeWinogradTransforms(wasTransforms);
    setNativeWinogradFused(wasFused);
  }
}

const routes: Route[] = [
  { name: 'wasm', native: false, transforms: false, fused: false },
  ...(native.loaded
    ? [
        { name: 'nativeProducts', native: true, transforms: false, fused: false },
        { name: 'phases', native: true, transforms: true, fused: false },
        { name: 'native', native: true, transforms: true, fused: true },
      ]
    : []),
];
const totals = routes.map(() => 0);
const UNIT =
  'ms per call, medians of interleaved rounds; speed-ups: wasm ms / route ms, transformsSpeedup: nativeProducts ms / phases ms, oneCallSpeedup: phases ms / native ms';
/** Adds the speed-ups of the native routes over wasm, of native transforms over wasm ones, of one call over phases. */
function speedups(line: Record<string, unknown>, ms: number[]): void {
  if (routes.length < 4) return;
  line.nativeProductsSpeedup = Number((ms[0] / ms[1]).toFixed(2));
  line.nativeSpeedup = Number((ms[0] / ms[3]).toFixed(2));
  line.transformsSpeedup = Number((ms[1] / ms[2]).toFixed(2));
  line.oneCallSpeedup = Number((ms[2] / ms[3]).toFixed(2));
}
/** [side, Cin, Cout] of the model's distinct Winograd-eligible 3x3 convs (see the header). */
function layers(model: 'dcae-small' | 'dcae-demo'): Array<[number, number, number]> {
  if (model === 'dcae-small') return [[64, 32, 32], [32, 64, 64], [16, 128, 128], [8, 256, 256]];
  const channels = [16, 32, 64, 128];
  const latent = 16;
  const out: Array<[number, number, number]> = [];
  channels.forEach((c, i) => {
    const side = 32 >> i;
    out.push([side, c, c]);
    if (i > 0) out.push([side, 4 * channels[i - 1], c], [side, c, 4 * channels[i - 1]]);
  });
  out.push([4, 128, latent], [4, latent, 128]);
  return out;
}
for (const [size, cin, cout] of layers(values.model)) {
  const xs: [number, number, number, number] = [batch, size, size, cin];
  const ys: [number, number, number, number] = [batch, size, size, cout];
  const ws: [number, number, number, number] = [3, 3, cin, cout];
  const x = tf.tensor4d(rng.normalArray(xs.reduce((a, b) => a * b)), xs);
  const w = tf.tensor4d(rng.normalArray(ws.reduce((a, b) => a * b)), ws);
  const bias = tf.tensor1d(rng.normalArray(cout));
  const dy = tf.tensor4d(rng.normalArray(ys.reduce((a, b) => a * b)), ys);
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
