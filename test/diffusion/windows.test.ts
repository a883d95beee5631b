/**
 * Training windows from cached latent trajectories: slicing, batching with context masks, the distribution of
 * the number of context frames (1 + Poisson(1) mod 4 for windows of 5), and errors on malformed input.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { Rng } from '../../src/streams/random.js';
import {
  contextBatches,
  drawContextCounts,
  emulatorBatches,
  latentWindows,
  windowBatchTensors,
  type LatentTrajectory,
} from '../../src/models/diffusion/index.js';
import { pipe } from '../../src/streams/core.js';
import { map } from '../../src/streams/basic.js';
import { collect } from '../../src/sinks/basic.js';

await selectBackend({ prefer: 'wasm' });

/** A trajectory whose every value encodes (trajectory, time, pixel): 1000 k + 10 t + pixel index. */
function trajectory(k: number, T: number, labels = true): LatentTrajectory {
  const [H, W, C] = [2, 1, 2];
  const latents = Float32Array.from({ length: T * H * W * C }, (_, i) => 1000 * k + 10 * Math.floor(i / 4) + (i % 4));
  return { latents, shape: [T, H, W, C], labels: labels ? Float32Array.from([k, -k]) : null, origin: `traj-${k}` };
}

t.test('latentWindows slices every window of L states with the stride', async (t) => {
  const windows = await collect(pipe([trajectory(1, 8), trajectory(2, 4), trajectory(3, 6)], latentWindows({ window: 5, stride: 1 })));
  t.same(windows.map((w) => `${w.origin}@${w.start}`), ['traj-1@0', 'traj-1@1', 'traj-1@2', 'traj-1@3', 'traj-3@0', 'traj-3@1'], 'a 4-state trajectory yields nothing');
  t.same(Array.from(windows[2].x.subarray(0, 4)), [1020, 1021, 1022, 1023], 'window 2 starts at state 2');
  t.equal(windows[2].x.length, 5 * 4);
  t.same(windows[2].shape, [5, 2, 1, 2]);
  const strided = await collect(pipe([trajectory(1, 12)], latentWindows({ window: 5, stride: 3 })));
  t.same(strided.map((w) => w.start), [0, 3, 6]);
});

t.test('contextBatches: batches with masks, counts and labels', async (t) => {
  const batches = await collect(
    pipe([trajectory(1, 10), trajectory(2, 10)], latentWindows({ window: 5 }), contextBatches({ batchSize: 4, seed: 1 })),
  );
  t.equal(batches.length, 3, '12 windows -> 3 batches of 4');
  const b = batches[1];
  t.same(b.shape, [4, 5, 2, 1, 2]);
  t.equal(b.x[0], 1040, 'second batch starts with traj-1 window at state 4');
  t.equal(b.x[2 * 20], 2000, 'then traj-2 state 0');
  for (let i = 0; i < 4; i++) {
    const row = Array.from(b.mask.subarray(i * 5, i * 5 + 5));
    t.same(row, [0, 1, 2, 3, 4].map((l) => (l < b.context[i] ? 1 : 0)), `mask row ${i} has ${b.context[i]} leading ones`);
    t.ok(b.context[i] >= 1 && b.context[i] <= 4);
  }
  t.same(Array.from(b.labels!), [1, -1, 1, -1, 2, -2, 2, -2]);
  const tensors = windowBatchTensors(b);
  t.same(tensors.x.shape, [4, 5, 2, 1, 2]);
  t.same(tensors.mask!.shape, [4, 5]);
  t.same(tensors.labels!.shape, [4, 2]);
  tf.dispose([tensors.x, tensors.mask!, tensors.labels!]);

  const again = await collect(
    pipe([trajectory(1, 10), trajectory(2, 10)], latentWindows({ window: 5 }), contextBatches({ batchSize: 4, seed: 1 })),
  );
  t.same(again.map((x) => Array.from(x.context)), batches.map((x) => Array.from(x.context)), 'same seed, same context draws');
  const unlabelled = await collect(pipe([trajectory(1, 6, false)], latentWindows(), contextBatches({ batchSize: 2, seed: 0 })));
  t.equal(unlabelled[0].labels, null);
});

t.test('context counts follow 1 + Poisson(1) mod 4 for windows of 5', async (t) => {
  const n = 40000;
  const counts = drawContextCounts(new Rng(123), n, 5);
  const freq = [1, 2, 3, 4].map((k) => counts.filter((c) => c === k).length / n);
  const poisson = (k: number) => Math.exp(-1) / [1, 1, 2, 6, 24, 120, 720, 5040, 40320][k];
  const expected = [0, 1, 2, 3].map((r) => poisson(r) + poisson(r + 4) + (r === 0 ? poisson(8) : 0));
  freq.forEach((f, i) => t.ok(Math.abs(f - expected[i]) < 0.01, `P(context = ${i + 1}) = ${f.toFixed(4)} vs ${expected[i].toFixed(4)}`));
  t.throws(() => drawContextCounts(new Rng(1), 2, 5, 1, 5), /minContext must be in \[0, 4\]/);
});

t.test('malformed trajectories and mixed batches are named', async (t) => {
  const bad: LatentTrajectory = { ...trajectory(1, 6), latents: new Float32Array(7), origin: 'cache/train_0.arrow#3' };
  await t.rejects(collect(pipe([bad], latentWindows())), /latent trajectory \(cache\/train_0.arrow#3\): latents has 7 values, expected T\*H\*W\*C = 24/);
  const other: LatentTrajectory = { latents: new Float32Array(6 * 3), shape: [6, 1, 1, 3], labels: Float32Array.from([0, 0]), origin: 'odd' };
  await t.rejects(
    collect(pipe([trajectory(1, 5), other], latentWindows(), contextBatches({ batchSize: 3, seed: 0, dropLast: false }))),
    /window 0 \(odd\): shape \[5,1,1,3\] differs from the batch's \[5,2,1,2\]/,
  );
  t.throws(() => latentWindows({ window: 0 }), /window must be a positive integer/);
  const cached: LatentTrajectory = { ...bad, origin: { file: 'euler_train_3.hdf5', trajectory: 12, augmentation: 2 } };
  await t.rejects(collect(pipe([cached], latentWindows())), /\(euler_train_3.hdf5, trajectory 12, augmentation 2\): latents has 7 values/);
});

t.test('emulatorBatches: windows, shuffle and context masks in one stage, uploaded by windowBatchTensors', async (t) => {
  const trajectories = [trajectory(1, 9), trajectory(2, 9)];
  const before = tf.memory().numTensors;
  const batches = await collect(pipe(trajectories, emulatorBatches({ window: 5, batchSize: 5, seed: 4, shuffleBuffer: 16 }), map(windowBatchTensors)));
  t.equal(batches.length, 2, '10 windows in 2 batches of 5');
  const starts = batches.flatMap((b) => {
    const x = b.x.dataSync();
    return Array.from({ length: 5 }, (_, i) => x[i * 20]);
  });
  t.same([...starts].sort((a, b) => a - b), [1000, 1010, 1020, 1030, 1040, 2000, 2010, 2020, 2030, 2040], 'every window exactly once');
  t.not(starts.join(), [...starts].sort((a, b) => a - b).join(), 'in shuffled order');
  t.same(batches[0].mask!.shape, [5, 5]);
  t.same(batches[0].labels!.shape, [5, 2]);
  for (const b of batches) tf.dispose([b.x, b.mask!, b.labels!]);
  t.equal(tf.memory().numTensors, before);
});
