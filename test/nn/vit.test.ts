import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import {
  CHECKPOINTING_BUDGET_BYTES,
  applyRotary,
  contextMask,
  countParameters,
  createVit,
  presets,
  resolveCheckpointing,
  tokenCoordinates,
  vitTapeBytes,
  type VitConfig,
} from '../../src/models/nn/index.js';
import { agrees, directionalGradients, maxAbsDiff, randn, useBackend } from './helpers.js';

const backend = await useBackend();
t.comment(`backend: ${backend}`);

/** Parameters of a ViT by closed form. */
function expectedParameters(c: Required<Pick<VitConfig, 'channels' | 'width' | 'depth' | 'ffnFactor' | 'embeddingFeatures' | 'positionFeatures'>> & { maskChannels: number; noise: boolean; labelFeatures: number; rope: boolean; absolutePosition: boolean }): number {
  const lin = (i: number, o: number) => i * o + o;
  const w = c.width;
  const e = c.embeddingFeatures;
  const conditioned = c.noise || c.labelFeatures > 0;
  let n = lin(c.channels + c.maskChannels, w) + (c.absolutePosition ? lin(3 * c.positionFeatures, w) : 0) + lin(w, c.channels);
  if (c.noise) n += lin(e, e) + lin(e, e);
  if (c.labelFeatures > 0) n += lin(c.labelFeatures, e) + lin(e, e);
  const block =
    (conditioned ? lin(e, 6 * w) : 6 * w) + 3 * w * w + lin(w, w) + (c.rope ? 3 * (w / 2) : 0) + lin(w, c.ffnFactor * w) + lin(c.ffnFactor * w, w);
  n += c.depth * block;
  n += conditioned ? lin(e, 2 * w) : 2 * w;
  return n;
}

const tiny: VitConfig = { channels: 2, width: 8, depth: 2, heads: 2, ffnFactor: 2, embeddingFeatures: 6, positionFeatures: 4, labelFeatures: 3, seed: 3 };

function inputs(b: number, l: number, h: number, w: number, c: number, seed: number) {
  return {
    x: randn([b, l, h, w, c], seed),
    mask: contextMask([b, l, h, w, c], Array.from({ length: b }, (_, i) => (i % l) + 1)),
    noise: randn([b], seed + 1, 3),
    label: randn([b, 3], seed + 2),
  };
}

t.test('shapes for several configurations, parameter counts', async (t) => {
  const cases: [VitConfig, number[]][] = [
    [tiny, [2, 3, 2, 2, 2]],
    [{ ...tiny, noise: false }, [1, 5, 2, 3, 2]],
    [{ ...tiny, noise: false, labelFeatures: 0 }, [2, 2, 4, 1, 2]],
    [{ ...tiny, maskChannels: 0, rope: false, heads: 1, channels: 3 }, [1, 1, 3, 3, 3]],
    [{ ...tiny, maskChannels: 1, depth: 1, absolutePosition: false }, [2, 2, 2, 2, 2]],
  ];
  for (const [config, shape] of cases) {
    const vit = createVit(config);
    const c = vit.config;
    const [b, l, h, w] = shape;
    const y = vit.apply(randn(shape, 1), {
      mask: c.maskChannels > 0 ? contextMask([b, l, h, w, c.maskChannels], 1) : undefined,
      noise: c.noise ? randn([b], 2) : undefined,
      label: c.labelFeatures > 0 ? randn([b, c.labelFeatures], 3) : undefined,
    });
    t.same(y.shape, shape, `output shape of ${JSON.stringify({ noise: c.noise, labels: c.labelFeatures, mask: c.maskChannels, rope: c.rope })}`);
    t.ok(y.isFinite().all().dataSync()[0] === 1, 'finite output');
    t.equal(countParameters(vit), expectedParameters(c), 'parameter count');
    y.dispose();
    vit.dispose();
  }
});

t.test('vit-small preset: 5 frames of 8x8 tokens, width 256, 6 blocks, 4 heads', async (t) => {
  const vit = createVit(presets['vit-small']({ labelFeatures: 2 }));
  const c = vit.config;
  t.same([c.width, c.depth, c.heads, c.tokens, c.checkpointing], [256, 6, 4, [5, 8, 8], true]);
  const x = randn([1, 5, 8, 8, c.channels], 1);
  const y = vit.apply(x, { mask: contextMask([1, 5, 8, 8, c.channels], 2), noise: tf.scalar(1.5), label: randn([1, 2], 2) });
  t.same(y.shape, x.shape);
  t.equal(countParameters(vit), expectedParameters(c));
  t.comment(`vit-small parameters: ${countParameters(vit)}`);
  const names = [...vit.params.keys()];
  for (const n of ['in_proj.weight', 'blocks.5.attn.theta', 'blocks.0.attn.qkv.weight', 'blocks.3.modulation.weight', 'final.modulation.bias', 'noise_embedding.fc2.weight', 'label_embedding.fc1.bias', 'out_proj.bias']) {
    t.ok(names.includes(n), `has ${n}`);
  }
  t.throws(() => vit.apply(randn([1, 4, 8, 8, c.channels], 3), { mask: contextMask([1, 4, 8, 8, c.channels], 1), noise: tf.scalar(0), label: randn([1, 2], 2) }), /vit input: expected shape \[B, 5, 8, 8, 16\], received \[1, 4, 8, 8, 16\]/);
  t.throws(() => vit.apply(randn([1, 5, 8, 8, 4], 3), { noise: tf.scalar(0) }), /expected shape \[B, 5, 8, 8, 16\], received \[1, 5, 8, 8, 4\]/);
  t.throws(() => vit.apply(x, { noise: tf.scalar(0), label: randn([1, 2], 2) }), /mask of shape \[1, 5, 8, 8, 16\] required/);
  t.throws(() => vit.apply(x, { mask: contextMask([1, 5, 8, 8, 3], 1), noise: tf.scalar(0), label: randn([1, 2], 2) }), /vit mask: expected shape \[1, 5, 8, 8, 16\], received \[1, 5, 8, 8, 3\]/);
  t.throws(() => vit.apply(x, { mask: contextMask([1, 5, 8, 8, 16], 1), label: randn([1, 2], 2) }), /noise level c_noise of shape \[1\] required/);
  t.throws(() => vit.apply(x, { mask: contextMask([1, 5, 8, 8, 16], 1), noise: tf.scalar(0), label: randn([1, 3], 2) }), /vit label: expected shape \[1, 2\], received \[1, 3\]/);
  const surrogate = createVit({ ...tiny, noise: false });
  t.throws(() => surrogate.apply(randn([1, 2, 2, 2, 2], 1), { mask: contextMask([1, 2, 2, 2, 2], 1), noise: tf.scalar(0), label: randn([1, 3], 2) }), /built with noise = false/);
  t.throws(() => createVit({ ...tiny, width: 6, heads: 2 }), /width 6 must split into 2 heads of even size/);
  surrogate.dispose();
  vit.dispose();
});

t.test('gradients match finite differences (all parameters and the input)', async (t) => {
  const vit = createVit(tiny);
  // Modulations start 100x small (near-identity blocks), which leaves the inner layers' gradients near float32
  // noise: scale them to O(1) so every check is sharp.
  for (const [name, v] of vit.params) if (name.includes('modulation.weight')) v.assign(v.mul(100));
  const { x, mask, noise, label } = inputs(2, 2, 2, 2, 2, 10);
  const input = tf.variable(x);
  const r = randn([2, 2, 2, 2, 2], 20);
  const loss = () => tf.tidy(() => vit.apply(input, { mask, noise, label }).mul(r).sum() as tf.Scalar);
  const rows = directionalGradients(loss, new Map([...vit.params, ['input', input] as const]), 1e-2);
  for (const row of rows) {
    t.ok(agrees(row, 2e-2, 2e-5), `${row.name}: analytic ${row.analytic.toExponential(4)} numeric ${row.numeric.toExponential(4)}`);
  }
  vit.dispose();
});

/** Reorders the frames of [B, L, ...] tensors. */
const permuteFrames = (x: tf.Tensor, order: number[]) => tf.gather(x, order, 1);

t.test('frame order enters only through the positional encodings', async (t) => {
  const vit = createVit(tiny);
  const { x, mask, noise, label } = inputs(2, 3, 2, 2, 2, 30);
  const order = [2, 0, 1];
  const run = () => {
    const direct = permuteFrames(vit.apply(x, { mask, noise, label }), order);
    const permuted = vit.apply(permuteFrames(x, order), { mask: permuteFrames(mask, order), noise, label });
    return maxAbsDiff(direct, permuted);
  };
  const withPositions = run();
  t.ok(withPositions > 1e-3, `with positional encodings, permuting frames changes the output (${withPositions.toExponential(2)})`);
  // Remove both encodings: rotary frequencies and the absolute embedding's projection to zero.
  for (const [name, v] of vit.params) {
    if (name.endsWith('attn.theta') || name.startsWith('positional_embedding.')) v.assign(tf.zerosLike(v));
  }
  const without = run();
  t.ok(without < 1e-5, `without them, the network is equivariant to frame permutations (${without.toExponential(2)})`);
  // ... and indeed to any permutation of the tokens.
  const perm = [5, 3, 0, 11, 7, 1, 9, 2, 10, 4, 8, 6];
  const tokens = (v: tf.Tensor) => tf.gather(v.reshape([2, 12, 2]), perm, 1);
  const direct = tokens(vit.apply(x, { mask, noise, label }));
  const shuffled = vit.apply(tokens(x).reshape([2, 3, 2, 2, 2]), { mask: tokens(mask).reshape([2, 3, 2, 2, 2]), noise, label });
  const tokenDiff = maxAbsDiff(direct, shuffled.reshape([2, 12, 2]));
  t.ok(tokenDiff < 1e-5, `equivariant to any permutation of the tokens (${tokenDiff.toExponential(2)})`);
  vit.dispose();
});

t.test('rotary attention scores depend only on relative positions', async (t) => {
  const coords = tokenCoordinates(2, 3, 2); // [12, 3]
  const theta = randn([3, 4], 40, 0.5); // width 8 -> 4 pairs, 2 heads of 2 pairs
  const q = randn([1, 2, 12, 4], 41);
  const k = randn([1, 2, 12, 4], 42);
  const scores = (offset: number[]) => {
    const angles = tf.matMul(coords.add(tf.tensor1d(offset)), theta).reshape([12, 2, 2]).transpose([1, 0, 2]);
    const cos = tf.cos(angles);
    const sin = tf.sin(angles);
    return tf.matMul(applyRotary(q, cos, sin), applyRotary(k, cos, sin), false, true);
  };
  const base = scores([0, 0, 0]);
  t.ok(maxAbsDiff(base, scores([3, -2, 5])) < 1e-4, 'a common shift of every (t, h, w) leaves q.k unchanged');
  const plain = tf.matMul(q, k, false, true);
  t.ok(maxAbsDiff(base, plain) > 1e-2, 'rotation does change the scores');
  // rotation preserves norms
  const angles = tf.matMul(coords, theta).reshape([12, 2, 2]).transpose([1, 0, 2]);
  const rotated = applyRotary(q, tf.cos(angles), tf.sin(angles));
  t.ok(maxAbsDiff(rotated.norm('euclidean', -1), q.norm('euclidean', -1)) < 1e-5, 'rotation preserves norms');
});

t.test('samples are independent; conditioning inputs change the output', async (t) => {
  const vit = createVit(tiny);
  const { x, mask, noise, label } = inputs(3, 2, 2, 2, 2, 50);
  const all = vit.apply(x, { mask, noise, label });
  const one = vit.apply(x.slice([1], [1]), { mask: mask.slice([1], [1]), noise: noise.slice([1], [1]), label: label.slice([1], [1]) });
  t.ok(maxAbsDiff(all.slice([1], [1]), one) < 1e-5, 'sample 1 alone = sample 1 in a batch');
  const differs = (what: string, y: tf.Tensor) => {
    const d = maxAbsDiff(all, y);
    t.ok(d > 1e-4, `${what} changes the output (${d.toExponential(2)})`);
  };
  differs('noise', vit.apply(x, { mask, noise: noise.add(1), label }));
  differs('label', vit.apply(x, { mask, noise, label: label.add(1) }));
  differs('mask', vit.apply(x, { mask: tf.onesLike(mask), noise, label }));
  const scalar = vit.apply(x, { mask, noise: tf.scalar(0.7), label });
  const repeated = vit.apply(x, { mask, noise: tf.fill([3], 0.7), label });
  t.ok(maxAbsDiff(scalar, repeated) < 1e-6, 'a scalar noise level applies to every sample');
  vit.dispose();
});

t.test('training steps reduce a regression loss; tensor count flat across forward/backward passes', async (t) => {
  const vit = createVit({ ...tiny, noise: false, dropout: 0.1 });
  const { x, mask, label } = inputs(4, 3, 2, 2, 2, 60);
  const target = tf.tidy(() => tf.reverse(x, 1).mul(0.5).add(0.1));
  const optimizer = tf.train.adam(1e-2);
  const vars = [...vit.params.values()];
  let s = 1;
  const random = () => ((s = (s * 48271) % 2147483647) / 2147483647);
  const lossOf = (training: boolean) => tf.losses.meanSquaredError(target, vit.apply(x.mul(mask), { mask, label }, { training, random })) as tf.Scalar;
  const before = tf.tidy(() => lossOf(false).dataSync()[0]);
  const counts: number[] = [];
  for (let i = 0; i < 30; i++) {
    const cost = optimizer.minimize(() => lossOf(true), true, vars)!;
    cost.dispose();
    counts.push(tf.memory().numTensors);
  }
  const after = tf.tidy(() => lossOf(false).dataSync()[0]);
  t.ok(after < 0.7 * before, `loss ${before.toFixed(4)} -> ${after.toFixed(4)}`);
  t.same(new Set(counts.slice(2)).size, 1, `tensor count flat (${counts.slice(0, 4).join(', ')}, ...)`);
  // plain gradient passes (no optimizer) leave nothing behind either
  const start = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    const { value, grads } = tf.variableGrads(() => lossOf(true), vars);
    tf.dispose([value, ...Object.values(grads)]);
  }
  t.equal(tf.memory().numTensors, start, 'variableGrads passes leak no tensors');
  optimizer.dispose();
  vit.dispose();
});

t.test('gradient checkpointing: same gradients (dropout masks replayed), tensor count flat', async (t) => {
  const plain = createVit({ ...tiny, dropout: 0.3 });
  const remat = createVit({ ...tiny, dropout: 0.3, checkpointing: true });
  t.equal(remat.config.checkpointing, true);
  const { x, mask, noise, label } = inputs(2, 3, 2, 2, 2, 70);
  const r = randn([2, 3, 2, 2, 2], 71);
  const seeded = () => {
    let s = 9;
    return () => ((s = (s * 48271) % 2147483647) / 2147483647);
  };
  const live: number[] = [];
  const gradsOf = (vit: typeof plain) => {
    const random = seeded();
    return tf.variableGrads(() => {
      const loss = vit.apply(x, { mask, noise, label }, { training: true, random }).mul(r).sum() as tf.Scalar;
      live.push(tf.memory().numTensors); // tensors held for backprop at the end of the forward pass
      return loss;
    }, [...vit.params.values()]);
  };
  const a = gradsOf(plain);
  const b = gradsOf(remat);
  t.ok(live[1] < live[0] - 100, `far fewer tensors kept for backprop (${live[1]} vs ${live[0]})`);
  t.ok(Math.abs(a.value.dataSync()[0] - b.value.dataSync()[0]) < 1e-5, 'same loss');
  const names = [...plain.params.keys()];
  let worst = 0;
  const pv = [...plain.params.values()];
  const rv = [...remat.params.values()];
  names.forEach((_, i) => (worst = Math.max(worst, maxAbsDiff(a.grads[pv[i].name], b.grads[rv[i].name]))));
  t.ok(worst < 1e-5, `same gradients for all ${names.length} parameters (max diff ${worst.toExponential(2)})`);
  tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  // the input gradient flows through the checkpointed blocks too
  const gx = tf.grad((v: tf.Tensor) => remat.apply(v, { mask, noise, label }).mul(r).sum())(x);
  const gxPlain = tf.grad((v: tf.Tensor) => plain.apply(v, { mask, noise, label }).mul(r).sum())(x);
  t.ok(maxAbsDiff(gx, gxPlain) < 1e-5, 'same input gradient');
  const optimizer = tf.train.adam(1e-2);
  const counts: number[] = [];
  const random = seeded();
  for (let i = 0; i < 6; i++) {
    optimizer.minimize(() => vit2loss(remat, x, mask, noise, label, random), false, [...remat.params.values()]);
    counts.push(tf.memory().numTensors);
  }
  t.same(new Set(counts.slice(2)).size, 1, `tensor count flat (${counts.join(', ')})`);
  optimizer.dispose();
  plain.dispose();
  remat.dispose();
});

function vit2loss(vit: ReturnType<typeof createVit>, x: tf.Tensor, mask: tf.Tensor, noise: tf.Tensor, label: tf.Tensor, random: () => number): tf.Scalar {
  return tf.losses.meanSquaredError(x, vit.apply(x, { mask, noise, label }, { training: true, random })) as tf.Scalar;
}

t.test('checkpointing "auto" recomputes only when the estimated tape passes the budget', async (t) => {
  const small = { width: 256, depth: 6, tokens: [5, 8, 8] as const };
  const demo = { width: 96, depth: 4, tokens: [5, 4, 4] as const };
  // The estimate against the heap growth measured for the two ViTs the project trains (see vitTapeBytes).
  for (const [label, config, batch, measured] of [
    ['vit-small, batch 8', small, 8, 1.5e9],
    ['vit-small, batch 16', small, 16, 2.95e9],
    ['demo ViT, batch 16', demo, 16, 0.19e9],
    ['demo ViT, batch 32', demo, 32, 0.34e9],
  ] as const) {
    const estimate = vitTapeBytes(config, batch);
    t.ok(estimate >= 0.95 * measured && estimate <= 1.25 * measured, `${label}: estimate ${(estimate / 1e9).toFixed(2)} GB against ${measured / 1e9} GB measured`);
  }
  t.equal(resolveCheckpointing('auto', small, 16), true, 'vit-small at 16 samples per thread recomputes (3.1 GB estimated)');
  t.equal(resolveCheckpointing('auto', small, 8), false, 'vit-small at 8 keeps its tape (1.6 GB)');
  t.equal(resolveCheckpointing('auto', demo, 32), false, "the demo's ViT keeps its tape");
  t.ok(vitTapeBytes(small, 16) > CHECKPOINTING_BUDGET_BYTES && vitTapeBytes(small, 8) < CHECKPOINTING_BUDGET_BYTES);
  t.equal(resolveCheckpointing('on', demo, 1), true);
  t.equal(resolveCheckpointing('off', small, 64), false);
  t.throws(() => resolveCheckpointing('yes', demo, 1), /checkpointing must be "auto", "on" or "off", got "yes"/);
});
