/**
 * Dense-layer matrix products of the `vit-small` emulator on the wasm backend: the stock route (XNNPACK's fully
 * connected operator, with the gradients' transposes made explicit first) against the project's own SIMD GEMM
 * (src/models/backend/wasm/gemm.c through `ownBatchMatMul`), on the same operands in the same process,
 * interleaved (stock, own, stock, own, ...) and reported as medians over the rounds, each with the load averages
 * before and after and bench/conditions.ts's `underLoad` verdict. This is the measurement that decides whether
 * the dense layers go through the own GEMM: as long as it does not win on the MLP shapes, they stay on XNNPACK.
 *
 * Shapes: M = rows (tokens x batch: 4 x 320 for a training micro-batch, 16 x 320 for a rollout denoiser call),
 * K -> N the layer (256 -> 768 qkv, 256 -> 256 out, 256 -> 1024 and 1024 -> 256 MLP). Per layer three products:
 * forward x W [M, K] x [K, N], input gradient dY W^T, weight gradient X^T dY.
 *
 * `node dist/bench/matmul.bench.js [--rounds 7] [--rows 1280,5120]`
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { type WasmBackendInternals, ownBatchMatMul } from '../src/models/backend/wasm/index.js';
import { Rng } from '../src/streams/random.js';
import { conditions, median, startInterval } from './conditions.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, rows: { type: 'string', default: '1280,5120' } } });
const rounds = Number(values.rounds);
await selectBackend({ prefer: 'wasm' });
const backend = tf.backend() as unknown as WasmBackendInternals;
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'matmul', ...line }));
emit({ figure: 'conditions at start', ...conditions() });
const rng = new Rng(3);

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
    // [label, stock route, operands and transposes for the own kernel]
    const products: Array<[string, () => tf.Tensor, [tf.Tensor, tf.Tensor, boolean, boolean]]> = [
      ['forward x W', () => tf.matMul(x, w), [x, w, false, false]],
      ['input grad dY W^T', () => tf.matMul(dy, w, false, true), [dy, w, false, true]],
      ['weight grad X^T dY', () => tf.matMul(x, dy, true, false), [x, dy, true, false]],
    ];
    for (const [label, stock, [a, b, ta, tb]] of products) {
      const own = () => {
        const info = ownBatchMatMul(backend, a, b, ta, tb);
        if (!info) throw new Error(`own kernel does not apply to ${label} ${m}x${k}x${n}`);
        return tf.engine().makeTensorFromTensorInfo(info);
      };
      const time = (f: () => tf.Tensor): number => {
        const t0 = performance.now();
        const out = f();
        out.dataSync();
        const ms = performance.now() - t0;
        out.dispose();
        return ms;
      };
      time(stock), time(own); // warm-up
      const stockMs: number[] = [];
      const ownMs: number[] = [];
      const end = startInterval();
      for (let r = 0; r < rounds; r++) {
        stockMs.push(time(stock));
        ownMs.push(time(own));
      }
      const cond = end();
      const flops = 2 * m * k * n;
      const s = median(stockMs);
      const o = median(ownMs);
      emit({
        figure: `${name} ${label}`,
        shape: `M=${m} K=${k} N=${n}`,
        stockMs: Number(s.toFixed(2)),
        ownMs: Number(o.toFixed(2)),
        stockGflops: Number((flops / s / 1e6).toFixed(1)),
        ownGflops: Number((flops / o / 1e6).toFixed(1)),
        value: Number((s / o).toFixed(2)),
        unit: 'x (stock ms / own ms, median of interleaved rounds)',
        rounds,
        ...cond,
      });
    }
    tf.dispose([x, w, dy]);
  }
}
emit({ figure: 'conditions at end', ...conditions() });
