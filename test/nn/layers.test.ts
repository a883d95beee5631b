import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import {
  ParameterScope,
  circularPad,
  createConv2d,
  createLinear,
  layerNorm,
  patchify,
  rmsNorm,
  silu,
  softclip,
  unpatchify,
  vmseLoss,
} from '../../src/models/nn/index.js';
import { agrees, directionalGradients, maxAbsDiff, randn, roll, useBackend } from './helpers.js';

const backend = await useBackend({ convGradients: true });
t.comment(`backend: ${backend}`);

/** Reference padding by index arithmetic: periodic axes read x[(i - before) mod n], others zero outside. */
function referencePad(x: tf.Tensor4D, pads: [[number, number], [number, number]], periodic: [boolean, boolean]): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const src = x.arraySync();
  const H = h + pads[0][0] + pads[0][1];
  const W = w + pads[1][0] + pads[1][1];
  const out: number[][][][] = [];
  for (let n = 0; n < b; n++) {
    const plane: number[][][] = [];
    for (let i = 0; i < H; i++) {
      const row: number[][] = [];
      for (let j = 0; j < W; j++) {
        let y = i - pads[0][0];
        let x2 = j - pads[1][0];
        const inside = (periodic[0] || (y >= 0 && y < h)) && (periodic[1] || (x2 >= 0 && x2 < w));
        y = ((y % h) + h) % h;
        x2 = ((x2 % w) + w) % w;
        row.push(inside ? src[n][y][x2] : new Array(c).fill(0));
      }
      plane.push(row);
    }
    out.push(plane);
  }
  return tf.tensor4d(out);
}

t.test('circular padding equals the index-arithmetic reference', async (t) => {
  const x = randn([2, 5, 4, 3], 1) as tf.Tensor4D;
  const cases: [[[number, number], [number, number]], [boolean, boolean]][] = [
    [[[1, 1], [1, 1]], [true, true]],
    [[[2, 1], [0, 3]], [true, true]],
    [[[1, 1], [1, 1]], [true, false]],
    [[[2, 2], [1, 2]], [false, true]],
    [[[5, 5], [4, 4]], [true, true]],
  ];
  for (const [pads, periodic] of cases) {
    const got = circularPad(x, pads, periodic);
    const want = referencePad(x, pads, periodic);
    t.same(got.shape, want.shape, `shape for pads ${JSON.stringify(pads)} periodic ${periodic}`);
    t.equal(maxAbsDiff(got, want), 0, `values for pads ${JSON.stringify(pads)} periodic ${periodic}`);
  }
  t.throws(() => circularPad(x, [[6, 0], [0, 0]]), /circular padding of \(6, 0\) on an axis of size 5/);
  t.throws(() => circularPad(tf.zeros([2, 3, 4]) as unknown as tf.Tensor4D, 1), /expected shape \[B, H, W, C\], received \[2, 3, 4\]/);
});

t.test('circular padding has the gradient of its index map', async (t) => {
  const x = randn([1, 4, 3, 2], 2) as tf.Tensor4D;
  const r = randn([1, 7, 5, 2], 3);
  const grad = tf.grad((v: tf.Tensor) => circularPad(v as tf.Tensor4D, [[2, 1], [1, 1]], [true, false]).mul(r).sum())(x);
  // d/dx sum(pad(x) * r) = sum of r over every padded position that copies x: check against the reference map.
  const want = new Float32Array(x.size);
  const rv = r.dataSync();
  for (let i = 0; i < 7; i++)
    for (let j = 0; j < 5; j++) {
      const y = (((i - 2) % 4) + 4) % 4;
      const xx = j - 1;
      if (xx < 0 || xx >= 3) continue;
      for (let ch = 0; ch < 2; ch++) want[(y * 3 + xx) * 2 + ch] += rv[(i * 5 + j) * 2 + ch];
    }
  t.ok(maxAbsDiff(grad, tf.tensor(want, x.shape)) < 1e-5, 'gradient equals the adjoint of the index map');
});

t.test('circular conv on a periodic axis commutes with rolls along it, not along a zero-padded axis', async (t) => {
  const scope = ParameterScope.root(3);
  const conv = createConv2d(scope, 3, 4, { periodic: [true, false] });
  const x = randn([2, 8, 6, 3], 4) as tf.Tensor4D;
  const y = conv.apply(x);
  for (const shift of [1, 3, -2, 8]) {
    const lhs = conv.apply(roll(x, shift, 1) as tf.Tensor4D);
    t.ok(maxAbsDiff(lhs, roll(y, shift, 1)) < 1e-5, `equivariant under roll ${shift} along H (periodic)`);
  }
  const alongW = maxAbsDiff(conv.apply(roll(x, 1, 2) as tf.Tensor4D), roll(y, 1, 2));
  t.ok(alongW > 1e-2, `not equivariant along W (zero padded): max diff ${alongW.toFixed(3)}`);
  // The zero-padded conv equals tfjs' own "same" conv.
  const w = scope.params.get('weight')!;
  const b = scope.params.get('bias')!;
  const xw = roll(x, 0, 1) as tf.Tensor4D;
  const direct = tf.conv2d(circularPad(xw, 1, [true, false]), w as tf.Tensor4D, 1, 'valid').add(b);
  t.ok(maxAbsDiff(y, direct) < 1e-5, 'conv = valid conv of the padded input');
});

t.test('conv and linear gradients match finite differences', async (t) => {
  const scope = ParameterScope.root(5);
  const conv = createConv2d(scope.child('conv'), 2, 3, { periodic: [true, false] });
  const linear = createLinear(scope.child('linear'), 3, 2);
  const x = tf.variable(randn([2, 5, 4, 2], 6));
  const r = randn([2, 5, 4, 2], 7);
  const params = new Map([...scope.params, ['input', x] as const]);
  const loss = () => tf.tidy(() => linear.apply(tf.tanh(conv.apply(x as tf.Tensor4D))).mul(r).sum() as tf.Scalar);
  for (const row of directionalGradients(loss, params, 1e-2)) {
    t.ok(agrees(row), `${row.name}: analytic ${row.analytic.toExponential(4)} numeric ${row.numeric.toExponential(4)}`);
  }
  t.throws(() => conv.apply(tf.zeros([1, 4, 4, 3]) as tf.Tensor4D), /conv: expected shape \[B, H, W, 2\], received \[1, 4, 4, 3\]/);
  t.throws(() => linear.apply(tf.zeros([4, 2])), /expected last axis of size 3, received shape \[4, 2\]/);
});

t.test('patchify orders channels (C h w) and pixel shuffle inverts it', async (t) => {
  const x = randn([2, 4, 6, 3], 8) as tf.Tensor4D;
  const p = patchify(x);
  t.same(p.shape, [2, 2, 3, 12]);
  const xv = x.arraySync();
  const pv = p.arraySync();
  let worst = 0;
  for (let b = 0; b < 2; b++)
    for (let y = 0; y < 2; y++)
      for (let xx = 0; xx < 3; xx++)
        for (let c = 0; c < 3; c++)
          for (let i = 0; i < 2; i++)
            for (let j = 0; j < 2; j++) worst = Math.max(worst, Math.abs(pv[b][y][xx][c * 4 + i * 2 + j] - xv[b][2 * y + i][2 * xx + j][c]));
  t.equal(worst, 0, 'patchify[b, y, x, 4c + 2i + j] = x[b, 2y + i, 2x + j, c]');
  t.equal(maxAbsDiff(unpatchify(p), x), 0, 'unpatchify(patchify(x)) = x');
  t.throws(() => patchify(tf.zeros([1, 3, 4, 1]) as tf.Tensor4D), /multiples of 2, received \[1, 3, 4, 1\]/);
});

t.test('softclip is bounded, odd, monotone and near identity at 0', async (t) => {
  const z = tf.linspace(-1e4, 1e4, 2001);
  const s = softclip(z).dataSync();
  t.ok(s.every((v) => Math.abs(v) < 5), 'bounded by 5');
  t.ok(Math.abs(s[0] + 5) < 1e-2 && Math.abs(s[2000] - 5) < 1e-2, 'tends to +-5');
  t.ok(s.every((v, i) => i === 0 || v >= s[i - 1] - 1e-6), 'non-decreasing up to float32 rounding far out');
  t.ok(s.every((v, i) => v === -s[2000 - i]), 'odd');
  const mid = softclip(tf.linspace(-50, 50, 1001)).dataSync();
  t.ok(mid.every((v, i) => i === 0 || v > mid[i - 1]), 'strictly increasing on [-50, 50]');
  const small = tf.tensor1d([-0.01, 0, 0.01, 3]);
  const expected = [-0.01 / Math.sqrt(1 + 4e-6), 0, 0.01 / Math.sqrt(1 + 4e-6), 3 / Math.sqrt(1 + 9 / 25)];
  softclip(small).dataSync().forEach((v, i) => t.ok(Math.abs(v - expected[i]) < 1e-6, `softclip(${small.dataSync()[i]}) = ${expected[i]}`));
  const slope = tf.grad((v: tf.Tensor) => softclip(v).sum())(tf.tensor1d([0])).dataSync()[0];
  t.ok(Math.abs(slope - 1) < 1e-6, 'slope 1 at 0');
  t.ok(Math.abs(softclip(tf.scalar(1e3), 2).dataSync()[0] - 2) < 1e-3, 'custom bound');
});

t.test('layer and RMS norms standardise the channel axis', async (t) => {
  const x = randn([3, 4, 8], 9, 3).add(1.5);
  const ln = layerNorm(x);
  const { mean, variance } = tf.moments(ln, -1);
  t.ok(mean.abs().max().dataSync()[0] < 1e-5, 'zero mean per position');
  t.ok(variance.sub(1).abs().max().dataSync()[0] < 1e-3, 'unit variance per position');
  const rms = rmsNorm(x).square().mean(-1);
  t.ok(rms.sub(1).abs().max().dataSync()[0] < 1e-3, 'unit mean square per position');
});

t.test('hand-written gradients of layerNorm, rmsNorm and silu equal autodiff of their composite forms', async (t) => {
  const composite = {
    layerNorm: (x: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x.sub(mean).div(variance.add(1e-5).sqrt());
    },
    rmsNorm: (x: tf.Tensor) => x.div(x.square().mean(-1, true).add(1e-5).sqrt()),
    silu: (x: tf.Tensor) => x.mul(tf.sigmoid(x)),
  };
  const fused = { layerNorm, rmsNorm, silu };
  const x = randn([2, 3, 5, 6], 12, 2).add(0.7);
  const r = randn([2, 3, 5, 6], 13);
  for (const name of ['layerNorm', 'rmsNorm', 'silu'] as const) {
    const f = fused[name];
    const g = composite[name];
    t.ok(maxAbsDiff(f(x), g(x)) < 1e-5, `${name} forward`);
    const gf = tf.grad((v: tf.Tensor) => f(v).mul(r).sum())(x);
    const gg = tf.grad((v: tf.Tensor) => g(v).mul(r).sum())(x);
    const scale = gg.abs().max().dataSync()[0];
    t.ok(maxAbsDiff(gf, gg) < 1e-5 * Math.max(scale, 1), `${name} gradient (max diff ${maxAbsDiff(gf, gg).toExponential(2)})`);
    // second use in one graph: the gradient accumulates through both paths
    const twice = tf.grad((v: tf.Tensor) => f(v).mul(r).sum().add(f(v.mul(2)).sum()))(x);
    const twiceRef = tf.grad((v: tf.Tensor) => g(v).mul(r).sum().add(g(v.mul(2)).sum()))(x);
    t.ok(maxAbsDiff(twice, twiceRef) < 1e-4, `${name} gradient through two uses`);
  }
});

t.test('VMSE matches a direct computation', async (t) => {
  const target = randn([2, 4, 5, 3], 10, 2);
  const pred = randn([2, 4, 5, 3], 11);
  const tv = target.dataSync();
  const pv = pred.dataSync();
  let total = 0;
  let totalSqrt = 0;
  for (let b = 0; b < 2; b++)
    for (let c = 0; c < 3; c++) {
      const at = (i: number) => (b * 20 + i) * 3 + c;
      let mean = 0;
      for (let i = 0; i < 20; i++) mean += tv[at(i)] / 20;
      let v = 0;
      let mse = 0;
      for (let i = 0; i < 20; i++) {
        v += (tv[at(i)] - mean) ** 2 / 19;
        mse += (tv[at(i)] - pv[at(i)]) ** 2 / 20;
      }
      total += mse / (v + 1e-2) / 6;
      totalSqrt += Math.sqrt(mse / (v + 1e-2)) / 6;
    }
  t.ok(Math.abs(vmseLoss(target, pred).dataSync()[0] - total) < 1e-5 * total, 'vmse');
  t.ok(Math.abs(vmseLoss(target, pred, { sqrt: true }).dataSync()[0] - totalSqrt) < 1e-5 * totalSqrt, 'vrmse');
  t.equal(vmseLoss(target, target).dataSync()[0], 0, 'zero for a perfect prediction');
  t.throws(() => vmseLoss(target, tf.zeros([2, 4, 5, 2])), /same shape \[B, \.\.\.spatial, C\], received \[2, 4, 5, 3\] and \[2, 4, 5, 2\]/);
});
