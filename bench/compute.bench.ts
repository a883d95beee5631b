/**
 * Compute benchmark: time of one training step (forward, backward, gradient clipping, AdamW update) of the
 * `dcae-small` autoencoder (batch 16, 64x64x5 inputs) and the `vit-small` denoiser (batch 32, 5 frames of 8x8x16
 * latent tokens) on the wasm backend, and the demo's own networks: `dcae-demo` (the demo's autoencoder, channels
 * 16-32-64-128, batch 16 of 32x32x5 states) and `vit-demo` (the demo's emulators, width 96, depth 4, 4 heads,
 * batch 32 of 5 frames of 4x4x16 latents), and in the same run the same architectures in PyTorch on the CPU
 * (bench/torch_train.py, one thread per core) when python3 with torch is present. Prints the ratio PyTorch-time /
 * wellspring-time (higher is better for wellspring; 1.0 = parity), in wall time and in CPU time per step. Which
 * BLAS PyTorch loaded matters a lot for the ViT (see bench/torch_train.py); the ratio lines name it.
 *
 * Conditions: the runs interleave, wellspring then PyTorch, round after round (A B A B ...); each round times
 * at least `--steps` steps (about `--min-round-ms` of them; PyTorch as many as the longest) of every setup after
 * two warm-up steps per setup, and a figure is the median over rounds of
 * the per-round medians. Every figure carries the load averages before and after and the CPU used by other
 * processes meanwhile, and `underLoad: true` when bench/conditions.ts's rule says the machine was not quiet:
 * such figures are not to be quoted. The last line per model is a kernel profile of one single-thread step
 * (tf.profile: kernel time by op, and its share of the step's wall time).
 *
 * `node dist/bench/compute.bench.js [--steps N] [--rounds R] [--which dcae-small,vit-small,dcae-demo,vit-demo] [--workers 1,2]
 *   [--no-profile] [--no-baseline] [--no-torch] [--min-round-ms 1000]` (--no-torch: wellspring's figures only, e.g. to
 *   compare two builds; a round of one setup runs at least --steps steps and about --min-round-ms of them, sized by a
 *   second warm-up step)
 *   --workers 1,2 (default) times single-thread and data-parallel training over 2 worker threads (each its own
 *   wasm instance, see src/models/train/parallel.ts); the ratio uses the best.
 *   Unless --no-baseline, it also times dcae-small on one thread with the Winograd convolutions off
 *   (`WELLSPRING_WINOGRAD=off`: tfjs' XNNPACK convolutions plus the project's gradient kernels), to show what the
 *   Winograd kernels bring.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { type WinogradMode, setWinogradMode, winogradMode } from '../src/models/backend/wasm/index.js';
import { createDcae, createVit, presets, resolveCheckpointing } from '../src/models/nn/index.js';
import { ParallelGradients, Trainer, type ParallelModel } from '../src/models/train/index.js';
import { Rng } from '../src/streams/random.js';
import { isMainThread } from 'node:worker_threads';
import { profileStep } from './profile.js';
import { LOAD_PER_CORE_LIMIT, OTHER_CORES_LIMIT, conditions, median, startInterval } from './conditions.js';

export type Batch = tf.Tensor | Record<string, tf.Tensor>;

/** The benchmarked networks: the presets, and the demo's autoencoder and emulator (pipelines/jobs/demo.ts). */
export type BenchModel = 'dcae-small' | 'vit-small' | 'dcae-demo' | 'vit-demo';
const MODELS: readonly BenchModel[] = ['dcae-small', 'vit-small', 'dcae-demo', 'vit-demo'];
const isDcae = (model: BenchModel) => model.startsWith('dcae');
/** Samples per step: the autoencoders 16, the ViTs 32 (as the presets' and the demo's training). */
const batchSizeOf = (model: BenchModel) => (isDcae(model) ? 16 : 32);
/** Input side: dcae-small 64, the demo's autoencoder 32; latent tokens per frame side: vit-small 8, the demo's 4. */
const sideOf = (model: BenchModel) => ({ 'dcae-small': 64, 'dcae-demo': 32, 'vit-small': 8, 'vit-demo': 4 })[model];

/**
 * Model factory shared by the main thread and the data-parallel workers (which import this file): the preset
 * network and its training loss (MSE of the reconstruction / of the denoised window).
 */
export function build(options: { model: BenchModel; dropout?: number }): ParallelModel<Batch> {
  if (isDcae(options.model)) {
    const demo = options.model === 'dcae-demo' ? { channels: [16, 32, 64, 128], inputSize: [32, 32] as [number, number] } : {};
    const net = createDcae(presets['dcae-small']({ ...demo, ...(options.dropout === undefined ? {} : { dropout: options.dropout }) }));
    return {
      params: net.params,
      loss: (x, { random }) => {
        const { y } = net.apply(x as tf.Tensor4D, { training: true, random });
        return y.sub(x as tf.Tensor).square().mean() as tf.Scalar;
      },
    };
  }
  const base = presets['vit-small'](options.model === 'vit-demo' ? { width: 96, depth: 4, heads: 4, tokens: [5, 4, 4] } : {});
  // Recomputation as the training jobs decide it (model.checkpointing auto), for the whole batch on one thread:
  // vit-small recomputes (3.1 GB of tape at 16 samples), the demo's ViT keeps its tape (0.4 GB at 32).
  const net = createVit({ ...base, checkpointing: resolveCheckpointing('auto', { width: base.width, depth: base.depth, tokens: base.tokens! }, batchSizeOf(options.model)) });
  return {
    params: net.params,
    loss: (b, { random }) => {
      const { x, mask, noise } = b as Record<string, tf.Tensor>;
      const y = net.apply(x.mul(mask), { mask, noise }, { training: true, random });
      return y.sub(x).square().mean() as tf.Scalar;
    },
  };
}

/** A batch of the benchmark's size (`batchSizeOf`), or of `n` samples. */
export function makeBatch(model: BenchModel, rng: Rng, n?: number): Batch {
  const b = n ?? batchSizeOf(model);
  const side = sideOf(model);
  if (isDcae(model)) return tf.tensor4d(rng.normalArray(b * side * side * 5), [b, side, side, 5]);
  const shape = [b, 5, side, side, 16];
  const size = shape.reduce((a, c) => a * c, 1);
  return {
    x: tf.tensor(rng.normalArray(size), shape),
    mask: tf.tensor(rng.uniformArray(size).map((u) => (u < 0.3 ? 1 : 0)), shape),
    noise: tf.tensor(rng.normalArray(b)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      which: { type: 'string', default: MODELS.join(',') },
      'no-profile': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1,2' },
      'no-baseline': { type: 'boolean', default: false },
      'no-torch': { type: 'boolean', default: false },
      'min-round-ms': { type: 'string', default: '1000' },
    },
  });
  const steps = Number(values.steps);
  const rounds = Number(values.rounds);
  const minRoundMs = Number(values['min-round-ms']);
  const workerCounts = values.workers.split(',').map(Number);
  const which = values.which.split(',') as BenchModel[];
  const unknown = which.filter((m) => !MODELS.includes(m));
  if (unknown.length > 0) throw new Error(`--which: unknown network(s) ${unknown.join(', ')}; known: ${MODELS.join(', ')}`);
  const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'compute', ...line }));
  const threads = cpus().length; // PyTorch: one thread per core
  const info = await selectBackend({ prefer: 'wasm' });
  emit({ figure: 'conditions at start', ...conditions(), rule: `underLoad: load average at start > ${LOAD_PER_CORE_LIMIT}/core, or other processes > ${OTHER_CORES_LIMIT} core during the figure (bench/conditions.ts)` });

  // PyTorch reference: the first python3 that has torch (Debian's python3-torch lives in /usr/bin).
  const here = dirname(fileURLToPath(import.meta.url));
  // Compiled: dist/bench/compute.bench.js -> bench/torch_train.py; from source (tsx): bench/compute.bench.ts.
  const script = [join(here, '../../bench/torch_train.py'), join(here, 'torch_train.py')].find(existsSync);
  const python = ['python3', '/usr/bin/python3'].find(
    (exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
  );
  const torchSkip = values['no-torch'] ? 'not asked for (--no-torch)' : !script ? `bench/torch_train.py not found from ${here}` : !python ? 'no python3 with torch (apt-get install python3-torch)' : undefined;
  interface TorchRun { value: number; processCpuMsPerStep: number; blas: string; blasBuild: string; matmul: string; threads: number; torch: string }
  /** One PyTorch run of `steps` steps (after its own warm-up step): its median step time and context. */
  function torchRun(model: string, steps: number): TorchRun | string {
    const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
    const run = spawnSync(python!, [script!, '--threads', String(threads), '--steps', String(steps), '--which', model], { encoding: 'utf8', env });
    if (run.status !== 0) return `torch_train.py failed: ${run.stderr.trim().split('\n').pop()}`;
    return JSON.parse(run.stdout.trim().split('\n').pop()!) as TorchRun;
  }

  // No micro-batches: each worker runs its whole shard at once, like the 1-worker setup and the training jobs. With
  // the native kernels a vit-small shard of 16 leaves the wasm heap at about 1.1 GB (32 on one thread: 2.1 GB; the
  // heap stops at 4 GB), and micro-batches of 4 cost about 10% more CPU per step over 2 workers (2026-11-30).
  for (const model of which) {
    const rng = new Rng(1);
    const batchOf = () => makeBatch(model, rng);
    // One trainer per worker count, kept for every round; the first step of each is a warm-up.
    const setups: Array<{ label: string; workers: number; trainer: Trainer<Batch>; close: () => Promise<void>; medians: number[]; cpuMs: number[] }> = [];
    const variants: Array<{ workers: number; winograd: 'default' | 'off' }> = workerCounts.map((workers) => ({ workers, winograd: 'default' }));
    if (!values['no-baseline'] && isDcae(model)) variants.push({ workers: 1, winograd: 'off' });
    for (const { workers, winograd } of variants) {
      const { params, loss } = build({ model });
      const parallel =
        workers > 1
          ? await ParallelGradients.start({ module: import.meta.url, options: { model }, params, workers })
          : undefined;
      const trainer = new Trainer<Batch>({ params, loss, optimizer: { lr: 1e-4, weightDecay: 0.01 }, clipNorm: 1, gradients: parallel?.compute });
      const label = winograd === 'off' ? `${workers} worker, Winograd off` : `${workers} worker${workers > 1 ? 's' : ''}`;
      setups.push({
        label,
        workers,
        trainer,
        close: async () => {
          await parallel?.close();
          trainer.dispose();
          for (const v of params.values()) v.dispose();
        },
        medians: [],
        cpuMs: [],
      });
    }
    // The Winograd-off baseline switches the mode around its own steps only.
    const defaultMode = winogradMode();
    const modeOf = (label: string): WinogradMode => (label.includes('Winograd off') ? 'off' : defaultMode);
    const withMode = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
      const previous = setWinogradMode(modeOf(label));
      try {
        return await f();
      } finally {
        setWinogradMode(previous);
      }
    };
    // Two warm-up steps each; the second's time sizes the rounds: at least --steps steps and about
    // --min-round-ms of stepping per round, so that fast networks (the demo's, 60-80 ms a step) are not timed over
    // a few still-warming steps (3-step rounds of the demo's autoencoder ranged 50-92 ms in one quiet run).
    const roundSteps = new Map<(typeof setups)[number], number>();
    for (const s of setups) {
      await withMode(s.label, () => s.trainer.runStep(batchOf()));
      const { ms } = await withMode(s.label, () => s.trainer.runStep(batchOf()));
      roundSteps.set(s, Math.max(steps, Math.ceil(minRoundMs / Math.max(ms, 1))));
    }

    // Rounds: every wellspring setup, then PyTorch (A B A B ...); medians over rounds of per-round medians.
    const torchMedians: number[] = [];
    const torchCpu: number[] = [];
    let torchContext: TorchRun | undefined;
    let torchError = torchSkip;
    const end = startInterval();
    for (let r = 0; r < rounds; r++) {
      for (const s of setups) {
        const times: number[] = [];
        const cpu0 = process.cpuUsage();
        await withMode(s.label, async () => {
          for (let i = 0; i < roundSteps.get(s)!; i++) times.push((await s.trainer.runStep(batchOf())).ms);
        });
        const cpu = process.cpuUsage(cpu0);
        s.medians.push(median(times));
        s.cpuMs.push((cpu.user + cpu.system) / 1000 / roundSteps.get(s)!);
      }
      if (!torchError) {
        const run = torchRun(model, Math.max(...roundSteps.values())); // as many steps as wellspring's longest rounds
        if (typeof run === 'string') torchError = run;
        else {
          torchMedians.push(run.value);
          torchCpu.push(run.processCpuMsPerStep);
          torchContext = run;
        }
      }
    }
    const cond = end();
    const batch = batchSizeOf(model);
    let best: (typeof setups)[number] | undefined;
    for (const s of setups) {
      emit({
        figure: `train-step ${model}, ${s.label}`,
        value: Math.round(median(s.medians)),
        unit: 'ms',
        batch,
        backend: info.name,
        workers: s.workers,
        winograd: modeOf(s.label),
        roundMedians: s.medians.map(Math.round),
        processCpuMsPerStep: Math.round(median(s.cpuMs)),
        rounds,
        stepsPerRound: roundSteps.get(s),
        ...cond,
      });
      if (!s.label.includes('Winograd off') && (!best || median(s.medians) < median(best.medians))) best = s;
    }
    if (torchError || !torchContext) {
      emit({ figure: `torch-train-step ${model}`, skipped: torchError ?? 'no run' });
    } else {
      const torchMs = median(torchMedians);
      emit({ figure: `torch-train-step ${model}`, value: Math.round(torchMs), unit: 'ms', batch, roundMedians: torchMedians.map(Math.round), processCpuMsPerStep: Math.round(median(torchCpu)), threads: torchContext.threads, torch: torchContext.torch, blas: torchContext.blas, blasBuild: torchContext.blasBuild, matmul: torchContext.matmul, ...cond });
      if (best) {
        emit({
          figure: `ratio torch/wellspring ${model}`,
          value: Number((torchMs / median(best.medians)).toFixed(3)),
          unit: 'x',
          torchMs: Math.round(torchMs),
          wellspringMs: Math.round(median(best.medians)),
          wellspring: best.label,
          torchBlas: torchContext.blas,
          torchThreads: torchContext.threads,
          note: 'wall time, medians over interleaved rounds; wellspring = its fastest worker count',
          underLoad: cond.underLoad,
        });
        emit({
          figure: `cpu-time ratio torch/wellspring ${model}`,
          value: Number((median(torchCpu) / median(best.cpuMs)).toFixed(3)),
          unit: 'x',
          note: 'CPU time per step summed over threads',
          underLoad: cond.underLoad,
        });
      }
    }
    if (!values['no-profile']) {
      // One profiled single-thread step: kernel time by op and its share of the step's wall time. Kernels that
      // the project's kernels call through tfjs (e.g. Transpose inside BatchMatMul) count in their caller too.
      const single = setups.find((s) => s.workers === 1 && !s.label.includes('Winograd off'));
      if (single) {
        const { stepMs, kernels } = await profileStep(() => single.trainer.runStep(batchOf()));
        emit({ figure: `kernel profile ${model}`, stepMs: Math.round(stepMs), unit: '[op, ms, share of step]', kernels, note: 'one profiled step, 1 worker; nested kernels also count in their callers' });
      }
    }
    for (const s of setups) await s.close();
  }
  emit({ figure: 'conditions at end', ...conditions() });
}

// Run as a script only: the data-parallel workers and bench/webgpu.bench.ts import this file for `build`.
if (isMainThread && process.argv[1] !== undefined && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1])) await main();
