// Augmentations act on physics: the transformed gradient of a scalar field must equal the gradient of the
// transformed scalar field (checked with periodic central differences, exactly, for every symmetry combination).
import t from 'tap';
import { applyTransform, channelGeometry, randomTransform, describeTransform, Rng, type GridTransform } from '../../src/index.js';

const H = 8;
const W = 8;

function scalarField(): Float32Array {
  const phi = new Float32Array(H * W);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) phi[i * W + j] = Math.sin((2 * Math.PI * i) / H + 0.3) * Math.cos((4 * Math.PI * j) / W) + 0.1 * i * (H - i) * j;
  return phi;
}

/** Channels [phi, d/dx phi, d/dy phi] with periodic central differences (unscaled). */
function withGradient(phi: Float32Array): Float32Array {
  const out = new Float32Array(H * W * 3);
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      const p = i * W + j;
      out[p * 3] = phi[p]!;
      out[p * 3 + 1] = phi[((i + 1) % H) * W + j]! - phi[((i - 1 + H) % H) * W + j]!;
      out[p * 3 + 2] = phi[i * W + ((j + 1) % W)]! - phi[i * W + ((j - 1 + W) % W)]!;
    }
  }
  return out;
}

const layout = { fields: ['phi', 'grad', 'grad'], components: [0, 0, 1] };
const geometry = channelGeometry(layout);

t.test('vector components follow flips, transposition and rolls', async (t) => {
  const field = withGradient(scalarField());
  let checked = 0;
  for (const fx of [false, true]) for (const fy of [false, true]) for (const tr of [false, true]) for (const roll of [[0, 0], [3, 5]] as [number, number][]) {
    const tf: GridTransform = { flip: [fx, fy], transpose: tr, roll };
    const moved = applyTransform(field, [1, H, W, 3], tf, geometry);
    const phiMoved = new Float32Array(H * W);
    for (let p = 0; p < H * W; p++) phiMoved[p] = moved[p * 3]!;
    const expected = withGradient(phiMoved);
    let worst = 0;
    for (let k = 0; k < moved.length; k++) worst = Math.max(worst, Math.abs(moved[k]! - expected[k]!));
    t.ok(worst < 1e-5, `${describeTransform(tf) || 'identity'}: max error ${worst}`);
    checked++;
  }
  t.equal(checked, 16);
});

t.test('random transforms respect periodicity and grid shape; the identity changes nothing', async (t) => {
  const r = new Rng(5);
  for (let k = 0; k < 50; k++) {
    const tf = randomTransform(r, { periodic: [true, false], size: [8, 6] });
    t.equal(tf.roll[1], 0, 'no roll on the open axis');
    t.notOk(tf.transpose, 'no transposition of a non-square grid');
  }
  const field = withGradient(scalarField());
  t.same(applyTransform(field, [1, H, W, 3], { flip: [false, false], transpose: false, roll: [0, 0] }, geometry), field);
  t.throws(() => channelGeometry({ fields: ['s', 's', 's', 's'], components: [0, 1, 2, 3] }), /only scalars and 2D vectors/);
  t.throws(() => applyTransform(new Float32Array(5), [1, 2, 2, 1], { flip: [false, false], transpose: false, roll: [0, 0] }, channelGeometry({ fields: ['a'], components: [0] })), /do not fit/);
});
