/**
 * The networks against an independent PyTorch implementation of the same architectures (NCHW convs, torch's
 * circular padding and pixel_(un)shuffle, F.layer_norm, ...), computed in double precision by
 * test/nn/fixtures/make_reference.py with random weights exported under our names and in tfjs layouts.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { assignParameters, createDcae, createVit, type DcaeConfig, type VitConfig } from '../../src/models/nn/index.js';
import { maxAbsDiff, useBackend } from './helpers.js';

t.comment(`backend: ${await useBackend()}`);

interface Stored {
  shape: number[];
  data: number[];
}
const load = (s: Stored) => tf.tensor(s.data, s.shape, 'float32');
const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/reference.json', import.meta.url)), 'utf8')) as {
  dcae: { config: DcaeConfig; params: Record<string, Stored>; input: Stored; latent: Stored; output: Stored }[];
  vit: { config: VitConfig; params: Record<string, Stored>; input: Stored; mask: Stored; noise: Stored; label: Stored; output: Stored }[];
};

const loadAll = (params: Record<string, Stored>) => new Map(Object.entries(params).map(([k, v]) => [k, load(v)] as const));

/** Max abs error relative to the reference's largest magnitude. */
function relError(got: tf.Tensor, want: tf.Tensor): number {
  return maxAbsDiff(got, want) / Math.max(want.abs().max().dataSync()[0], 1e-6);
}

t.test('DCAE matches the PyTorch reference', async (t) => {
  for (const [i, ref] of fixture.dcae.entries()) {
    const ae = createDcae(ref.config);
    assignParameters(ae.params, loadAll(ref.params), `case ${i}`);
    const { y, z } = ae.apply(load(ref.input) as tf.Tensor4D);
    const ez = relError(z, load(ref.latent));
    const ey = relError(y, load(ref.output));
    t.ok(ez < 1e-4, `case ${i} latents: relative error ${ez.toExponential(2)}`);
    t.ok(ey < 1e-4, `case ${i} reconstruction: relative error ${ey.toExponential(2)}`);
    ae.dispose();
  }
});

t.test('ViT matches the PyTorch reference', async (t) => {
  for (const [i, ref] of fixture.vit.entries()) {
    const vit = createVit(ref.config);
    assignParameters(vit.params, loadAll(ref.params), `case ${i}`);
    const y = vit.apply(load(ref.input), { mask: load(ref.mask), noise: load(ref.noise), label: load(ref.label) });
    const e = relError(y, load(ref.output));
    t.ok(e < 1e-4, `case ${i}: relative error ${e.toExponential(2)}`);
    vit.dispose();
  }
});

t.test('assigning tensors of another architecture lists every mismatch and assigns nothing', async (t) => {
  const ref = fixture.dcae[0];
  const other = createDcae({ ...ref.config, channels: [3, 4, 6], blocks: [1, 1, 1] });
  const before = other.params.get('encoder.levels.0.in.weight')!.clone();
  const err = t.throws(() => assignParameters(other.params, loadAll(ref.params), 'checkpoint')) as Error;
  t.match(err.message, /checkpoint do not match the network \(\d+ mismatched tensors\)/);
  t.match(err.message, /encoder\.levels\.2\.down\.weight: expected \[3, 3, 16, 6\], received \[3, 3, 16, 5\]/);
  t.match(err.message, /unexpected encoder\.levels\.1\.blocks\.1\.ffn\.conv1\.weight \[3, 3, 4, 4\]/);
  t.equal(maxAbsDiff(before, other.params.get('encoder.levels.0.in.weight')!), 0, 'nothing assigned');
  other.dispose();
});
