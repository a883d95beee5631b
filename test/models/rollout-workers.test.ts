/**
 * Ensemble rollouts on worker threads (src/models/rollout-workers.ts), with real workers and a tiny ViT diffusion
 * emulator: the same members as the main-thread rollout whatever the worker count, per-seed determinism, a
 * member range rolled out alone, early exit, worker failures surfacing, and the evaluation stage on workers.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { createVit, type VitConfig } from '../../src/models/nn/index.js';
import { buildEmulator, type EmulatorSpec, type LoadedEmulator } from '../../src/models/emulators.js';
import { rollout, type RolloutOptions, type RolloutStart, type RolloutState } from '../../src/models/diffusion/index.js';
import { RolloutWorkers } from '../../src/models/rollout-workers.js';
import { rolloutLatents } from '../../src/models/emulate.js';
import { collect } from '../../src/sinks/basic.js';
import { pipe, from } from '../../src/streams/core.js';
import type { CachedTrajectory } from '../../src/formats/latent-cache/schema.js';

await selectBackend({ prefer: 'wasm' });

const [H, W, C, P] = [2, 2, 3, 2];
const vitConfig: VitConfig = {
  channels: C, width: 16, depth: 2, heads: 2, ffnFactor: 2, embeddingFeatures: 8, positionFeatures: 4, labelFeatures: P, tokens: [5, H, W], seed: 11,
};
const spec: EmulatorSpec = { kind: 'diffusion', vit: vitConfig, formulation: 'diffusion', sampling: { sampler: 'ab', steps: 3, order: 3 } };
const vit = createVit(vitConfig);
// Weights away from their initialisation, so that a worker that kept its own would not pass.
tf.tidy(() => {
  for (const v of vit.params.values()) (v as tf.Variable).assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', 5)));
});
const emulator = buildEmulator(spec.kind, vit, spec.formulation, spec.sampling, null);
const model = { spec, vit, dir: 'runs/tiny-diffusion' };

const start: RolloutStart = {
  states: Float32Array.from({ length: H * W * C }, (_, i) => Math.sin(i + 1)),
  shape: [1, H, W, C],
  labels: Float32Array.from([0.3, -0.7]),
  id: 'tiny#0',
};
const options: RolloutOptions = { horizon: 7, window: 5, context: 1, ensemble: 5, seed: 3 };

const leads = (states: RolloutState[]) => states.map((s) => s.lead);
/** Largest absolute difference between two rollouts' states (lead by lead, all members). */
function maxDiff(a: RolloutState[], b: RolloutState[]): number {
  let d = 0;
  a.forEach((s, i) => s.states.forEach((v, k) => (d = Math.max(d, Math.abs(v - b[i]!.states[k]!)))));
  return d;
}
/** Member m's states over the leads. */
const member = (states: RolloutState[], m: number) => states.flatMap((s) => Array.from(s.states.subarray(m * H * W * C, (m + 1) * H * W * C)));

const serial = await collect(rollout(emulator, start, options));
const two = await RolloutWorkers.start(model, { workers: 2 });
t.teardown(() => two.close());

t.test('the members on 2 workers (3 + 2 members) are the main-thread members', async (t) => {
  t.equal(two.workers, 2);
  const got = await collect(two.rollout(start, options));
  t.same(leads(got), [1, 2, 3, 4, 5, 6, 7], 'every lead in order');
  t.ok(got.every((s) => s.shape.join() === [5, H, W, C].join() && s.id === 'tiny#0'), 'five members per state');
  t.ok(maxDiff(got, serial) <= 1e-5, `equal to the main thread within float32 rounding (max |diff| ${maxDiff(got, serial)})`);
  const one = await collect(two.rollout(start, { ...options, ensemble: 1 }));
  t.ok(maxDiff(one, serial.map((s) => ({ ...s, states: s.states.subarray(0, H * W * C) }))) <= 1e-5, 'an ensemble of one on a pool of 2: member 0');
  const spread = new Set(Array.from({ length: 5 }, (_, m) => member(serial, m)[0]!.toFixed(5)));
  t.equal(spread.size, 5, 'the members differ (each has its own noise stream)');
});

t.test('a member range rolled out alone equals those members of the whole ensemble', async (t) => {
  const part = await collect(rollout(emulator, start, { ...options, ensemble: 2, firstMember: 3 }));
  for (const m of [0, 1]) {
    const [got, want] = [member(part, m), member(serial, 3 + m)];
    const d = Math.max(...got.map((v, i) => Math.abs(v - want[i]!)));
    t.ok(d <= 1e-5, `member ${3 + m} (max |diff| ${d})`);
  }
});

t.test('the same seed gives the same states, another seed others', async (t) => {
  const [a, b, c] = [await collect(two.rollout(start, options)), await collect(two.rollout(start, options)), await collect(two.rollout(start, { ...options, seed: 4 }))];
  t.same(a.map((s) => Array.from(s.states)), b.map((s) => Array.from(s.states)), 'same seed: identical');
  t.ok(maxDiff(a, c) > 1e-2, 'another seed: other members');
});

t.test('leaving early closes the workers\' rollouts and the pool stays usable', async (t) => {
  const seen: number[] = [];
  for await (const s of two.rollout(start, { ...options, horizon: 40 })) {
    seen.push(s.lead);
    if (s.lead === 5) break; // the second window was asked for (run-ahead), the third not
  }
  t.same(seen, [1, 2, 3, 4, 5]);
  const again = await collect(two.rollout(start, options));
  t.ok(maxDiff(again, serial) <= 1e-5, 'the next rollout is unaffected');
  t.throws(() => two.rollout(start, { ...options, guidance: {} as NonNullable<RolloutOptions['guidance']> }), /guided rollouts run on the main thread/);
  const first = two.rollout(start, options)[Symbol.asyncIterator]();
  await first.next();
  await t.rejects(two.rollout(start, options)[Symbol.asyncIterator]().next(), /already running a rollout/, 'one rollout at a time');
  await first.return?.();
});

t.test('a failing worker surfaces with what it was doing; a network that cannot be built stops the start', async (t) => {
  const bad = { ...start, labels: Float32Array.from([1, 2, 3]) }; // the ViT takes 2 labels
  await t.rejects(collect(two.rollout(bad, options)), /rollout tiny#0 \(emulator runs\/tiny-diffusion, 2 worker threads\): generating leads 1-4 of members 0-2 failed: rollout worker 0: /);
  const after = await collect(two.rollout(start, options));
  t.ok(maxDiff(after, serial) <= 1e-5, 'the pool still works after a worker error');
  await t.rejects(
    RolloutWorkers.start({ spec: { ...spec, vit: { ...vitConfig, depth: 1 } }, vit }, { workers: 2 }),
    /rollout worker \d: .*builds a different network than the main thread's/,
  );
});

t.test('rolloutLatents runs the ensemble on workers with the main thread\'s states', async (t) => {
  const loaded: LoadedEmulator = {
    dir: 'runs/tiny-diffusion', kind: 'diffusion', formulation: 'diffusion', id: 'tiny', emulator, vit, spec, window: 5,
    autoencoder: '', labelNames: ['a', 'b'], latentShape: [H, W, C], dispose: () => undefined,
  };
  const T = 6;
  const row: CachedTrajectory = {
    latents: Float32Array.from({ length: T * H * W * C }, (_, i) => Math.cos(i)),
    shape: [T, H, W, C],
    labels: Float32Array.from([0.1, 0.2]),
    origin: { file: 'tiny.hdf5', trajectory: 2, augmentation: 0, transform: '' },
  };
  const run = (workers: number) => collect(pipe(from([row]), rolloutLatents({ diffusion: loaded }, { ensemble: 4, seed: 9, workers })));
  const [main, workers] = [await run(1), await run(2)];
  t.same(workers.map((s) => s.lead), [1, 2, 3, 4, 5]);
  const d = Math.max(...workers.flatMap((s, i) => Array.from(s.latents, (v, k) => Math.abs(v - main[i]!.latents[k]!))));
  t.ok(d <= 1e-5, `workers = main thread (max |diff| ${d})`);
});

t.test('a worker that dies fails the rollout with its name instead of hanging it (runs last: it breaks the pool)', async (t) => {
  // Nothing public kills a worker; its thread is ended from outside, as a crash would end it.
  const handles = (two as unknown as { handles: { worker: { terminate(): Promise<number> } }[] }).handles;
  await handles[1]!.worker.terminate();
  await t.rejects(
    collect(two.rollout(start, options)),
    /rollout tiny#0 \(emulator runs\/tiny-diffusion, 2 worker threads\): generating leads 1-4 of members 3-4 failed: rollout worker 1 exited \(code 1\)/,
  );
});
