/**
 * Guided rollouts: observations streamed by lead, with gaps; windows without observations equal the plain
 * rollout's; observations are pulled only as the rollout advances; stopping mid-rollout closes the observation
 * source and frees every tensor; bad observations and guidance of a deterministic emulator are named errors.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import {
  diffusionEmulator,
  mmps,
  dps,
  rollout,
  surrogateEmulator,
  type LeadObservation,
  type RolloutGuidance,
  type RolloutStart,
} from '../../src/models/diffusion/index.js';
import { sensorMask, subsample } from '../../src/physics/observe.js';
import { collect } from '../../src/sinks/basic.js';
import { mlpBackbone } from './mlp.js';

await selectBackend({ prefer: 'wasm' });

// Latent states 2x2x3; the "decoder" is the identity (physical = latent), so observations are of the latents.
const shape = [1, 2, 2, 3] as const;
const start: RolloutStart = { states: Float32Array.from([0.5, -0.2, 0.1, 0.3, 0.9, -0.4, 0.2, 0.0, -0.6, 0.7, 0.1, 0.4]), shape, labels: null, id: 'traj' };
const layout = { shape: [2, 2] as [number, number], channels: ['a', 'b', 'c'] };
const operator = sensorMask(layout, { mask: [1, 0, 0, 1], noise: 0.05 }); // 2 sensors x 3 channels
const identity = (z: tf.Tensor4D) => tf.tidy(() => tf.mul(z, 1) as tf.Tensor4D);
const emulator = diffusionEmulator(mlpBackbone({ window: [5, 2, 2, 3], hidden: 32, seed: 3 }), { sampling: { steps: 4 } });
const options = { horizon: 10, window: 5, context: 1, ensemble: 3, seed: 4 };
const target = Float32Array.from([2, -2, 1, -1, 2, 0]);

/** An observation source recording what was pulled; `closed` once it is returned. */
function source(obs: LeadObservation[]) {
  const log = { pulled: [] as number[], closed: false };
  const iterable: AsyncIterable<LeadObservation> = {
    async *[Symbol.asyncIterator]() {
      try {
        for (const o of obs) {
          log.pulled.push(o.lead);
          yield o;
        }
      } finally {
        log.closed = true;
      }
    },
  };
  return { iterable, log };
}

const guidanceOf = (obs: AsyncIterable<LeadObservation>, method = mmps()): RolloutGuidance => ({ guidance: method, operator, decoder: identity, observations: obs });

/** Mean over members of the sensor values at a lead (member m, sensor pixel p, channel c). */
function sensorMean(states: Float32Array, members: number): number[] {
  const out = new Array<number>(6).fill(0);
  for (let m = 0; m < members; m++) {
    [0, 3].forEach((p, k) => {
      for (let c = 0; c < 3; c++) out[k * 3 + c]! += states[m * 12 + p * 3 + c]! / members;
    });
  }
  return out;
}

t.test('without observations a guided rollout is the plain one; windows before the first observation too', async (t) => {
  const plain = await collect(rollout(emulator, start, options));
  const empty = await collect(rollout(emulator, start, { ...options, guidance: guidanceOf(source([]).iterable) }));
  t.same(empty.map((s) => Array.from(s.states)), plain.map((s) => Array.from(s.states)), 'no observations: identical states');

  // Observations at leads 7 and 9 only (a gap over 1..6): the first window (leads 1-4) is untouched.
  const { iterable, log } = source([
    { lead: 7, values: target },
    { lead: 9, values: target, fields: ['a', 'b', 'c'] },
  ]);
  const guided = await collect(rollout(emulator, start, { ...options, guidance: guidanceOf(iterable) }));
  t.same(guided.slice(0, 4).map((s) => Array.from(s.states)), plain.slice(0, 4).map((s) => Array.from(s.states)), 'leads 1-4 equal the plain rollout');
  t.notSame(Array.from(guided[6]!.states), Array.from(plain[6]!.states), 'lead 7 is guided');
  const dist = (v: number[]) => Math.hypot(...v.map((x, i) => x - target[i]!));
  const dGuided = dist(sensorMean(guided[6]!.states, 3));
  const dPlain = dist(sensorMean(plain[6]!.states, 3));
  t.ok(dGuided < 0.5 * dPlain, `lead 7 sensors move to the observation: distance ${dGuided.toFixed(3)} (plain ${dPlain.toFixed(3)})`);
  t.same(log.pulled, [7, 9]);
  t.ok(log.closed, 'the observation source is closed at the end');

  // DPS neglects Cov[x | x_t]: with noise 0.05 its full-strength step overshoots by orders of magnitude on this
  // untrained network, so it runs at a small strength.
  const viaDps = await collect(rollout(emulator, start, { ...options, guidance: guidanceOf(source([{ lead: 2, values: target }]).iterable, dps({ scale: 0.01 })) }));
  t.ok(dist(sensorMean(viaDps[1]!.states, 3)) < dist(sensorMean(plain[1]!.states, 3)), 'DPS (strength 0.01) also pulls the observed lead toward the observation');
});

t.test('observations are pulled as the rollout advances; stopping mid-rollout closes them and frees tensors', async (t) => {
  const before = tf.memory().numTensors;
  const { iterable, log } = source([1, 3, 6, 10].map((lead) => ({ lead, values: target })));
  const pulledAt: number[][] = [];
  for await (const s of rollout(emulator, start, { ...options, guidance: guidanceOf(iterable) })) {
    pulledAt.push([...log.pulled]);
    if (s.lead === 5) break; // mid-rollout, inside the second window
  }
  t.same(pulledAt[0], [1, 3, 6], 'window 1 (leads 1-4) pulled its observations and the next one, no more');
  t.same(pulledAt[4], [1, 3, 6, 10], 'window 2 (leads 5-8) pulled the one after it');
  t.ok(log.closed, 'breaking out closed the observation source');
  t.equal(tf.memory().numTensors, before, 'no tensor left behind');
});

t.test('bad observations and guidance of a deterministic emulator are named', async (t) => {
  const run = (obs: LeadObservation[]) => collect(rollout(emulator, start, { ...options, guidance: guidanceOf(source(obs).iterable) }));
  await t.rejects(run([{ lead: 0, values: target }]), /rollout traj: observation at lead 0: outside the rollout's leads 1\.\.10/);
  await t.rejects(run([{ lead: 11, values: target }]), /observation at lead 11: outside the rollout's leads 1\.\.10/);
  await t.rejects(run([{ lead: 3, values: target }, { lead: 2, values: target }]), /observation at lead 2: observations must come in increasing lead order \(the previous one was at lead 3\)/);
  await t.rejects(run([{ lead: 2, values: new Float32Array(4) }]), /observation at lead 2: 4 values, the operator mask\(2 sensors\) yields 6 per state \(shape \[2,3\]\)/);
  await t.rejects(run([{ lead: 2, values: target, fields: ['a', 'b'] }]), /observation at lead 2: fields \[a,b\], the operator mask\(2 sensors\) observes \[a,b,c\]/);
  const wrongDecoder: RolloutGuidance = { ...guidanceOf(source([{ lead: 1, values: new Float32Array(1) }]).iterable), operator: subsample({ shape: [2, 2], channels: ['a'] }, { stride: 2 }) };
  await t.rejects(collect(rollout(emulator, start, { ...options, guidance: wrongDecoder })), /subsample\(stride 2\): expected states \(N, 2, 2, 1\) with channels \[a\], got shape \[3,2,2,3\]/);
  const surrogate = surrogateEmulator(mlpBackbone({ window: [5, 2, 2, 3], hidden: 8, noise: false }));
  t.throws(() => rollout(surrogate, start, { ...options, guidance: guidanceOf(source([]).iterable) }), /rollout traj: guidance \(mmps\) needs a diffusion or flow emulator, which samples with a denoiser; this emulator is a surrogate/);
});
