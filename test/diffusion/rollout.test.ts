/**
 * Rollouts: context carried between calls, laziness (a window is generated only when pulled), ensemble batching,
 * seed reproducibility, memory flat in the horizon, clean-up on early exit; and the rollout stage.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { Rng } from '../../src/streams/random.js';
import {
  diffusionEmulator,
  rollout,
  type ObservedContext,
  type NoiseSeed,
  type Emulator,
  type RolloutStart,
} from '../../src/models/diffusion/index.js';
import { pipe } from '../../src/streams/core.js';
import { collect } from '../../src/sinks/basic.js';
import { mlpBackbone } from './mlp.js';

await selectBackend({ prefer: 'wasm' });

/** An analytic emulator: each unobserved frame is 0.5 x (previous frame) + 1 (+ seeded noise if `noise`). */
function affineEmulator(noise = 0) {
  const calls: { batch: number; observedFrames: number; seed: NoiseSeed }[] = [];
  const emulator: Emulator = {
    kind: 'surrogate',
    backbone: Object.assign(() => {
      throw new Error('unused');
    }),
    loss: () => {
      throw new Error('unused');
    },
    predict(context: ObservedContext, seed: NoiseSeed) {
      const [B, L, H, W, C] = context.observed.shape;
      const m = context.mask.dataSync();
      const observedFrames = Array.from(m.slice(0, L)).filter((v) => v === 1).length;
      calls.push({ batch: B, observedFrames, seed });
      const x = context.observed.arraySync();
      for (let b = 0; b < B; b++) {
        const rng = new Rng(typeof seed === 'number' ? seed + b : seed[b]!); // per-row seeds: one stream per member
        for (let l = 0; l < L; l++) {
          if (m[b * L + l] === 1) continue;
          x[b][l] = x[b][l - 1].map((row) => row.map((px) => px.map((v) => 0.5 * v + 1 + noise * rng.normal())));
        }
      }
      return tf.tensor5d(x.flat(4) as number[], [B, L, H, W, C]);
    },
  };
  return { emulator, calls };
}

const start = (values: number[], frames = 1): RolloutStart => ({
  states: Float32Array.from(values),
  shape: [frames, 1, 1, values.length / frames],
  labels: null,
});

t.test('context is carried between calls and states come out in order', async (t) => {
  const { emulator, calls } = affineEmulator();
  const states = await collect(rollout(emulator, start([4, -2]), { horizon: 10, window: 5, context: 1 }));
  t.same(states.map((s) => s.lead), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  let x = [4, -2];
  for (const s of states) {
    x = x.map((v) => 0.5 * v + 1);
    t.same(Array.from(s.states), x, `lead ${s.lead}`);
  }
  t.equal(calls.length, 3, 'windows of 5 with context 1 add 4 states per call: 3 calls for 10');
  t.ok(calls.every((c) => c.observedFrames === 1 && c.batch === 1));

  const two = affineEmulator();
  const s2 = await collect(rollout(two.emulator, start([0, 3], 2), { horizon: 7, window: 5, context: 2 }));
  let y = 3;
  for (const s of s2) {
    y = 0.5 * y + 1;
    t.equal(s.states[0], y, `context 2, lead ${s.lead}`);
  }
  t.equal(two.calls.length, 3, 'context 2 adds 3 states per call: 3 calls for 7');
  t.ok(two.calls.every((c) => c.observedFrames === 2));
});

t.test('a window is generated only when the consumer pulls past the previous one', async (t) => {
  const { emulator, calls } = affineEmulator();
  const before = tf.memory().numTensors;
  const it = rollout(emulator, start([1]), { horizon: 100, window: 5, context: 1 })[Symbol.asyncIterator]();
  t.equal(calls.length, 0, 'nothing runs before the first pull');
  for (let i = 0; i < 4; i++) await it.next();
  t.equal(calls.length, 1, 'four states from one call');
  await it.next();
  t.equal(calls.length, 2, 'the fifth state triggers the second call');
  await it.return?.();
  t.equal(tf.memory().numTensors, before, 'early exit frees the context tensors');
});

t.test('ensemble members are batched in one call and differ through their noise', async (t) => {
  const { emulator, calls } = affineEmulator(0.1);
  const states = await collect(rollout(emulator, start([1, 1]), { horizon: 4, ensemble: 8, seed: 5 }));
  t.equal(calls.length, 1);
  t.equal(calls[0].batch, 8, 'one call with a batch of 8 members');
  t.same(states[0].shape, [8, 1, 1, 2]);
  const firsts = new Set(Array.from({ length: 8 }, (_, m) => states[3].states[m * 2].toFixed(6)));
  t.equal(firsts.size, 8, 'members differ');
});

t.test('diffusion rollout: same seed same states, memory flat in the horizon', async (t) => {
  const emulator = diffusionEmulator(mlpBackbone({ window: [5, 2, 2, 3], hidden: 32, seed: 3 }), { sampling: { steps: 4 } });
  const s0 = { states: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), shape: [1, 2, 2, 3] as const, labels: null };
  const run = (seed: number) => collect(rollout(emulator, s0, { horizon: 9, ensemble: 3, seed }));
  const [a, b, c] = [await run(1), await run(1), await run(2)];
  t.same(a.map((s) => Array.from(s.states)), b.map((s) => Array.from(s.states)), 'same seed, same rollout');
  t.not(a[0].states[0], c[0].states[0], 'another seed, another rollout');

  const baseline = tf.memory().numTensors;
  const peak = async (horizon: number) => {
    let max = 0;
    let bytes = 0;
    for await (const _ of rollout(emulator, s0, { horizon, ensemble: 3, seed: 1 })) {
      max = Math.max(max, tf.memory().numTensors - baseline);
      bytes = Math.max(bytes, tf.memory().numBytes);
    }
    return { max, bytes };
  };
  const short = await peak(8);
  const long = await peak(80);
  t.equal(long.max, short.max, `live tensors while rolling out: ${short.max} at H=8, ${long.max} at H=80`);
  t.equal(long.bytes, short.bytes, 'peak bytes equal too');
  t.equal(tf.memory().numTensors, baseline, 'nothing left after the rollouts');
  for (const v of emulator.backbone.variables ?? []) v.dispose();
});

t.test('bad rollout input is named', async (t) => {
  const { emulator } = affineEmulator();
  t.throws(() => rollout(emulator, { ...start([1, 2, 3]), shape: [1, 1, 1, 2], id: 'traj-7' }, { horizon: 3 }), /rollout traj-7: states has 3 values, expected 2/);
  t.throws(() => rollout(emulator, start([1]), { horizon: 3, context: 5, window: 5 }), /context \(5\) must be smaller than the window/);
  t.throws(() => rollout(emulator, start([1]), { horizon: 3, context: 2 }), /1 initial states given, context needs 2/);
});
