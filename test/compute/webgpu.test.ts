/**
 * The webgpu backend (Dawn, through the optional `webgpu` package): a DCAE and a ViT training step on webgpu equal
 * the same step on wasm (loss, every gradient, every updated weight, within float32 tolerances); 100 steps leak
 * no tensor and no GPU buffer; AddN over more inputs than the device binds is summed right; a device failure stops
 * the step with a clear error. On a machine without an adapter (no Vulkan loader or driver) the tests skip, naming
 * what is missing; CI installs lavapipe (.ci/run), where these run on a software Vulkan device.
 */
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend, describeBackend } from '../../src/models/backend/select.js';
import { findWebgpuAdapter, checkWebgpu, simulateWebgpuFailure, WebgpuDeviceError } from '../../src/models/backend/webgpu.js';
import { createDcae, createVit, presets } from '../../src/models/nn/index.js';
import { Trainer } from '../../src/models/train/trainer.js';
import { compareTrainingStep } from '../../src/models/train/compare.js';
import type { LossFunction } from '../../src/models/train/types.js';
import type { NamedParameters } from '../../src/models/train/optim.js';
import { Rng } from '../../src/streams/random.js';
import { maxRelErr } from './helpers.js';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

const unavailable = await findWebgpuAdapter().then(
  () => undefined,
  (err: Error) => `no WebGPU adapter here: ${err.message}`,
);

type Batch = tf.Tensor | Record<string, tf.Tensor>;
interface Model {
  params: NamedParameters;
  loss: LossFunction<Batch>;
  batch: (rng: Rng) => Batch;
}

/** A DCAE of the dcae-small architecture, narrower and on 16x16 inputs (8 convolutions per level, 3 levels). */
function dcae(): Model {
  const net = createDcae(presets['dcae-small']({ channels: [8, 16, 32], inputSize: [16, 16], dropout: 0, latentChannels: 4 }));
  return {
    params: net.params,
    loss: (x) => {
      const { y } = net.apply(x as tf.Tensor4D, { training: true });
      return y.sub(x as tf.Tensor).square().mean() as tf.Scalar;
    },
    batch: (rng) => tf.tensor4d(rng.normalArray(2 * 16 * 16 * 5), [2, 16, 16, 5]),
  };
}

/** A ViT of the vit-small architecture, narrower and shallower, with gradient checkpointing as in the preset. */
function vit(): Model {
  const net = createVit(presets['vit-small']({ width: 32, depth: 2, heads: 2, embeddingFeatures: 32, tokens: [3, 4, 4], channels: 4 }));
  const shape = [2, 3, 4, 4, 4];
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    params: net.params,
    loss: (b, { random }) => {
      const { x, mask, noise } = b as Record<string, tf.Tensor>;
      const y = net.apply(x.mul(mask), { mask, noise }, { training: true, random });
      return y.sub(x).square().mean() as tf.Scalar;
    },
    batch: (rng) => ({
      x: tf.tensor(rng.normalArray(size), shape),
      mask: tf.tensor(rng.uniformArray(size).map((u) => (u < 0.3 ? 1 : 0)), shape),
      noise: tf.tensor(rng.normalArray(2)),
    }),
  };
}

async function compare(t: Test, make: () => Model): Promise<void> {
  const c = await compareTrainingStep(() => {
    const m = make();
    return { params: m.params, loss: m.loss, batch: () => m.batch(new Rng(7)) }; // the same batch on both
  }, { backends: ['wasm', 'webgpu'] });
  t.ok(c.lossError < 1e-5, `loss ${c.loss[1]} on webgpu, ${c.loss[0]} on wasm`);
  t.ok(c.gradError < 1e-4, `largest gradient error ${c.gradError.toExponential(2)} (${c.gradErrorAt}) < 1e-4`);
  t.ok(c.optimizerError < 2e-6, `weights updated from the same gradients: largest error ${c.optimizerError.toExponential(2)} < 2e-6`);
  t.ok(c.weightDiffLr <= 2.001, `largest updated-weight difference anywhere ${c.weightDiffLr.toExponential(2)} lr <= 2 lr (AdamW's bound)`);
  t.ok(c.moved > 1e3 * c.optimizerError, `the step moved the weights (${c.moved.toExponential(2)}) far beyond that error`);
}

t.test('webgpu selection names the adapter', { skip: unavailable }, async (t) => {
  const info = await selectBackend({ prefer: 'webgpu' });
  t.equal(info.name, 'webgpu');
  t.equal(tf.getBackend(), 'webgpu');
  t.ok(info.adapter, 'the adapter is described');
  t.equal(info.gpu, !info.adapter!.software, 'gpu is true exactly on a hardware adapter');
  t.match(describeBackend(info), /^backend: webgpu on (GPU|CPU) \(@tensorflow\/tfjs-backend-webgpu; adapter: .+, (software|hardware)\)/);
  t.match(info.notes.join('\n'), /project webgpu kernels: AddN/);
});

t.test('the default order takes a hardware adapter, and a software one only when asked for', { skip: unavailable }, async (t) => {
  const saved = process.env.WELLSPRING_BACKEND;
  delete process.env.WELLSPRING_BACKEND;
  t.teardown(() => {
    if (saved !== undefined) process.env.WELLSPRING_BACKEND = saved;
  });
  const adapter = await findWebgpuAdapter();
  const info = await selectBackend();
  if (adapter.software) {
    t.not(info.name, 'webgpu', `a software adapter is passed over (selected ${info.name})`);
    const skipped = info.skipped.find((s) => s.name === 'webgpu');
    t.match(skipped?.reason ?? '', /software device .* used only when asked for \(WELLSPRING_BACKEND=webgpu\)/);
    t.match(describeBackend(info), /\nskipped webgpu: the only WebGPU adapter is a software device/);
  } else {
    t.ok(info.name === 'webgpu' || (info.name === 'tensorflow' && info.gpu), `a hardware adapter is taken, after TensorFlow on a GPU only (selected ${info.name})`);
  }
});

const cliBuilt = existsSync(join(root, 'dist/src/models/backend/select.js'));
t.test('WELLSPRING_BACKEND=webgpu without a driver names what is missing', { skip: unavailable || (cliBuilt ? false : 'run `npm run build` first') }, async (t) => {
  const script = `import { selectBackend } from ${JSON.stringify(join(root, 'dist/src/models/backend/select.js'))};
    try { await selectBackend(); console.log('started'); } catch (e) { console.log(e.message); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, WELLSPRING_BACKEND: 'webgpu', VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '' },
  });
  t.match(r.stdout, /no compute backend could start \(tried webgpu\): no WebGPU adapter: the Vulkan loader is present but the drivers found \(\/nonexistent\/icd.json\) offered none/);
  t.match(r.stdout, /install the GPU vendor's driver/);
});

t.test('AddN over more inputs than the device binds at once', { skip: unavailable }, async (t) => {
  await selectBackend({ prefer: 'webgpu' });
  const rng = new Rng(3);
  const n = 37; // more than any per-stage storage-buffer limit tried here (lavapipe 16, most GPUs 8..), not a multiple
  const xs = Array.from({ length: n }, () => rng.normalArray(1000));
  const got = tf.tidy(() => tf.addN(xs.map((x) => tf.tensor(x))));
  const want = new Float32Array(1000);
  for (const x of xs) for (let i = 0; i < 1000; i++) want[i] += x[i];
  t.ok(maxRelErr((await got.data()) as Float32Array, want) < 1e-6, 'equals the sum in float64');
  got.dispose();
  t.doesNotThrow(() => checkWebgpu(), 'no device error reported');
});

t.test('Tile of rank 5 runs on the GPU and equals the cpu backend', { skip: unavailable }, async (t) => {
  const rng = new Rng(9);
  const shape = [2, 3, 1, 2, 4];
  const reps = [1, 2, 3, 1, 2];
  const x = rng.normalArray(shape.reduce((a, b) => a * b, 1));
  await selectBackend({ prefer: 'cpu' });
  const want = tf.tidy(() => tf.tile(tf.tensor(x, shape), reps));
  const wantData = (await want.data()) as Float32Array;
  t.same(want.shape, [2, 6, 3, 2, 8]);
  want.dispose();
  await selectBackend({ prefer: 'webgpu' });
  const before = tf.memory().numTensors;
  const got = tf.tidy(() => tf.tile(tf.tensor(x, shape).add(0), reps)); // add: the input lives on the GPU
  t.same(got.shape, [2, 6, 3, 2, 8]);
  t.same(Array.from((await got.data()) as Float32Array), Array.from(wantData), 'the same values');
  got.dispose();
  t.equal(tf.memory().numTensors, before, 'no tensor left behind');
});

t.test('a DCAE training step on webgpu equals the step on wasm', { skip: unavailable }, async (t) => {
  await compare(t, dcae);
  t.doesNotThrow(() => checkWebgpu(), 'no device error reported');
});

t.test('a ViT training step on webgpu equals the step on wasm', { skip: unavailable }, async (t) => {
  await compare(t, vit);
  t.doesNotThrow(() => checkWebgpu(), 'no device error reported');
});

t.test('100 training steps leak no tensor and no GPU buffer', { skip: unavailable }, async (t) => {
  await selectBackend({ prefer: 'webgpu' });
  const model = dcae();
  const trainer = new Trainer<Batch>({ params: model.params, loss: model.loss, optimizer: { lr: 1e-3 }, clipNorm: 1 });
  const rng = new Rng(11);
  const counts: Array<{ tensors: number; buffers: number; bytesUsed: number; bytesAllocated: number }> = [];
  const memory = () => {
    const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number; numBytesAllocatedInGPU: number };
    const backend = tf.backend() as unknown as { bufferManager: { numUsedBuffers: number } };
    return {
      tensors: m.numTensors,
      buffers: backend.bufferManager.numUsedBuffers,
      bytesUsed: m.numBytesInGPU,
      bytesAllocated: m.numBytesAllocatedInGPU,
    };
  };
  let first = 0;
  let last = 0;
  for (let i = 0; i < 100; i++) {
    const r = await trainer.runStep(model.batch(rng));
    if (i === 0) first = r.loss;
    last = r.loss;
    if (i === 4 || i === 99) counts.push(memory());
  }
  t.same(counts[1], counts[0], `tensors, GPU buffers and bytes in use and GPU bytes allocated the same after step 5 and step 100 (${JSON.stringify(counts[1])})`);
  t.ok(last < first, `the loss went down (${first.toFixed(4)} -> ${last.toFixed(4)})`);
  trainer.dispose();
  tf.dispose([...model.params.values()]);
});

t.test('a device error stops the step with a clear message', { skip: unavailable }, async (t) => {
  await selectBackend({ prefer: 'webgpu' });
  const model = dcae();
  const trainer = new Trainer<Batch>({ params: model.params, loss: model.loss });
  simulateWebgpuFailure('WebGPU device lost (unknown): simulated');
  await t.rejects(trainer.runStep(model.batch(new Rng(1))), WebgpuDeviceError);
  await t.rejects(trainer.runStep(model.batch(new Rng(1))), /WebGPU device lost \(unknown\): simulated.*resume from its last checkpoint/);
  simulateWebgpuFailure(undefined);
  t.equal(trainer.step, 0, 'no step was counted');
  trainer.dispose();
  tf.dispose([...model.params.values()]);
});
