/**
 * Job `distill`: physics-informed distillation (PIDDM) of a trained latent diffusion emulator into a one-step
 * student, in two resumable steps over one run directory:
 *
 * 1. pairs: training windows of the latent cache (`emulatorEpochs`) -> `teacherPairs` (noise -> the teacher's
 *    deterministic ODE sample) -> `writePairs` into `<run>/pairs/train.arrow`. With `--shard i/n` each process
 *    makes a contiguous range of the batches (`train.shard-i-of-n.arrow`); the student step reads every shard
 *    file in order, so no merge is needed. Existing pair files are kept.
 * 2. student: a copy of the teacher's network trained on the pairs with |d(eps) - x0|^2 + lambda R(D(d(eps))),
 *    R the PDE residual of the decoded states (through the autoencoder's decoder; lambda 0: plain distillation),
 *    saved as `<run>/emulator.safetensors` of kind "student", which `loadEmulator` and `eval` accept.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { abortable, map, pipe, skip, take } from '../../src/streams/index.js';
import { latentCacheFiles, openLatentCache } from '../../src/formats/latent-cache/index.js';
import { openWellDataset, resolveWellFiles, wellSplitDir } from '../../src/formats/well/index.js';
import { readPairs, writePairs, type PairBatch } from '../../src/formats/pairs/index.js';
import { Trainer, cosineSchedule, saveWeights } from '../../src/models/train/index.js';
import {
  formulation as makeFormulation,
  pairTensors,
  physicsPenalty,
  studentEmulator,
  studentLoss,
  teacherPairs,
  vitBackbone,
  type DiffusionEmulator,
  type LatentPenalty,
  type PairTensors,
} from '../../src/models/diffusion/index.js';
import { describeBackend, selectBackend } from '../../src/models/backend/index.js';
import { EMULATOR_FILE, emulatorEpochs, loadEmulator, type LoadedEmulator } from '../../src/models/emulators.js';
import { loadAutoencoder } from '../../src/models/autoencoder.js';
import { describeWellMeta, residualFor, residualSystemOf } from '../../src/physics/index.js';
import { readSafetensors } from '../../src/formats/safetensors.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { ConfigError, type SettingDescriptions } from '../cli/config.js';
import type { RunDir } from '../cli/run-dir.js';
import { dataIdentity } from '../../src/sinks/provenance.js';
import { shardTag, type Shard } from '../cli/shard.js';
import { TRAIN_SETTINGS_HELP, checkTrainConfig, resumeTrainer, runTraining } from './training.js';

/** The settings of `distill`; what each means is in `distillSettings` (shown by --help). */
export const distillDefaults = {
  teacher: '',
  cache: '',
  pairs: { batches: 64, batchSize: 8, seed: 0, shuffleBuffer: 256 },
  lambda: 0,
  autoencoder: '',
  data: { root: '' },
  train: {
    steps: 500,
    lr: 1e-4,
    warmup: 20,
    weightDecay: 0,
    clipNorm: 1,
    seed: 0,
    checkpointEvery: 100,
    logEvery: 0,
  },
};
export type DistillConfig = typeof distillDefaults;

export const distillSettings: SettingDescriptions<DistillConfig> = {
  teacher: 'run directory of the trained diffusion emulator (the teacher)',
  cache: "cache run directory: the teacher's training windows give the contexts and labels of the pairs",
  pairs: {
    batches: 'teacher-pair batches generated (one per training step, cycled)',
    batchSize: 'windows per pair batch',
    seed: 'seed of the noise, drawn per batch',
    shuffleBuffer: 'windows held in the shuffle buffer',
  },
  lambda: 'weight of the PDE residual of the decoded student samples (0: plain distillation, no autoencoder needed)',
  autoencoder: 'autoencoder run directory (for lambda > 0: decodes the student samples)',
  data: { root: "dataset root (for lambda > 0: its metadata gives the residual's grid, dt and parameters)" },
  train: TRAIN_SETTINGS_HELP,
};

/** The pair files of a distill run, in batch order (shard files sorted by shard index, else the one file). */
async function pairFiles(run: RunDir): Promise<string[]> {
  const dir = run.path('pairs');
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => f.endsWith('.arrow') && !f.includes('.tmp-')).sort().map((f) => join(dir, f));
}

async function loadTeacher(config: DistillConfig): Promise<{ teacher: LoadedEmulator; diffusion: DiffusionEmulator }> {
  if (!config.teacher) throw new ConfigError('teacher is not set: give the diffusion run directory (--teacher DIR)');
  const teacher = await loadEmulator(config.teacher);
  if (teacher.kind !== 'diffusion') {
    throw new ConfigError(`teacher ${config.teacher}: a ${teacher.kind} run, expected a diffusion emulator run (wellspring train-diffusion)`);
  }
  return { teacher, diffusion: teacher.emulator as DiffusionEmulator };
}

/**
 * Makes this shard's teacher pairs into `<run>/pairs/` (kept if already there). Shard i of n makes the batches
 * [floor(i B / n), floor((i + 1) B / n)) of the B configured, so the shards together equal an unsharded run.
 */
export async function makePairs(config: DistillConfig, run: RunDir, shard: Shard, signal?: AbortSignal): Promise<string> {
  const { teacher, diffusion } = await loadTeacher(config);
  if (!config.cache) throw new ConfigError('cache is not set: give the cache run directory (--cache DIR)');
  const files = await latentCacheFiles(config.cache, 'train');
  const info = await openLatentCache(files[0]!);
  if (info.autoencoder !== teacher.autoencoder) {
    throw new ConfigError(`cache ${config.cache} holds latents of autoencoder ${info.autoencoder}, the teacher ${config.teacher} learned ${teacher.autoencoder}`);
  }
  const { batches, batchSize, seed, shuffleBuffer } = config.pairs;
  if (!Number.isInteger(batches) || batches < 1) throw new ConfigError(`pairs.batches must be a positive integer, got ${batches}`);
  const from = Math.floor((shard.index * batches) / shard.count);
  const to = Math.floor(((shard.index + 1) * batches) / shard.count);
  const name = shard.count > 1 ? `train.${shardTag(shard)}.arrow` : 'train.arrow';
  const path = run.path('pairs', name);
  const backend = await selectBackend();
  console.error(describeBackend(backend));
  await run.describe({ backend, data: await dataIdentity(join(config.cache, 'cache'), { stats: null }) });
  await run.log('pairs', { teacher: teacher.id, from, to, path });
  if (existsSync(path) || to <= from) {
    teacher.dispose();
    return path;
  }
  try {
    const windows = pipe(
      emulatorEpochs(files, { autoencoder: info.autoencoder, window: teacher.window, batchSize, seed, shuffleBuffer }),
      skip(from),
      take(to - from),
      teacherPairs(diffusion, { seed, firstBatch: from }),
    );
    const written = await writePairs(signal ? pipe(windows, abortable<PairBatch>(signal)) : windows, {
      path,
      meta: { teacher: teacher.id, sampler: { ...diffusion.sampling }, formulation: teacher.formulation, seed, autoencoder: teacher.autoencoder, labelNames: teacher.labelNames, extra: { teacher_run: config.teacher, batches: `${from}-${to}` } },
    });
    await run.log('pairs-written', { path, windows: written.windows, batches: written.batches });
  } finally {
    teacher.dispose();
  }
  return path;
}

/** The physics penalty of decoded latent windows, when lambda > 0. */
async function penaltyFor(config: DistillConfig, teacher: LoadedEmulator): Promise<LatentPenalty | undefined> {
  if (!(config.lambda > 0)) return undefined;
  if (!config.autoencoder) throw new ConfigError('lambda > 0 needs the autoencoder run (--ae DIR) to decode the student samples');
  if (!config.data.root) throw new ConfigError('lambda > 0 needs the dataset root (--data ROOT): its metadata gives the residual grid, dt and parameters');
  const ae = await loadAutoencoder(config.autoencoder);
  if (ae.id !== teacher.autoencoder) throw new ConfigError(`autoencoder ${config.autoencoder} (${ae.id}) is not the one the teacher learned (${teacher.autoencoder})`);
  const [file] = await resolveWellFiles(wellSplitDir(config.data.root, 'train'));
  const meta = (await openWellDataset(file!, { nIn: 1, nOut: 1 })).files[0]!;
  return physicsPenalty(ae, residualFor(residualSystemOf(meta.datasetName), describeWellMeta(meta)));
}

/** Trains the one-step student on the run's pairs (resuming from its checkpoint) and saves it. */
export async function trainStudent(config: DistillConfig, run: RunDir, signal?: AbortSignal): Promise<LoadedEmulator> {
  checkTrainConfig({ ...config.train, batchSize: 1 }); // one pair batch (of pairs.batchSize windows) per step
  const { teacher } = await loadTeacher(config);
  const files = await pairFiles(run);
  if (files.length === 0) throw new Error(`${run.path('pairs')}: no pair files; run wellspring distill --pairs-only first, or without it`);
  const penalty = await penaltyFor(config, teacher);
  // The student is the teacher's own network (loaded with its weights): before training it is the teacher's
  // one-step Euler prediction.
  const vit = teacher.vit;
  const teacherMeta = (await readSafetensors(join(config.teacher, EMULATOR_FILE))).metadata;
  const student = studentEmulator(vitBackbone(vit), makeFormulation(teacher.formulation as 'diffusion' | 'flow'), { penalty, lambda: config.lambda });
  const { steps, seed } = config.train;
  const trainer = new Trainer<PairTensors>({
    params: vit.params,
    optimizer: { lr: config.train.lr, betas: [0.9, 0.99], weightDecay: config.train.weightDecay },
    schedule: cosineSchedule({ lr: config.train.lr, warmup: config.train.warmup, total: steps }),
    clipNorm: config.train.clipNorm,
    seed,
    loss: studentLoss(student),
  });
  const checkpoint = await resumeTrainer(trainer, run);
  await run.log('student', { teacher: teacher.id, lambda: config.lambda, pairFiles: files.length });
  async function* epochs(): AsyncGenerator<PairBatch> {
    for (;;) yield* readPairs(files, { teacher: teacher.id });
  }
  const batches = pipe(epochs(), skip(trainer.step), map(pairTensors, 'upload-pairs'));
  await runTraining({ trainer, batches, steps, run, checkpoint, checkpointEvery: config.train.checkpointEvery, logEvery: config.train.logEvery, label: 'distill steps', signal });

  const weights = run.path(EMULATOR_FILE);
  await saveWeights(weights, vit.params, {
    ...teacherMeta,
    kind: 'student',
    teacher: teacher.id,
    teacher_run: config.teacher,
    lambda: String(config.lambda),
    steps: String(trainer.step),
  });
  teacher.dispose();
  const loaded = await loadEmulator(run.dir, { autoencoder: teacherMeta.autoencoder ?? '' });
  await writeFileAtomic(run.path('metrics.json'), JSON.stringify({ kind: 'student', teacher: loaded.id, steps: trainer.step, lambda: config.lambda }, null, 2));
  return loaded;
}
