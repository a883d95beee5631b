// Augmentation before normalisation: a flip must mirror a vector component about zero in physical units (u -> -u
// at the mirrored point), whatever the component's dataset mean. Normalising first and flipping the z-scores
// would map u to 2 mean - u. Checked on the helper both jobs use (augmentNormalize) and on the cache's stage
// (encodeTrajectories), whose augmented copies must be the encodings of physically transformed frames.
import t from 'tap';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/index.js';
import { createDcae, presets } from '../../src/models/nn/index.js';
import { augmentNormalize, autoencoderFrom, encodeFrames, encodeTrajectories, type AutoencoderData, type NormalizationRecord } from '../../src/models/autoencoder.js';
import { WellNormalizer, wellTrajectories, writeWell, type ChannelLayout, type WellFileSpec } from '../../src/formats/well/index.js';
import { applyTransform, channelGeometry, copySeed, randomTransform, Rng, type GridTransform } from '../../src/streams/index.js';
import { collect } from '../../src/sinks/basic.js';
import { pipe } from '../../src/streams/core.js';
import { randomArray, tempDir } from '../well/helpers.js';

await selectBackend({ prefer: 'wasm' });

const H = 8;
const W = 8;
const C = 3;
const layout: ChannelLayout = { names: ['density', 'momentum_x', 'momentum_y'], fields: ['density', 'momentum', 'momentum'], components: [0, 0, 1] };
const meanMomentum = [10, -6];
const normalization: NormalizationRecord = {
  kind: 'zscore',
  transforms: {},
  stats: {
    mean: { density: 1, momentum: meanMomentum },
    std: { density: 0.5, momentum: [1, 2] },
    rms: { density: 1.1, momentum: [10, 6.3] },
    mean_delta: { density: 0, momentum: [0, 0] },
    std_delta: { density: 1, momentum: [1, 1] },
    rms_delta: { density: 1, momentum: [1, 1] },
  },
};

/** Physical frame: density around 1, momentum near its large means, with a pattern. */
function physicalFrame(seed: number): Float32Array {
  const d = randomArray(H * W, seed, 0.4, 1);
  const mx = randomArray(H * W, seed + 1, 2, meanMomentum[0]);
  const my = randomArray(H * W, seed + 2, 2, meanMomentum[1]);
  const out = new Float32Array(H * W * C);
  for (let p = 0; p < H * W; p++) [out[p * C], out[p * C + 1], out[p * C + 2]] = [d[p]!, mx[p]!, my[p]!];
  return out;
}

const channelMean = (f: Float32Array, c: number) => f.filter((_, i) => i % C === c).reduce((a, b) => a + b, 0) / (H * W);

t.test('a flip of a field with a large mean velocity mirrors it about zero', async (t) => {
  const normalizer = new WellNormalizer(normalization.stats, { kind: 'zscore' });
  const geometry = channelGeometry(layout);
  const u = physicalFrame(7);
  const flipX: GridTransform = { flip: [true, false], transpose: false, roll: [0, 0] };
  const inputs = augmentNormalize(normalizer, layout, u, [1, H, W, C], flipX, geometry);
  const back = normalizer.denormalize(inputs, layout);
  // Expected: momentum_x(i, j) -> -momentum_x(H - 1 - i, j); momentum_y and density moved, not negated.
  let worst = 0;
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      const o = (i * W + j) * C;
      const s = ((H - 1 - i) * W + j) * C;
      const expected = [u[s]!, -u[s + 1]!, u[s + 2]!];
      for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs(back[o + c]! - expected[c]!));
    }
  }
  t.ok(worst < 1e-4, `physically flipped frame recovered (max error ${worst.toExponential(2)})`);
  t.ok(Math.abs(channelMean(back, 1) + meanMomentum[0]!) < 0.5, `flipped momentum_x mean ${channelMean(back, 1).toFixed(2)}: about -10 (mirrored about zero)`);
  // The old order (normalise, then flip the z-scores) mirrors about the mean: 2 mean - u, with mean about +10.
  const wrong = normalizer.denormalize(applyTransform(normalizer.normalize(u, layout), [1, H, W, C], flipX, geometry), layout);
  t.ok(Math.abs(channelMean(wrong, 1) - meanMomentum[0]!) < 0.5, `the normalise-then-flip order gives mean ${channelMean(wrong, 1).toFixed(2)} (about +10): what this fixes`);
  // A transposition swaps components in physical units, each then normalised with its own statistics.
  const swap: GridTransform = { flip: [false, false], transpose: true, roll: [0, 0] };
  const swapped = normalizer.denormalize(augmentNormalize(normalizer, layout, u, [1, H, W, C], swap, geometry), layout);
  t.ok(Math.abs(channelMean(swapped, 2) - channelMean(u, 1)) < 1e-4, 'transposed momentum_y is the old momentum_x, in physical units');
  // The identity only normalises.
  t.same([...augmentNormalize(normalizer, layout, u, [1, H, W, C], { flip: [false, false], transpose: false, roll: [0, 0] })], [...normalizer.normalize(u, layout)]);
});

t.test('encodeTrajectories: augmented copies encode physically transformed frames', async (t) => {
  const dir = tempDir(t);
  const T = 3;
  const spec: WellFileSpec = {
    datasetName: 'flow',
    spatialDims: ['x', 'y'],
    coords: { x: Array.from({ length: H }, (_, i) => i / H), y: Array.from({ length: W }, (_, i) => i / W) },
    time: Array.from({ length: T }, (_, i) => i),
    fields: [
      { name: 'density', order: 0 },
      { name: 'momentum', order: 1 },
    ],
    boundaryConditions: [
      { dim: 'x', bcType: 'PERIODIC' },
      { dim: 'y', bcType: 'PERIODIC' },
    ],
  };
  const frames = Array.from({ length: T }, (_, s) => physicalFrame(100 + 10 * s));
  const file = join(dir, 'flow.hdf5');
  await writeWell([{ frames: frames.map((channels) => ({ channels })) }], file, spec);

  const data: AutoencoderData = { layout, spatialDims: ['x', 'y'], spatialShape: [H, W], periodic: [true, true] };
  const dcae = createDcae(presets['dcae-small']({ inChannels: C, latentChannels: 2, channels: [4, 8], inputSize: [H, W], periodic: [true, true], seed: 1 }));
  const ae = autoencoderFrom(dcae, normalization, data, 'test-ae');
  t.teardown(() => ae.dispose());
  const repeat = 6;
  const rows = await collect(pipe(wellTrajectories(file, { nIn: 1, nOut: 1 }), encodeTrajectories(ae, { repeat, seed: 3, batchSize: T })));
  t.equal(rows.length, repeat);
  // The copies' transforms, drawn as encodeTrajectories draws them.
  const random = new Rng(copySeed(3, 0));
  const transforms = Array.from({ length: repeat }, (_, r) => (r === 0 ? null : randomTransform(random, { periodic: [true, true], size: [H, W] })));
  const physical = new Float32Array(T * H * W * C);
  frames.forEach((f, i) => physical.set(f, i * H * W * C));
  const flipped = transforms.findIndex((tr) => tr !== null && (tr.flip[0] || tr.flip[1]));
  t.ok(flipped > 0, `copy ${flipped} has a flip (${rows[flipped]?.origin.transform})`);
  const geometry = channelGeometry(layout);
  for (let r = 1; r < repeat; r++) {
    const expected = await encodeFrames(ae, augmentNormalize(ae.normalizer, layout, physical, [T, H, W, C], transforms[r]!, geometry), T, T);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(rows[r]!.latents[i]! - expected[i]!));
    t.ok(diff < 1e-5, `copy ${r} (${rows[r]!.origin.transform}): latents of the physically transformed frames (max difference ${diff.toExponential(2)})`);
  }
  const wrongOrder = await encodeFrames(ae, applyTransform(ae.normalizer.normalize(physical, layout), [T, H, W, C], transforms[flipped]!, geometry), T, T);
  let gap = 0;
  for (let i = 0; i < wrongOrder.length; i++) gap = Math.max(gap, Math.abs(rows[flipped]!.latents[i]! - wrongOrder[i]!));
  t.ok(gap > 1e-3, `the flipped copy differs from the normalise-then-flip encoding (max difference ${gap.toExponential(2)})`);
});
