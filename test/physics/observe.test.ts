/**
 * Observation operators: shapes and values against hand computations, adjointness of their gradients (what
 * guidance uses as A^T) against the forward maps, linearity, composition, noise statistics, bad input.
 */
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { Rng } from '../../src/streams/random.js';
import {
  composeObservations,
  downscale,
  observe,
  randomSensors,
  selectFields,
  sensorMask,
  subsample,
  type ObservationOperator,
  type StateLayout,
} from '../../src/physics/observe.js';

await selectBackend({ prefer: 'wasm' });

const layout: StateLayout = { shape: [6, 8], channels: ['density', 'pressure', 'momentum_x'] };
const [H, W] = layout.shape;
const C = layout.channels.length;
/** value of pixel (i, j, c) of state n: a code that names it */
const code = (n: number, i: number, j: number, c: number) => 1000 * n + 100 * i + 10 * j + c;
const states = (n: number) => {
  const x = new Float32Array(n * H * W * C);
  for (let s = 0; s < n; s++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) for (let c = 0; c < C; c++) x[((s * H + i) * W + j) * C + c] = code(s, i, j, c);
  return x;
};

t.test('shapes and values', async (t) => {
  const x = states(2);
  const sub = subsample(layout, { stride: 3, offset: 1 });
  t.same(sub.outShape, [2, 3, 3], 'rows 1, 4 and columns 1, 4, 7');
  const ys = observe(sub, x, 2);
  t.equal(ys.length, 2 * sub.size);
  t.equal(ys[0], code(0, 1, 1, 0));
  t.equal(ys[(1 * 3 + 2) * 3 + 1], code(0, 4, 7, 1));
  t.equal(ys[sub.size + 2], code(1, 1, 1, 2));

  const down = downscale(layout, { factor: 2 });
  t.same(down.outShape, [3, 4, 3]);
  const yd = observe(down, x, 2);
  // block (1, 2) of channel 1 of state 1: pixels (2..3, 4..5): mean of the codes
  const want = (code(1, 2, 4, 1) + code(1, 2, 5, 1) + code(1, 3, 4, 1) + code(1, 3, 5, 1)) / 4;
  t.ok(Math.abs(yd[down.size + (1 * 4 + 2) * 3 + 1]! - want) < 1e-2, `block mean ${yd[down.size + (1 * 4 + 2) * 3 + 1]} = ${want}`);

  const mask = new Float32Array(H * W);
  mask[5] = 1; // (0, 5)
  mask[2 * W + 7] = 1; // (2, 7)
  const sensors = sensorMask(layout, { mask });
  t.same(sensors.outShape, [2, 3]);
  t.same(Array.from(observe(sensors, x.subarray(0, H * W * C), 1)), [0, 1, 2].map((c) => code(0, 0, 5, c)).concat([0, 1, 2].map((c) => code(0, 2, 7, c))));

  const fields = selectFields(layout, ['momentum_x', 'density']);
  t.same(fields.outShape, [H, W, 2]);
  const yf = observe(fields, x.subarray(0, H * W * C), 1);
  t.same([yf[0], yf[1], yf[(3 * W + 2) * 2]], [code(0, 0, 0, 2), code(0, 0, 0, 0), code(0, 3, 2, 2)]);
  t.same(fields.fields, ['momentum_x', 'density']);

  const chain = composeObservations(fields, subsample(fields.output!, { stride: 4 }));
  t.same(chain.outShape, [2, 2, 2]);
  t.same(chain.fields, ['momentum_x', 'density']);
  const yc = observe(chain, x.subarray(0, H * W * C), 1);
  t.same([yc[0], yc[(1 * 2 + 1) * 2 + 1]], [code(0, 0, 0, 2), code(0, 4, 4, 0)]);

  const sensors5 = randomSensors([H, W], 5, 3);
  t.equal(sensors5.reduce((a, b) => a + b, 0), 5, '5 distinct positions');
  t.same(Array.from(randomSensors([H, W], 5, 3)), Array.from(sensors5), 'seeded');
});

/** Checks <A x, y> = <x, A^T y> with A^T the gradient tfjs computes (what guidance uses), and linearity. */
function checkAdjoint(t: Test, op: ObservationOperator, rng: Rng): void {
  const n = 2;
  const x = tf.tensor4d(rng.normalArray(n * H * W * C), [n, H, W, C]);
  const x2 = tf.tensor4d(rng.normalArray(n * H * W * C), [n, H, W, C]);
  const y = tf.tensor(rng.normalArray(n * op.size), [n, ...op.outShape]);
  const [lhs, rhs, lin] = tf.tidy(() => {
    const ax = op.apply(x);
    const aty = tf.grad((v: tf.Tensor) => op.apply(v))(x, y);
    const combo = tf.sub(op.apply(tf.add(tf.mul(x, 2), tf.mul(x2, -3))), tf.add(tf.mul(ax, 2), tf.mul(op.apply(x2), -3)));
    return [tf.sum(tf.mul(ax, y)).dataSync()[0]!, tf.sum(tf.mul(x, aty)).dataSync()[0]!, tf.max(tf.abs(combo)).dataSync()[0]!];
  });
  t.ok(Math.abs(lhs - rhs) < 1e-4 * (1 + Math.abs(lhs)), `${op.name}: <Ax, y> ${lhs.toFixed(5)} = <x, A^T y> ${rhs.toFixed(5)}`);
  t.ok(lin < 1e-4, `${op.name}: linear (${lin.toExponential(1)})`);
  tf.dispose([x, x2, y]);
}

t.test('adjointness of the gradients, linearity', async (t) => {
  const rng = new Rng(11);
  const fields = selectFields(layout, ['pressure']);
  for (const op of [
    subsample(layout, { stride: 2 }),
    subsample(layout, { stride: 5, offset: 2 }),
    downscale(layout, { factor: 2 }),
    sensorMask(layout, { mask: randomSensors([H, W], 7, 1) }),
    fields,
    composeObservations(fields, downscale(fields.output!, { factor: 2 })),
  ]) {
    checkAdjoint(t, op, rng);
  }
});

t.test('noise: observe draws N(0, variance); composition propagates inner noise through the outer map', async (t) => {
  const op = subsample(layout, { stride: 2, noise: 0.3 });
  t.ok(Math.abs(op.variance - 0.09) < 1e-12);
  const x = states(1);
  const clean = observe(op, x, 1);
  const rng = new Rng(5);
  let sum = 0;
  let sq = 0;
  let count = 0;
  for (let k = 0; k < 200; k++) {
    const noisy = observe(op, x, 1, rng);
    for (let i = 0; i < noisy.length; i++) {
      const d = noisy[i]! - clean[i]!;
      sum += d;
      sq += d * d;
      count++;
    }
  }
  const mean = sum / count;
  const variance = sq / count - mean * mean;
  t.ok(Math.abs(mean) < 4 * Math.sqrt(0.09 / count), `noise mean ${mean.toFixed(4)}`);
  t.ok(Math.abs(variance / 0.09 - 1) < 0.05, `noise variance ${variance.toFixed(4)} (0.09)`);
  t.same(Array.from(observe(op, x, 1, new Rng(9))), Array.from(observe(op, x, 1, new Rng(9))), 'seeded');

  // Composition: inner noise 0.4 on every pixel, then 2x2 block means with noise 0.1: variance 0.01 + 0.16 / 4.
  const inner = selectFields(layout, ['density'], { noise: 0.4 });
  const outer = downscale(inner.output!, { factor: 2, noise: 0.1 });
  const chain = composeObservations(inner, outer);
  t.ok(Math.abs(chain.variance - (0.01 + 0.16 / 4)) < 1e-12, `composed variance ${chain.variance}`);
  // Simulated: draw the inner noise explicitly, pass it through the outer map, add the outer noise.
  const draws = 400;
  let acc = 0;
  let m = 0;
  const cleanChain = observe(chain, x, 1);
  const innerClean = observe(inner, x, 1);
  for (let k = 0; k < draws; k++) {
    const noisyInner = innerClean.map((v) => v + 0.4 * rng.normal());
    const out = tf.tidy(() => outer.apply(tf.tensor4d(noisyInner, [1, H, W, 1])).dataSync());
    for (let i = 0; i < out.length; i++) {
      const d = out[i]! + 0.1 * rng.normal() - cleanChain[i]!;
      acc += d * d;
      m++;
    }
  }
  t.ok(Math.abs(acc / m / chain.variance - 1) < 0.06, `simulated composed variance ${(acc / m).toFixed(4)} (${chain.variance})`);
});

t.test('bad input names the operator and what it expected', async (t) => {
  const op = subsample(layout, { stride: 2 });
  t.throws(() => op.apply(tf.zeros([1, H, W, 2])), /subsample\(stride 2\): expected states \(N, 6, 8, 3\) with channels \[density,pressure,momentum_x\], got shape \[1,6,8,2\]/);
  t.throws(() => observe(op, new Float32Array(10), 1), /10 values given, expected 1 states of 6x8x3/);
  t.throws(() => subsample(layout, { stride: 0 }), /stride must be a positive integer/);
  t.throws(() => subsample(layout, { stride: 2, offset: 6 }), /offset must be an integer in \[0, 5\]/);
  t.throws(() => downscale(layout, { factor: 4 }), /6x8 do not divide into 4x4 blocks/);
  t.throws(() => sensorMask(layout, { mask: [1, 0] }), /mask has 2 entries, states of 6x8 need 48/);
  t.throws(() => sensorMask(layout, { mask: new Float32Array(H * W) }), /selects no pixel/);
  t.throws(() => selectFields(layout, ['energy']), /lack channel energy \(channels: density, pressure, momentum_x\)/);
  t.throws(() => subsample(layout, { stride: 2, noise: -1 }), /noise must be a finite number >= 0/);
  const sensors = sensorMask(layout, { mask: randomSensors([H, W], 3, 0) });
  t.throws(() => composeObservations(sensors, op), /yields a list of sensors/);
  t.throws(() => composeObservations(selectFields(layout, ['density']), op), /expects states \[6,8\] with channels \[density,pressure,momentum_x\]/);
});
