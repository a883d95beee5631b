/**
 * Rollout throughput of the one-step student against its teacher, in the same run: the demo's latent emulator
 * (ViT width 96, depth 4, 4 heads, windows of 5 states of 4x4x16 latents, context 1; `npm run demo`), sampled by
 * the teacher with 16 steps of 3rd-order Adams-Bashforth and by its PIDDM student (`studentEmulator`) in one
 * network call per window, ensembles of 8 batched together. Throughput does not depend on the weights, so both
 * use the same freshly initialised backbone (the teacher's weights are the student's starting point anyway).
 *
 * Conditions: teacher and student runs interleave (A B A B ...) over `BENCH_DISTILL_ROUNDS` rounds (default 3);
 * figures are medians, with the load averages and other processes' CPU share (`underLoad` per bench/conditions.ts).
 * Figures: latent states per second (members x lead times) of each, and their ratio.
 */
import { selectBackend } from '../src/models/backend/index.js';
import { createVit, presets } from '../src/models/nn/index.js';
import { diffusionEmulator, rollout, studentEmulator, vitBackbone, type Emulator } from '../src/models/diffusion/index.js';
import { conditions, median, startInterval } from './conditions.js';

const BENCH = 'distill';
const rounds = Number(process.env.BENCH_DISTILL_ROUNDS ?? 3);
const [ensemble, windowSize, context, horizon] = [8, 5, 1, 8];

const info = await selectBackend();
console.log(JSON.stringify({ bench: BENCH, figure: 'conditions at start', ...conditions() }));
const vit = createVit(presets['vit-small']({ channels: 16, width: 96, depth: 4, heads: 4, tokens: [windowSize, 4, 4], noise: true, seed: 0 }));
const backbone = vitBackbone(vit);
const teacher = diffusionEmulator(backbone, { sampling: { sampler: 'ab', steps: 16, order: 3 } });
const student = studentEmulator(backbone, teacher.formulation);
const start = { states: Float32Array.from({ length: 4 * 4 * 16 }, (_, i) => Math.sin(i)), shape: [1, 4, 4, 16] as const, labels: null };

/** Latent states per second of one rollout of `horizon` states. */
async function throughput(emulator: Emulator): Promise<number> {
  const t0 = performance.now();
  let states = 0;
  for await (const s of rollout(emulator, start, { horizon, ensemble, window: windowSize, context, seed: 0 })) states += s.shape[0];
  return states / ((performance.now() - t0) / 1000);
}

await throughput(student); // warm-up (kernel set-up, memory growth)
await throughput(teacher);
const runs = { teacher: [] as number[], student: [] as number[] };
const end = startInterval();
for (let r = 0; r < rounds; r++) {
  runs.teacher.push(await throughput(teacher));
  runs.student.push(await throughput(student));
}
const cond = end();
const [t, s] = [median(runs.teacher), median(runs.student)];
const context_ = { backend: info.name, ensemble, horizon, rounds, ...cond };
const emit = (figure: string, value: number, unit: string, extra: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ bench: BENCH, figure, value: Number(value.toPrecision(4)), unit, ...extra, ...context_ }));
emit('rollout throughput, teacher (demo ViT, AB3 16 steps, ensemble 8)', t, 'latent states/s', { runs: runs.teacher });
emit('rollout throughput, one-step student (demo ViT, ensemble 8)', s, 'latent states/s', { runs: runs.student });
emit('student / teacher throughput ratio', s / t, 'x', { target: 10 });
