/**
 * Job `piddm-darcy`: PIDDM's Darcy experiment in pixel space, at a size that runs in minutes on two cores
 * (Zhang & Zou 2025; the method: /work/shared/notes/formulas.md and src/models/diffusion/distill.ts):
 *
 *   generate darcy -> joint (a, u) states (interior nodes, z-scored per channel)
 *     -> teacher: an unconditional diffusion model of the joint states (ViT backbone, one frame per window)
 *     -> teacher pairs (noise, ODE sample) -> one-step student, |d(eps) - x0|^2 + lambda |R(d(eps))|^2
 *     -> evaluation on common noise: teacher (Adams-Bashforth), student (one call), refined student (K steps
 *        on eps): Darcy residual ("PDE error") and Wasserstein-1 of a and u to held-out data
 *     -> forward (u from a) and inverse (a from u) problems by masked refinement of the student, with errors
 *        against the solver's pairs.
 *
 * R is the Darcy residual -div(a grad u) - 1 on the interior nodes (the discretisation the solver uses, so the
 * data's own residual is the solver's tolerance). Every phase saves its output in the run directory (weights,
 * pairs in memory are re-made from their seed); a rerun skips the phases already done.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { abortable, pipe, progress, createRng, type Rng } from '../../src/streams/index.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { addBlock, emptyMoments, openWellDataset, resolveWellFiles, wellSplitDir } from '../../src/formats/well/index.js';
import { createVit, presets, type VitConfig } from '../../src/models/nn/index.js';
import { Trainer, cosineSchedule, saveWeights, loadWeights, type StepReport } from '../../src/models/train/index.js';
import {
  diffusionEmulator,
  emulatorLoss,
  noiseFromSeed,
  refine,
  statePenalty,
  studentEmulator,
  studentLoss,
  vitBackbone,
  type ObservedContext,
  type PairTensors,
  type WindowBatch,
} from '../../src/models/diffusion/index.js';
import { DarcyResidual, DARCY_CHANNELS } from '../../src/physics/residuals/index.js';
import { pairSeed } from '../../src/streams/random.js';
import { wasserstein1Sorted } from '../../src/sinks/metrics/index.js';
import { describeBackend, ensureBackend } from '../../src/models/backend/index.js';
import { generateDataset } from './generate.js';
import { ConfigError, type SettingDescriptions } from '../cli/config.js';
import type { RunDir } from '../cli/run-dir.js';

export const piddmDarcyDefaults = {
  data: { root: '' },
  generate: { resolution: 14, trajectories: 640, seed: 0 },
  model: { width: 64, depth: 3, heads: 4 },
  teacher: { steps: 800, batchSize: 32, lr: 1e-3, warmup: 100, seed: 0 },
  sampling: { sampler: 'ab', steps: 16, order: 3 },
  pairs: { count: 512, seed: 1 },
  student: { steps: 400, batchSize: 32, lr: 2e-4, warmup: 20, lambda: 0.02 },
  refine: { steps: 20, lr: 0.05, lambda: 1e-5 },
  evaluation: { samples: 128, seed: 2 },
  problems: { count: 32, steps: 100, lr: 0.05, lambda: 0.01 },
};
export type PiddmDarcyConfig = typeof piddmDarcyDefaults;

export const piddmDarcySettings: SettingDescriptions<PiddmDarcyConfig> = {
  data: { root: 'a `generate darcy` dataset root ("": generate one into <run>/data with the generate settings)' },
  generate: {
    resolution: 'nodes per axis, boundary included (the states are the resolution - 2 interior nodes)',
    trajectories: 'samples, dealt 0.8 / 0.1 / 0.1 to train / valid / test',
    seed: 'seed of the coefficient fields',
  },
  model: { width: 'ViT token width', depth: 'transformer blocks', heads: 'attention heads' },
  teacher: {
    steps: 'training steps of the diffusion teacher',
    batchSize: 'states per step',
    lr: 'peak learning rate (cosine schedule)',
    warmup: 'warm-up steps',
    seed: 'seed of the weights, batches and noise',
  },
  sampling: { sampler: 'teacher sampler (deterministic: euler, heun or ab)', steps: 'sampler steps', order: 'Adams-Bashforth order' },
  pairs: { count: 'teacher (noise, sample) pairs the student learns from', seed: 'seed of the pairs\' noise' },
  student: {
    steps: 'training steps of the one-step student (from the teacher\'s weights)',
    batchSize: 'pairs per step',
    lr: 'peak learning rate',
    warmup: 'warm-up steps',
    lambda: 'weight of the mean square Darcy residual (physical units) in the student\'s loss',
  },
  refine: { steps: 'gradient steps on eps reducing the residual', lr: 'Adam step size on eps', lambda: 'weight of the residual' },
  evaluation: { samples: 'generated states per model, from common noise', seed: 'seed of that noise' },
  problems: {
    count: 'held-out pairs solved as forward (u given a) and inverse (a given u) problems',
    steps: 'refinement steps per problem',
    lr: 'Adam step size on eps',
    lambda: 'weight of the residual against the misfit on the observed channel',
  },
};

/** One row of the generation table. */
export interface GenerationRow {
  model: 'teacher' | 'student' | 'student + refinement';
  /** Network calls per sample. */
  calls: number;
  /** Mean over samples of the mean square Darcy residual (physical units). */
  pdeError: number;
  /** Wasserstein-1 distance of the pooled a and u values to the held-out data's. */
  w1A: number;
  w1U: number;
  /** Wall seconds per sample. */
  secondsPerSample: number;
}

/** One row of the problems table. */
export interface ProblemRow {
  problem: 'forward: u given a' | 'inverse: a given u';
  /** Weight of the residual (0: data misfit only). */
  lambda: number;
  /** Relative L2 error of the unobserved channel, mean over problems. */
  relativeError: number;
  /** Inverse problems: share of nodes whose coefficient lands on the wrong side of (high + low) / 2. */
  misclassified?: number;
  /** Mean square Darcy residual of the completed state. */
  pdeError: number;
}

export interface PiddmDarcyResult {
  schema: 'wellspring-piddm-darcy/1';
  grid: number;
  train: number;
  test: number;
  /** The held-out data's own residual (the solver's tolerance on this discretisation). */
  dataPdeError: number;
  generation: GenerationRow[];
  problems: ProblemRow[];
}

interface DarcyData {
  /** Interior nodes per axis. */
  n: number;
  /** States (N, n, n, 2) in physical units, channels a, u. */
  states: Float32Array;
  count: number;
}

/** Reads every sample of a split, keeping the interior nodes (channels a, u). */
async function readSplit(root: string, split: 'train' | 'test'): Promise<DarcyData> {
  const files = await resolveWellFiles(wellSplitDir(root, split));
  const ds = await openWellDataset(files, { nIn: 1, nOut: 1 });
  const out: Float32Array[] = [];
  let n = 0;
  for await (const tr of ds.trajectories()) {
    const names = tr.layout.names;
    if (names.length !== 2 || names[0] !== 'a' || names[1] !== 'u') {
      throw new Error(`${tr.origin.file}: expected the Darcy channels a, u, got ${names.join(', ')}`);
    }
    const [X, Y] = tr.meta.spatialShape as [number, number];
    if (X !== Y || X < 3) throw new Error(`${tr.origin.file}: expected a square grid of at least 3 nodes, got ${X} x ${Y}`);
    n = X - 2;
    for await (const frame of tr.frames) {
      const interior = new Float32Array(n * n * 2);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++)
          for (let c = 0; c < 2; c++) interior[(i * n + j) * 2 + c] = frame.channels[((i + 1) * X + (j + 1)) * 2 + c]!;
      out.push(interior);
      break; // steady: the first snapshot
    }
  }
  if (out.length === 0) throw new Error(`${wellSplitDir(root, split)}: no samples`);
  const states = new Float32Array(out.length * n * n * 2);
  out.forEach((s, k) => states.set(s, k * s.length));
  return { n, states, count: out.length };
}

/** Per-channel mean and standard deviation of states (N, n, n, 2) (the Well statistics' pooled moments). */
function channelStats(d: DarcyData): { shift: number[]; scale: number[] } {
  const moments = emptyMoments(2);
  addBlock(moments, d.states, 2);
  return { shift: moments.mean, scale: moments.m2.map((m2) => Math.sqrt(Math.max(m2 / moments.count, 1e-12))) };
}

function normalize(d: DarcyData, stats: { shift: number[]; scale: number[] }): Float32Array {
  return d.states.map((v, k) => (v - stats.shift[k % 2]!) / stats.scale[k % 2]!);
}

/** Runs `steps` training steps of `trainer` on batches from `next`, with a progress line. */
async function train<B>(trainer: Trainer<B>, steps: number, next: (step: number) => B, label: string, signal?: AbortSignal): Promise<StepReport[]> {
  async function* batches() {
    for (let s = 0; s < steps; s++) yield next(s);
  }
  const reports: StepReport[] = [];
  // abortable: an interrupt stops between steps (the phase is then redone on the next run)
  const source = signal ? pipe(batches(), abortable<B>(signal)) : batches();
  for await (const r of pipe(source, trainer.stage(), progress<StepReport>({ label, total: steps, detail: (r: unknown) => `loss ${(r as StepReport).loss.toPrecision(4)}` }))) {
    reports.push(r);
  }
  return reports;
}

/** Draws a batch of `size` rows of (N, rowSize) data with the generator. */
function drawRows(data: Float32Array, rowSize: number, size: number, rng: Rng): Float32Array {
  const rows = data.length / rowSize;
  const out = new Float32Array(size * rowSize);
  for (let b = 0; b < size; b++) {
    const r = rng.int(rows);
    out.set(data.subarray(r * rowSize, (r + 1) * rowSize), b * rowSize);
  }
  return out;
}

/** Checks the settings before anything is written (a ConfigError names the first bad one). */
export function checkPiddmDarcyConfig(config: PiddmDarcyConfig): void {
  const sampler = config.sampling.sampler;
  if (sampler !== 'euler' && sampler !== 'heun' && sampler !== 'ab') throw new ConfigError(`sampling.sampler must be euler, heun or ab (deterministic), got "${sampler}"`);
  const positive: [string, number][] = [
    ['generate.resolution', config.generate.resolution - 2],
    ['generate.trajectories', config.generate.trajectories],
    ['teacher.steps', config.teacher.steps],
    ['teacher.batchSize', config.teacher.batchSize],
    ['student.steps', config.student.steps],
    ['student.batchSize', config.student.batchSize],
    ['pairs.count', config.pairs.count],
    ['evaluation.samples', config.evaluation.samples],
    ['problems.count', config.problems.count],
    ['sampling.steps', config.sampling.steps],
  ];
  for (const [key, v] of positive) {
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${key} is too small or not an integer (${key === 'generate.resolution' ? 'at least 3 nodes' : 'at least 1'})`);
  }
  for (const [key, t] of [['teacher', config.teacher], ['student', config.student]] as const) {
    if (!(t.warmup >= 0 && t.warmup < t.steps)) throw new ConfigError(`${key}.warmup (${t.warmup}) must be below ${key}.steps (${t.steps})`);
    if (!(t.lr > 0)) throw new ConfigError(`${key}.lr must be positive, got ${t.lr}`);
  }
  for (const [key, v] of [['student.lambda', config.student.lambda], ['refine.lambda', config.refine.lambda], ['problems.lambda', config.problems.lambda], ['refine.steps', config.refine.steps], ['problems.steps', config.problems.steps]] as const) {
    if (!(v >= 0)) throw new ConfigError(`${key} must be >= 0, got ${v}`);
  }
}

/** Runs the experiment into `run` and returns its tables. */
export async function piddmDarcy(config: PiddmDarcyConfig, run: RunDir, signal?: AbortSignal): Promise<PiddmDarcyResult> {
  checkPiddmDarcyConfig(config);
  const sampler = config.sampling.sampler as 'euler' | 'heun' | 'ab';
  const backend = await ensureBackend();
  console.error(describeBackend(backend));
  let root = config.data.root;
  if (!root) {
    root = run.path('data');
    await generateDataset({ system: 'darcy', out: root, resolution: config.generate.resolution, trajectories: config.generate.trajectories, seed: config.generate.seed, signal });
  }
  const trainData = await readSplit(root, 'train');
  const testData = await readSplit(root, 'test');
  const { n } = trainData;
  if (testData.n !== n) throw new Error(`${root}: train and test grids differ (${n} and ${testData.n} interior nodes)`);
  const stats = channelStats(trainData);
  const trainZ = normalize(trainData, stats);
  const residual = new DarcyResidual({ n, source: 1, channels: DARCY_CHANNELS });
  const penalty = statePenalty(residual, { shift: stats.shift, scale: stats.scale });
  const rowSize = n * n * 2;
  const shape = (b: number) => [b, 1, n, n, 2] as [number, number, number, number, number];
  const empty = (b: number): ObservedContext => ({ observed: tf.zeros(shape(b)) as tf.Tensor5D, mask: tf.zeros([b, 1]) as tf.Tensor2D, labels: null });
  await run.log('data', { root, grid: n, train: trainData.count, test: testData.count, stats });

  // teacher
  const vitConfig: VitConfig = presets['vit-small']({ channels: 2, width: config.model.width, depth: config.model.depth, heads: config.model.heads, tokens: [1, n, n], noise: true, seed: config.teacher.seed });
  const vit = createVit(vitConfig);
  const teacher = diffusionEmulator(vitBackbone(vit), { formulation: 'diffusion', sampling: { sampler, steps: config.sampling.steps, order: config.sampling.order } });
  const teacherPath = run.path('teacher.safetensors');
  if (existsSync(teacherPath)) {
    await loadWeights(teacherPath, vit.params);
    await run.log('teacher', { loaded: teacherPath });
  } else {
    const t = config.teacher;
    const trainer = new Trainer<WindowBatch>({
      params: vit.params,
      loss: emulatorLoss(teacher),
      optimizer: { lr: t.lr, betas: [0.9, 0.99], weightDecay: 0 },
      schedule: cosineSchedule({ lr: t.lr, warmup: t.warmup, total: t.steps }),
      clipNorm: 1,
      seed: t.seed,
    });
    const rng = createRng(t.seed);
    const reports = await train(trainer, t.steps, () => ({ x: tf.tensor5d(drawRows(trainZ, rowSize, t.batchSize, rng), shape(t.batchSize)), mask: null, labels: null }), 'piddm teacher steps', signal);
    signal?.throwIfAborted();
    await saveWeights(teacherPath, vit.params, { kind: 'diffusion', vit: JSON.stringify(vitConfig) });
    await run.log('teacher', { steps: t.steps, loss: reports.at(-1)?.loss });
  }

  // pairs: the teacher's ODE samples from seeded noise, batch by batch
  const pairBatch = config.student.batchSize;
  const pairBatches = Math.ceil(config.pairs.count / pairBatch);
  const pairs: { noise: Float32Array; sample: Float32Array }[] = [];
  for (let i = 0; i < pairBatches; i++) {
    const ctx = empty(pairBatch);
    const eps = noiseFromSeed(shape(pairBatch), pairSeed(config.pairs.seed, i));
    const sample = teacher.predictFrom(ctx, eps);
    pairs.push({ noise: (await eps.data()) as Float32Array, sample: (await sample.data()) as Float32Array });
    tf.dispose([eps, sample, ctx.observed, ctx.mask]);
  }
  await run.log('pairs', { batches: pairBatches, windows: pairBatches * pairBatch });

  // student: a copy of the teacher's weights, trained on the pairs with the residual penalty
  const studentVit = createVit(vitConfig);
  for (const [name, p] of vit.params) studentVit.params.get(name)!.assign(p);
  const student = studentEmulator(vitBackbone(studentVit), teacher.formulation, { penalty, lambda: config.student.lambda });
  const studentPath = run.path('student.safetensors');
  if (existsSync(studentPath)) {
    await loadWeights(studentPath, studentVit.params);
  } else {
    const s = config.student;
    const trainer = new Trainer<PairTensors>({
      params: studentVit.params,
      loss: studentLoss(student),
      optimizer: { lr: s.lr, betas: [0.9, 0.99], weightDecay: 0 },
      schedule: cosineSchedule({ lr: s.lr, warmup: s.warmup, total: s.steps }),
      clipNorm: 1,
      seed: config.teacher.seed + 1,
    });
    const reports = await train(
      trainer,
      s.steps,
      (step) => {
        const p = pairs[step % pairs.length]!;
        return { x: tf.tensor5d(p.sample, shape(pairBatch)), noise: tf.tensor5d(p.noise, shape(pairBatch)), mask: tf.zeros([pairBatch, 1]) as tf.Tensor2D, labels: null };
      },
      'piddm student steps',
      signal,
    );
    signal?.throwIfAborted();
    await saveWeights(studentPath, studentVit.params, { kind: 'student', vit: JSON.stringify(vitConfig) });
    await run.log('student', { steps: s.steps, loss: reports.at(-1)?.loss });
  }

  // generation: common noise for the three models
  const S = config.evaluation.samples;
  const denormalize = (z: Float32Array) => z.map((v, k) => v * stats.scale[k % 2]! + stats.shift[k % 2]!);
  const pdeError = async (physical: Float32Array, count: number): Promise<number> => {
    const ms = tf.tidy(() => tf.mean(tf.square(residual.residual(tf.tensor4d(physical, [count, n, n, 2])))));
    const [value] = await ms.data();
    ms.dispose();
    return value!;
  };
  const sortedChannel = (states: Float32Array, c: number) => Float64Array.from(states.filter((_, k) => k % 2 === c)).sort();
  const heldA = sortedChannel(testData.states, 0);
  const heldU = sortedChannel(testData.states, 1);
  const generationRow = async (model: GenerationRow['model'], calls: number, z: Float32Array, seconds: number): Promise<GenerationRow> => {
    const x = denormalize(z);
    return { model, calls, pdeError: await pdeError(x, S), w1A: wasserstein1Sorted(heldA, sortedChannel(x, 0)), w1U: wasserstein1Sorted(heldU, sortedChannel(x, 1)), secondsPerSample: seconds / S };
  };
  const ctx = empty(S);
  const eps = noiseFromSeed(shape(S), config.evaluation.seed);
  const timed = async (f: () => tf.Tensor | Promise<tf.Tensor>): Promise<{ z: Float32Array; seconds: number }> => {
    const start = performance.now();
    const y = await f();
    const z = (await y.data()) as Float32Array;
    y.dispose();
    return { z, seconds: (performance.now() - start) / 1000 };
  };
  const fromTeacher = await timed(() => teacher.predictFrom(ctx, eps));
  const fromStudent = await timed(() => student.generate(ctx, eps));
  const refined = await timed(async () => {
    const r = await refine(student, eps, ctx, { steps: config.refine.steps, lr: config.refine.lr, penalty, lambda: config.refine.lambda });
    r.eps.dispose();
    return r.prediction;
  });
  const generation = await Promise.all([
    generationRow('teacher', config.sampling.steps * (sampler === 'heun' ? 2 : 1), fromTeacher.z, fromTeacher.seconds),
    generationRow('student', 1, fromStudent.z, fromStudent.seconds),
    generationRow('student + refinement', 1 + 2 * config.refine.steps, refined.z, refined.seconds),
  ]);
  tf.dispose([eps, ctx.observed, ctx.mask]);
  signal?.throwIfAborted();

  // forward and inverse problems on held-out pairs
  const P = Math.min(config.problems.count, testData.count);
  const truthZ = normalize({ ...testData, states: testData.states.subarray(0, P * rowSize), count: P }, stats);
  const truth = testData.states.subarray(0, P * rowSize);
  const problems: ProblemRow[] = [];
  for (const [problem, observedChannel] of [['forward: u given a', 0], ['inverse: a given u', 1]] as const) {
    for (const lambda of [0, config.problems.lambda]) {
      const pctx = empty(P);
      const values = tf.tensor5d(truthZ, shape(P));
      const mask = tf.tensor5d(observedChannel === 0 ? [1, 0] : [0, 1], [1, 1, 1, 1, 2]);
      const start = noiseFromSeed(shape(P), config.evaluation.seed + 1);
      const r = await refine(student, start, pctx, { steps: config.problems.steps, lr: config.problems.lr, penalty, lambda, observation: { values, mask } });
      // the completed state: observed channel from the data, the other from the student
      const completed = tf.tidy(() => tf.add(tf.mul(values, mask), tf.mul(r.prediction, tf.sub(1, mask))));
      const x = denormalize((await completed.data()) as Float32Array);
      tf.dispose([pctx.observed, pctx.mask, values, mask, start, r.prediction, r.eps, completed]);
      const unknown = 1 - observedChannel;
      let relative = 0;
      let wrong = 0;
      const mid = (Math.max(...heldA.subarray(heldA.length - 1)) + heldA[0]!) / 2;
      for (let p = 0; p < P; p++) {
        let num = 0;
        let den = 0;
        for (let k = unknown; k < rowSize; k += 2) {
          const at = p * rowSize + k;
          num += (x[at]! - truth[at]!) ** 2;
          den += truth[at]! ** 2;
          if (unknown === 0 && (x[at]! > mid) !== (truth[at]! > mid)) wrong++;
        }
        relative += Math.sqrt(num / den) / P;
      }
      problems.push({
        problem,
        lambda,
        relativeError: relative,
        ...(unknown === 0 ? { misclassified: wrong / (P * n * n) } : {}),
        pdeError: await pdeError(x, P),
      });
      signal?.throwIfAborted();
    }
  }
  const result: PiddmDarcyResult = {
    schema: 'wellspring-piddm-darcy/1',
    grid: n,
    train: trainData.count,
    test: testData.count,
    dataPdeError: await pdeError(testData.states, testData.count),
    generation,
    problems,
  };
  await mkdir(run.path('results'), { recursive: true });
  await writeFileAtomic(run.path('results', 'piddm-darcy.json'), JSON.stringify(result, null, 2));
  await writeFileAtomic(run.path('results', 'piddm-darcy.md'), formatPiddmDarcy(result));
  await run.log('results', { path: run.path('results') });
  return result;
}

const g = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : Math.abs(v) !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4) ? v.toExponential(2) : v.toPrecision(3));

/** The two tables as Markdown. */
export function formatPiddmDarcy(r: PiddmDarcyResult): string {
  const lines = [
    `PIDDM on Darcy flow, ${r.grid} x ${r.grid} interior nodes (${r.train} training samples, ${r.test} held out); data's own PDE error ${g(r.dataPdeError)}`,
    '',
    '| model | network calls | PDE error (mean square residual) | W1(a) to held-out | W1(u) to held-out | s / sample |',
    '|---|---|---|---|---|---|',
    ...r.generation.map((x) => `| ${x.model} | ${x.calls} | ${g(x.pdeError)} | ${g(x.w1A)} | ${g(x.w1U)} | ${g(x.secondsPerSample)} |`),
    '',
    '| problem | residual weight | relative L2 error | misclassified a | PDE error |',
    '|---|---|---|---|---|',
    ...r.problems.map((p) => `| ${p.problem} | ${g(p.lambda)} | ${g(p.relativeError)} | ${g(p.misclassified)} | ${g(p.pdeError)} |`),
  ];
  return lines.join('\n') + '\n';
}
