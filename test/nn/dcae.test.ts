import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { countParameters, createDcae, presets, vmseLoss, type DcaeConfig } from '../../src/models/nn/index.js';
import { agrees, directionalGradients, maxAbsDiff, randn, roll, useBackend } from './helpers.js';

const backend = await useBackend({ convGradients: true });
t.comment(`backend: ${backend}`);

/** Parameters of a DCAE by closed form: every conv k*k*in*out + out. */
function expectedParameters(c: {
  inChannels: number;
  latentChannels: number;
  channels: number[];
  blocks: number[];
  kernel?: number;
  ffnFactor?: number;
}): number {
  const k2 = (c.kernel ?? 3) ** 2;
  const f = c.ffnFactor ?? 1;
  const conv = (i: number, o: number) => k2 * i * o + o;
  const block = (w: number) => conv(w, f * w) + conv(f * w, w);
  let half = 0;
  c.channels.forEach((w, i) => {
    half += i === 0 ? conv(c.inChannels, w) : conv(4 * c.channels[i - 1], w);
    half += c.blocks[i] * block(w);
  });
  half += conv(c.channels[c.channels.length - 1], c.latentChannels);
  // The decoder mirrors every conv with in/out swapped: same weight count, biases sized by the other side.
  let decoder = 0;
  c.channels.forEach((w, i) => {
    decoder += i === 0 ? conv(w, c.inChannels) : conv(w, 4 * c.channels[i - 1]);
    decoder += c.blocks[i] * block(w);
  });
  decoder += conv(c.latentChannels, c.channels[c.channels.length - 1]);
  return half + decoder;
}

t.test('shapes for several configurations', async (t) => {
  const configs: [DcaeConfig, number[]][] = [
    [{ inChannels: 2, latentChannels: 3, channels: [4], blocks: 1 }, [2, 6, 10, 2]],
    [{ inChannels: 3, latentChannels: 2, channels: [4, 8], blocks: [2, 0], periodic: [true, false] }, [1, 8, 12, 3]],
    [{ inChannels: 1, latentChannels: 4, channels: [4, 4, 8], blocks: [0, 1, 1], periodic: [true, true] }, [3, 16, 8, 1]],
    [{ inChannels: 2, latentChannels: 1, channels: [2, 4, 4, 8], blocks: 1, softclipBound: null, ffnFactor: 2 }, [1, 16, 16, 2]],
  ];
  for (const [config, shape] of configs) {
    const ae = createDcae(config);
    const f = ae.factor;
    const x = randn(shape, 1) as tf.Tensor4D;
    const { y, z } = ae.apply(x);
    t.same(z.shape, [shape[0], shape[1] / f, shape[2] / f, config.latentChannels], `latent shape for ${JSON.stringify(config.channels)}`);
    t.same(y.shape, shape, `reconstruction shape for ${JSON.stringify(config.channels)}`);
    t.same(ae.latentShape([shape[1], shape[2]]), z.shape.slice(1));
    const blocks = typeof config.blocks === 'number' ? config.channels.map(() => config.blocks as number) : [...config.blocks];
    t.equal(countParameters(ae), expectedParameters({ ...config, channels: [...config.channels], blocks }), 'parameter count');
    tf.dispose([x, y, z]);
    ae.dispose();
  }
});

t.test('dcae-small preset: 64x64 -> 8x8 latents, parameter count, names', async (t) => {
  const ae = createDcae(presets['dcae-small']({ inChannels: 4, latentChannels: 8 }));
  const x = randn([1, 64, 64, 4], 2) as tf.Tensor4D;
  const z = ae.encode(x);
  t.same(z.shape, [1, 8, 8, 8]);
  t.same(ae.decode(z).shape, [1, 64, 64, 4]);
  t.equal(countParameters(ae), expectedParameters({ inChannels: 4, latentChannels: 8, channels: [32, 64, 128, 256], blocks: [1, 1, 1, 1] }));
  t.equal(countParameters(ae, 'encoder.') + countParameters(ae, 'decoder.'), countParameters(ae));
  const names = [...ae.params.keys()];
  t.ok(names.includes('encoder.levels.0.in.weight'));
  t.ok(names.includes('encoder.levels.2.blocks.0.ffn.conv2.bias'));
  t.ok(names.includes('encoder.levels.3.out.weight'));
  t.ok(names.includes('decoder.levels.3.in.weight'));
  t.ok(names.includes('decoder.levels.1.up.weight'));
  t.ok(names.includes('decoder.levels.0.out.bias'));
  t.same(ae.params.get('encoder.levels.1.down.weight')!.shape, [3, 3, 128, 64]);
  t.throws(() => ae.encode(randn([1, 32, 32, 4], 3) as tf.Tensor4D), /dcae encoder input: expected shape \[B, 64, 64, 4\] \(H and W multiples of 8\), received \[1, 32, 32, 4\]/);
  t.throws(() => ae.encode(randn([1, 64, 64, 5], 3) as tf.Tensor4D), /expected shape \[B, 64, 64, 4\].*received \[1, 64, 64, 5\]/);
  t.throws(() => ae.decode(randn([1, 8, 8, 4], 3) as tf.Tensor4D), /dcae decoder input: expected shape \[B, 8, 8, 8\], received \[1, 8, 8, 4\]/);
  ae.dispose();
  const free = createDcae({ inChannels: 2, latentChannels: 2, channels: [4, 4], blocks: 1 });
  t.throws(() => free.encode(tf.zeros([1, 5, 4, 2]) as tf.Tensor4D), /H and W multiples of 2\), received \[1, 5, 4, 2\]/);
  t.throws(() => createDcae({ inChannels: 2, latentChannels: 2, channels: [4, 4], blocks: [1] }), /blocks has 1 entries, channels has 2 levels/);
  free.dispose();
});

t.test('same seed, same weights; different seed, different weights', async (t) => {
  const config: DcaeConfig = { inChannels: 2, latentChannels: 2, channels: [4, 8], blocks: 1, seed: 11 };
  const a = createDcae(config);
  const b = createDcae(config);
  const c = createDcae({ ...config, seed: 12 });
  const w = 'encoder.levels.1.blocks.0.ffn.conv1.weight';
  t.equal(maxAbsDiff(a.params.get(w)!, b.params.get(w)!), 0);
  t.ok(maxAbsDiff(a.params.get(w)!, c.params.get(w)!) > 0);
  // The residual FFN's last conv starts 100x smaller than its first.
  const mean = (n: string) => a.params.get(n)!.abs().mean().dataSync()[0];
  const ratio = mean('encoder.levels.1.blocks.0.ffn.conv2.weight') / mean('encoder.levels.1.blocks.0.ffn.conv1.weight');
  t.ok(ratio > 0.005 && ratio < 0.02, `conv2 / conv1 weight scale ${ratio.toFixed(4)} near 1e-2`);
  [a, b, c].forEach((m) => m.dispose());
});

t.test('a fully periodic encoder commutes with rolls by multiples of its factor', async (t) => {
  const ae = createDcae({ inChannels: 2, latentChannels: 3, channels: [4, 6, 8], blocks: 1, periodic: [true, true], seed: 4 });
  const x = randn([1, 16, 8, 2], 5) as tf.Tensor4D;
  const z = ae.encode(x);
  // roll by 8 rows (2 latent rows) and -4 columns (-1 latent column)
  const shifted = roll(roll(x, 8, 1), -4, 2) as tf.Tensor4D;
  const expected = roll(roll(z, 2, 1), -1, 2);
  t.ok(maxAbsDiff(ae.encode(shifted), expected) < 1e-5, 'encode(roll(x)) = roll(encode(x))');
  const open = createDcae({ inChannels: 2, latentChannels: 3, channels: [4, 6, 8], blocks: 1, periodic: [false, false], seed: 4 });
  const d = maxAbsDiff(open.encode(shifted), roll(roll(open.encode(x), 2, 1), -1, 2));
  t.ok(d > 1e-4, `zero-padded encoder does not commute (max diff ${d.toExponential(2)})`);
  ae.dispose();
  open.dispose();
});

t.test('encoder and decoder gradients match finite differences', async (t) => {
  const ae = createDcae({ inChannels: 2, latentChannels: 3, channels: [3, 4], blocks: 1, periodic: [true, false], seed: 6 });
 const x = randn([2, 4, 6, 2], 7) as tf.Tensor4D;
  // The FFNs' last convs start 100x small, which leaves the first convs' gradients near float32 noise: scale
  // them back to O(1) so every parameter's check is sharp (the check is about the computation, not the init).
  for (const [name, v] of ae.params) if (name.endsWith('conv2.weight')) v.assign(v.mul(100));
  const loss = () => tf.tidy(() => vmseLoss(x, ae.apply(x).y));
  const rows = directionalGradients(loss, ae.params, 1e-2);
  t.equal(rows.length, ae.params.size);
  for (const row of rows) {
    t.ok(agrees(row, 2e-2, 2e-5), `${row.name}: analytic ${row.analytic.toExponential(4)} numeric ${row.numeric.toExponential(4)}`);
  }
  ae.dispose();
});

t.test('a few training steps reduce the loss on a fixed batch; tensor count stays flat', async (t) => {
  const ae = createDcae({ inChannels: 2, latentChannels: 4, channels: [8, 16], blocks: 1, periodic: [true, true], seed: 1 });
  // Smooth periodic fields: a learnable structure, not noise.
  const x = tf.tidy(() => {
    const g = tf.linspace(0, 2 * Math.PI * (15 / 16), 16);
    const yy = g.reshape([16, 1, 1]);
    const xx = g.reshape([1, 16, 1]);
    const phases = tf.tensor([0, 1, 2, 3]).reshape([4, 1, 1, 1]);
    const a = tf.sin(yy.add(phases)).mul(tf.cos(xx.mul(2)));
    const b = tf.cos(yy.mul(2).sub(phases)).add(tf.sin(xx.add(phases)).mul(0.5));
    return tf.concat([a, b], -1) as tf.Tensor4D;
  });
  const optimizer = tf.train.adam(3e-3);
  const vars = [...ae.params.values()];
  let seed = 0;
  const random = () => ((seed = (seed * 16807 + 1) % 2147483647) / 2147483647);
  const step = () => {
    const cost = optimizer.minimize(() => vmseLoss(x, ae.apply(x, { training: true, random }).y), true, vars)!;
    const value = cost.dataSync()[0];
    cost.dispose();
    return value;
  };
  const evalLoss = () => tf.tidy(() => vmseLoss(x, ae.apply(x).y).dataSync()[0]);
  const before = evalLoss();
  const counts: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < 25; i++) {
    losses.push(step());
    counts.push(tf.memory().numTensors);
  }
  const after = evalLoss();
  t.comment(`loss ${before.toFixed(4)} -> ${after.toFixed(4)}; train losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  t.ok(after < 0.7 * before, `eval loss fell by more than 30% (${before.toFixed(4)} -> ${after.toFixed(4)})`);
  t.same(new Set(counts.slice(2)).size, 1, `tensor count flat after the optimizer's slots exist (${counts.slice(0, 4).join(', ')}, ...)`);
  optimizer.dispose();
  x.dispose();
  ae.dispose();
});

t.test('gradient checkpointing of residual blocks gives the same gradients', async (t) => {
  const config: DcaeConfig = { inChannels: 2, latentChannels: 2, channels: [4, 6], blocks: [2, 1], periodic: [true, false], dropout: 0.2, seed: 8 };
  const plain = createDcae(config);
  const remat = createDcae({ ...config, checkpointing: true });
  const x = randn([2, 8, 6, 2], 9) as tf.Tensor4D;
  const seeded = () => {
    let s = 3;
    return () => ((s = (s * 48271) % 2147483647) / 2147483647);
  };
  const live: number[] = [];
  const gradsOf = (ae: typeof plain) => {
    const random = seeded();
    return tf.variableGrads(() => {
      const loss = vmseLoss(x, ae.apply(x, { training: true, random }).y);
      live.push(tf.memory().numTensors); // tensors held for backprop at the end of the forward pass
      return loss;
    }, [...ae.params.values()]);
  };
  const a = gradsOf(plain);
  const b = gradsOf(remat);
  t.ok(live[1] < live[0], `fewer tensors kept for backprop (${live[1]} < ${live[0]})`);
  const pv = [...plain.params.values()];
  const rv = [...remat.params.values()];
  let worst = 0;
  pv.forEach((v, i) => (worst = Math.max(worst, maxAbsDiff(a.grads[v.name], b.grads[rv[i].name]))));
  t.ok(Math.abs(a.value.dataSync()[0] - b.value.dataSync()[0]) < 1e-6, 'same loss');
  t.ok(worst < 1e-5, `same gradients (max diff ${worst.toExponential(2)})`);
  tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  plain.dispose();
  remat.dispose();
});
