// Trained runs as library objects: an autoencoder and an emulator saved as their jobs save them load back with
// the checks the CLI relies on, encode/decode round-trip shapes, and bad run directories (missing, incomplete,
// of another kind, trained on another autoencoder's latents, other labels) fail naming the directory, the file
// and what was expected.
import t from 'tap';
import { mkdirSync, writeFileSync, rmSync, copyFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/index.js';
import { createDcae, createVit, presets, type DcaeConfig, type VitConfig } from '../../src/models/nn/index.js';
import { saveWeights } from '../../src/models/train/index.js';
import { loadAutoencoder, encodeFrames, decodeLatents, decodeToPhysical, encodePhysical, type AutoencoderData, type NormalizationRecord } from '../../src/models/autoencoder.js';
import { loadEmulator } from '../../src/models/emulators.js';
import { rolloutLatents } from '../../src/models/emulate.js';
import { collect } from '../../src/sinks/basic.js';
import { pipe } from '../../src/streams/core.js';

await selectBackend({ prefer: 'wasm' });

const dcaeConfig: DcaeConfig = presets['dcae-small']({ inChannels: 2, latentChannels: 4, channels: [8, 16], inputSize: [8, 8], periodic: [true, true], seed: 3 });
const data: AutoencoderData = {
  layout: { names: ['density', 'pressure'], fields: ['density', 'pressure'], components: [0, 0] },
  spatialDims: ['x', 'y'],
  spatialShape: [8, 8],
  periodic: [true, true],
};
const stat = (v: number) => ({ density: v, pressure: v });
const normalization: NormalizationRecord = {
  kind: 'zscore',
  transforms: {},
  stats: { mean: stat(1), std: stat(2), rms: stat(2), mean_delta: stat(0), std_delta: stat(1), rms_delta: stat(1) },
};

async function writeAutoencoderRun(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const dcae = createDcae(dcaeConfig);
  await saveWeights(join(dir, 'autoencoder.safetensors'), dcae.params, { dcae: JSON.stringify(dcaeConfig), data: JSON.stringify(data) });
  dcae.dispose();
  writeFileSync(join(dir, 'normalization.json'), JSON.stringify(normalization));
  return createHash('sha256').update(readFileSync(join(dir, 'autoencoder.safetensors'))).digest('hex').slice(0, 16);
}

const vitConfig: VitConfig = presets['vit-small']({ channels: 4, width: 16, depth: 1, heads: 2, tokens: [3, 2, 2], labelFeatures: 1, noise: false, checkpointing: false, seed: 5 });

/** Emulator runs of one set of weights: one directory per entry of `samplings` (default one, AB order 2 in 4 steps). */
async function writeEmulatorRun(dir: string | string[], autoencoder: string, kind = 'surrogate', samplings = [{ sampler: 'ab', steps: 4, order: 2 }]): Promise<void> {
  const dirs = typeof dir === 'string' ? [dir] : dir;
  const vit = createVit(vitConfig);
  for (const [k, d] of dirs.entries()) {
    mkdirSync(d, { recursive: true });
    await saveWeights(join(d, 'emulator.safetensors'), vit.params, {
      kind,
      vit: JSON.stringify(vitConfig),
      formulation: 'diffusion',
      sampling: JSON.stringify(samplings[k] ?? samplings[0]),
      window: '3',
      autoencoder,
      labels: JSON.stringify(['log10_Reynolds']),
    });
  }
  vit.dispose();
}

t.test('an autoencoder run loads, encodes and decodes', async (t) => {
  const dir = join(t.testdir(), 'ae');
  const id = await writeAutoencoderRun(dir);
  const ae = await loadAutoencoder(dir);
  t.equal(ae.id, id, 'id = hash of the weights file');
  t.equal(ae.dir, dir);
  t.same(ae.latentShape, [4, 4, 4]);
  t.same(ae.frameShape, [8, 8, 2]);
  const frames = Float32Array.from({ length: 3 * 8 * 8 * 2 }, (_, i) => Math.sin(i / 7));
  const z = await encodeFrames(ae, frames, 3, 2);
  t.equal(z.length, 3 * 4 * 4 * 4);
  t.same(await encodeFrames(ae, frames, 3, 16), z, 'batching does not change the latents');
  const x = await decodeLatents(ae, z, 3);
  t.equal(x.length, frames.length);
  // decodeToPhysical = denormalise(decode): z-score with mean 1 and std 2
  const physical = await decodeToPhysical(ae, z, 3);
  t.ok(physical.every((v, i) => Math.abs(v - (x[i]! * 2 + 1)) < 1e-5), 'physical units undo the z-score');
  t.same((await encodePhysical(ae, physical, 3)).length, z.length);
  await t.rejects(encodeFrames(ae, frames.subarray(1), 3), /expected 3 states of shape \[8,8,2\]/);
  ae.dispose();
});

t.test('bad autoencoder run directories are named', async (t) => {
  const base = t.testdir();
  await t.rejects(loadAutoencoder(join(base, 'nope')), /autoencoder run .*nope: no such directory/);
  const empty = join(base, 'empty');
  mkdirSync(empty);
  await t.rejects(loadAutoencoder(empty), /autoencoder run .*empty: missing .*autoencoder\.safetensors \(train it first/);
  const emu = join(base, 'emu');
  await writeEmulatorRun(emu, 'x');
  await t.rejects(loadAutoencoder(emu), /this is an emulator run, not an autoencoder run/);
  const noNorm = join(base, 'no-norm');
  await writeAutoencoderRun(noNorm);
  rmSync(join(noNorm, 'normalization.json'));
  await t.rejects(loadAutoencoder(noNorm), /no-norm: missing .*normalization\.json/);
  const badNorm = join(base, 'bad-norm');
  await writeAutoencoderRun(badNorm);
  writeFileSync(join(badNorm, 'normalization.json'), '{"kind": "zscore"');
  await t.rejects(loadAutoencoder(badNorm), /normalization\.json: the normalisation record is not valid JSON/);
  const noMeta = join(base, 'no-meta');
  mkdirSync(noMeta);
  const dcae = createDcae(dcaeConfig);
  await saveWeights(join(noMeta, 'autoencoder.safetensors'), dcae.params, {});
  dcae.dispose();
  writeFileSync(join(noMeta, 'normalization.json'), JSON.stringify(normalization));
  await t.rejects(loadAutoencoder(noMeta), /autoencoder\.safetensors: no DCAE config in its metadata/);
  const otherArch = join(base, 'other-arch');
  await writeAutoencoderRun(otherArch);
  const wrong = createDcae({ ...dcaeConfig, channels: [8, 32] });
  await saveWeights(join(otherArch, 'autoencoder.safetensors'), wrong.params, { dcae: JSON.stringify(dcaeConfig), data: JSON.stringify(data) });
  wrong.dispose();
  await t.rejects(loadAutoencoder(otherArch), /mismatched tensors/);
});

t.test('an emulator run loads with the autoencoder and label checks', async (t) => {
  const base = t.testdir();
  const aeDir = join(base, 'ae');
  const id = await writeAutoencoderRun(aeDir);
  const ae = await loadAutoencoder(aeDir);
  const emuDir = join(base, 'sur');
  await writeEmulatorRun(emuDir, id);
  const emu = await loadEmulator(emuDir, { autoencoder: ae, labelNames: ['log10_Reynolds'] });
  t.equal(emu.kind, 'surrogate');
  t.equal(emu.window, 3);
  t.same(emu.latentShape, [2, 2, 4]);
  t.same(emu.labelNames, ['log10_Reynolds']);
  emu.dispose();

  await t.rejects(loadEmulator(join(base, 'nope')), /emulator run .*nope: no such directory/);
  await t.rejects(loadEmulator(aeDir), /this is an autoencoder run, not an emulator run/);
  await t.rejects(loadEmulator(emuDir, { autoencoder: 'ffff0000ffff0000' }), new RegExp(`emulator run .*sur: .*emulator\\.safetensors was trained on latents of autoencoder ${id}, not ffff0000ffff0000`));
  await t.rejects(loadEmulator(emuDir, { autoencoder: { id: 'ffff0000ffff0000', dir: '/runs/other-ae' } }), /not ffff0000ffff0000 \(\/runs\/other-ae\)/);
  await t.rejects(loadEmulator(emuDir, { labelNames: ['Rayleigh', 'Prandtl'] }), /expects labels \[log10_Reynolds\], the data has \[Rayleigh,Prandtl\]/);
  const copy = join(base, 'bad-kind');
  mkdirSync(copy);
  copyFileSync(join(aeDir, 'autoencoder.safetensors'), join(copy, 'emulator.safetensors'));
  await t.rejects(loadEmulator(copy), /emulator\.safetensors: metadata "kind" is undefined, expected "surrogate", "diffusion" or "student"/);
  ae.dispose();
});

t.test('rolloutLatents checks trajectories against the emulators', async (t) => {
  const base = t.testdir();
  const emuDir = join(base, 'sur');
  await writeEmulatorRun(emuDir, 'a');
  const emu = await loadEmulator(emuDir);
  const origin = { file: 'f.hdf5', trajectory: 2, augmentation: 0, transform: '' };
  const row = { latents: new Float32Array(5 * 2 * 2 * 4).fill(0.5), shape: [5, 2, 2, 4] as [number, number, number, number], labels: Float32Array.of(1), origin };
  const steps = await collect(pipe([row], rolloutLatents({ surrogate: emu }, { context: 1, reconstruct: true })));
  t.same(steps.map((s) => `${s.model}:${s.lead}`), ['autoencoder:1', 'autoencoder:2', 'autoencoder:3', 'autoencoder:4', 'surrogate:1', 'surrogate:2', 'surrogate:3', 'surrogate:4']);
  t.equal(steps[0]!.latents.length, 16);
  t.equal(steps[0]!.trajectory, 'f.hdf5#2');
  const again = await collect(pipe([row], rolloutLatents({ surrogate: emu }, { context: 1 })));
  t.same(again.map((s) => Array.from(s.latents)), steps.slice(4).map((s) => Array.from(s.latents)), 'reproducible');
  await t.rejects(collect(pipe([{ ...row, labels: Float32Array.of(1, 2) }], rolloutLatents({ surrogate: emu }))), /f\.hdf5#2: 2 labels, the surrogate emulator .* expects 1/);
  await t.rejects(collect(pipe([{ ...row, latents: new Float32Array(5 * 3 * 3 * 4), shape: [5, 3, 3, 4] as [number, number, number, number] }], rolloutLatents({ surrogate: emu }))), /latents of shape \[3,3,4\], the surrogate emulator .* expects \[2,2,4\]/);
  t.throws(() => rolloutLatents({ surrogate: emu }, { context: 3 }), /context \(3\) must be smaller than the surrogate window \(3/);
  await t.rejects(collect(pipe([{ ...row, latents: new Float32Array(16), shape: [1, 2, 2, 4] as [number, number, number, number] }], rolloutLatents({ surrogate: emu }))), /context \(1\) leaves no state to predict/);
  emu.dispose();
});

t.test('a diffusion emulator predicts with the sampler given at load time, as one trained with it would', async (t) => {
  const base = t.testdir();
  const [ab, euler] = [join(base, 'ab'), join(base, 'euler')];
  // the same weights, recorded with two samplers
  await writeEmulatorRun([ab, euler], 'a', 'diffusion', [{ sampler: 'ab', steps: 4, order: 2 }, { sampler: 'euler', steps: 3, order: 2 }]);
  const origin = { file: 'f.hdf5', trajectory: 1, augmentation: 0, transform: '' };
  const row = { latents: Float32Array.from({ length: 4 * 2 * 2 * 4 }, (_, i) => Math.sin(i)), shape: [4, 2, 2, 4] as [number, number, number, number], labels: Float32Array.of(1), origin };
  const roll = async (dir: string, sampling?: Partial<{ sampler: string; steps: number; order: number }>) => {
    const emu = await loadEmulator(dir, sampling ? { sampling } : {});
    const spec = { ...emu.spec.sampling };
    const states = await collect(pipe([row], rolloutLatents({ diffusion: emu }, { context: 1, ensemble: 2, workers: 1 })));
    emu.dispose();
    return { spec, latents: states.map((s) => Array.from(s.latents)) };
  };
  const asTrained = await roll(ab);
  t.same(asTrained.spec, { sampler: 'ab', steps: 4, order: 2 }, 'the recorded sampler by default');
  const overridden = await roll(ab, { sampler: 'euler', steps: 3 });
  t.same(overridden.spec, { sampler: 'euler', steps: 3, order: 2 }, 'given entries replace the recorded ones, the rest stay');
  const recorded = await roll(euler);
  t.same(overridden.latents, recorded.latents, 'the same states as the weights recorded with that sampler');
  t.notSame(overridden.latents, asTrained.latents, 'another sampler, other states');

  await t.rejects(loadEmulator(ab, { sampling: { sampler: 'rk4' } }), /ab: unknown sampler "rk4" \(expected euler, heun, ab, ddpm\)/);
  await t.rejects(loadEmulator(ab, { sampling: { steps: 0 } }), /sampling\.steps must be an integer >= 1, got 0/);
  const sur = join(base, 'sur');
  await writeEmulatorRun(sur, 'a');
  await t.rejects(loadEmulator(sur, { sampling: { steps: 8 } }), /sampler settings given, but a surrogate has no sampler/);
  t.ok(await loadEmulator(sur, { sampling: {} }).then((e) => (e.dispose(), true)), 'no entries: nothing to refuse');
});
