/**
 * Compute benchmark: time of one training step (forward, backward, gradient clipping, AdamW update) of the
 * `dcae-small` autoencoder (batch 16, 64x64x5 inputs) and the `vit-small` denoiser (batch 32, 5 frames of 8x8x16
 * latent tokens) on the wasm backend, and in the same run the same architectures in PyTorch on the CPU
 * (bench/torch_train.py, 2 threads) when python3 with torch is present. Prints the ratio PyTorch-time /
 * wellspring-time (higher is better for wellspring; 1.0 = parity), in wall time and in CPU time per step. Which
 * BLAS PyTorch loaded matters a lot for the ViT (see bench/torch_train.py); the ratio lines name it.
 *
 * `node dist/bench/compute.bench.js [--steps N] [--which dcae-small,vit-small] [--workers 1,2] [--no-profile]
 *   [--no-baseline]`
 *   --workers 1,2 (default) times single-thread and data-parallel training over 2 worker threads (each its own
 *   wasm instance, see src/models/train/parallel.ts); the ratio uses the best.
 *   Unless --no-baseline, it also times dcae-small on one thread with the Winograd convolutions off
 *   (`WELLSPRING_WINOGRAD=off`: tfjs' XNNPACK convolutions plus the project's gradient kernels), to show what the
 *   Winograd kernels bring.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { setWinogradMode, winogradMode } from '../src/models/backend/wasm/index.js';
import { createDcae, createVit, presets } from '../src/models/nn/index.js';
import { ParallelGradients, Trainer, type ParallelModel } from '../src/models/train/index.js';
import { Rng } from '../src/streams/random.js';
import { isMainThread } from 'node:worker_threads';

type Batch = tf.Tensor | Record<string, tf.Tensor>;

/**
 * Model factory shared by the main thread and the data-parallel workers (which import this file): the preset
 * network and its training loss (MSE of the reconstruction / of the denoised window).
 */
export function build(options: { model: 'dcae-small' | 'vit-small' }): ParallelModel<Batch> {
  if (options.model === 'dcae-small') {
    const net = createDcae(presets['dcae-small']());
    return {
      params: net.params,
      loss: (x, { random }) => {
        const { y } = net.apply(x as tf.Tensor4D, { training: true, random });
        return y.sub(x as tf.Tensor).square().mean() as tf.Scalar;
      },
    };
  }
  const net = createVit(presets['vit-small']());
  return {
    params: net.params,
    loss: (b, { random }) => {
      const { x, mask, noise } = b as Record<string, tf.Tensor>;
      const y = net.apply(x.mul(mask), { mask, noise }, { training: true, random });
      return y.sub(x).square().mean() as tf.Scalar;
    },
  };
}

function makeBatch(model: 'dcae-small' | 'vit-small', rng: Rng): Batch {
  if (model === 'dcae-small') return tf.tensor4d(rng.normalArray(16 * 64 * 64 * 5), [16, 64, 64, 5]);
  const shape = [32, 5, 8, 8, 16];
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    x: tf.tensor(rng.normalArray(size), shape),
    mask: tf.tensor(rng.uniformArray(size).map((u) => (u < 0.3 ? 1 : 0)), shape),
    noise: tf.tensor(rng.normalArray(32)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '3' },
      which: { type: 'string', default: 'dcae-small,vit-small' },
      'no-profile': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1,2' },
      'no-baseline': { type: 'boolean', default: false },
    },
  });
  const steps = Number(values.steps);
  const workerCounts = values.workers.split(',').map(Number);
  const which = values.which.split(',');
  const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'compute', ...line }));

  const info = await selectBackend({ prefer: 'wasm' });
  const machine = 'shared 2-core machine under load from other jobs: figures noisy';

  /** Median wall time of `steps` training steps after one warm-up step; also the top kernels of one profiled step. */
  async function timeTrainer<B>(trainer: Trainer<B>, makeBatch: (i: number) => B, profile: boolean): Promise<{ ms: number; cpuMs: number; kernels: Record<string, number> }> {
    await trainer.runStep(makeBatch(0));
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 1; i <= steps; i++) times.push((await trainer.runStep(makeBatch(i))).ms);
    const cpu = process.cpuUsage(cpu0);
    times.sort((a, b) => a - b);
    const kernels: Record<string, number> = {};
    if (profile) {
      const batch = makeBatch(steps + 1);
      const prof = await tf.profile(async () => {
        await trainer.runStep(batch);
      });
      for (const k of prof.kernels) kernels[k.name] = (kernels[k.name] ?? 0) + (k.kernelTimeMs as number);
    }
    const top = Object.entries(kernels)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([k, v]) => [k, Math.round(v)] as const);
    return { ms: times[Math.floor(times.length / 2)], cpuMs: (cpu.user + cpu.system) / 1000 / steps, kernels: Object.fromEntries(top) };
  }


  // PyTorch reference, run with the first python3 that has torch (Debian's python3-torch lives in /usr/bin), right
  // after our runs of the same model so both see similar machine load.
  const here = dirname(fileURLToPath(import.meta.url));
  // Compiled: dist/bench/compute.bench.js -> bench/torch_train.py; from source (tsx): bench/compute.bench.ts.
  const script = [join(here, '../../bench/torch_train.py'), join(here, 'torch_train.py')].find(existsSync);
  const python = ['python3', '/usr/bin/python3'].find(
    (exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
  );
  function torchFigures(model: string): void {
    if (!script) return emit({ figure: `torch-train-step ${model}`, skipped: `bench/torch_train.py not found from ${here}` });
    if (!python) return emit({ figure: `torch-train-step ${model}`, skipped: 'no python3 with torch (apt-get install python3-torch)' });
    const run = spawnSync(python, [script, '--threads', '2', '--steps', String(steps), '--which', model], { encoding: 'utf8' });
    if (run.status !== 0) {
      return emit({ figure: `torch-train-step ${model}`, skipped: `torch_train.py failed: ${run.stderr.trim().split('\n').pop()}` });
    }
    for (const line of run.stdout.trim().split('\n')) {
      const fig = JSON.parse(line) as { figure: string; value: number; processCpuMsPerStep: number; blas: string };
      console.log(line);
      emit({
        figure: `ratio torch/wellspring ${model}`,
        value: Number((fig.value / ours[model]).toFixed(3)),
        unit: 'x',
        target: model === 'dcae-small' ? 0.25 : undefined,
        torchMs: fig.value,
        wellspringMs: Math.round(ours[model]),
        torchBlas: fig.blas,
        note: 'wall time; wellspring = best over the worker counts run',
      });
      emit({
        figure: `cpu-time ratio torch/wellspring ${model}`,
        value: Number((fig.processCpuMsPerStep / oursCpu[model]).toFixed(3)),
        unit: 'x',
        torchCpuMs: fig.processCpuMsPerStep,
        wellspringCpuMs: Math.round(oursCpu[model]),
        note: 'CPU time per step summed over threads: less sensitive to the load of other jobs than wall time',
      });
    }
  }

  const ours: Record<string, number> = {};
  const oursSingle: Record<string, number> = {};
  const oursCpu: Record<string, number> = {};
  // tfjs holds a whole backward pass in memory (vit-small: ~0.45 GB per sample; the wasm heap stops at 4 GB):
  // vit-small accumulates gradients over micro-batches of 4.
  const microBatch: Record<string, number | undefined> = { 'dcae-small': undefined, 'vit-small': 4 };
  for (const model of which as Array<'dcae-small' | 'vit-small'>) {
    for (const workers of workerCounts) {
      const { params, loss } = build({ model });
      const rng = new Rng(1);
      const parallel =
        workers > 1
          ? await ParallelGradients.start({ module: import.meta.url, options: { model }, params, workers, microBatch: microBatch[model] })
          : undefined;
      const trainer = new Trainer<Batch>({
        params,
        loss,
        optimizer: { lr: 1e-4, weightDecay: 0.01 },
        clipNorm: 1,
        gradients: parallel?.compute,
      });
      const { ms, cpuMs, kernels } = await timeTrainer(trainer, () => makeBatch(model, rng), !values['no-profile'] && workers === 1);
      if (workers === 1) oursSingle[model] = ms;
      if (ms < (ours[model] ?? Infinity)) {
        ours[model] = ms;
        oursCpu[model] = cpuMs;
      }
      emit({
        figure: `train-step ${model}`,
        value: Math.round(ms),
        unit: 'ms',
        batch: model === 'dcae-small' ? 16 : 32,
        backend: info.name,
        workers,
        winograd: winogradMode(),
        processCpuMsPerStep: Math.round(cpuMs),
        machine,
        ...(workers === 1 ? { kernelsMs: kernels } : {}),
        ...(parallel
          ? { lastStepMainThreadMs: Object.fromEntries(Object.entries(parallel.lastTimings).map(([k, v]) => [k, Math.round(v)])) }
          : {}),
      });
      await parallel?.close();
      trainer.dispose();
      for (const v of params.values()) v.dispose();
    }
    if (!values['no-baseline'] && model === 'dcae-small') {
      const previous = setWinogradMode('off');
      const { params, loss } = build({ model });
      const rng = new Rng(1);
      const trainer = new Trainer<Batch>({ params, loss, optimizer: { lr: 1e-4, weightDecay: 0.01 }, clipNorm: 1 });
      const { ms, cpuMs } = await timeTrainer(trainer, () => makeBatch(model, rng), false);
      setWinogradMode(previous);
      emit({
        figure: `train-step ${model} without Winograd`,
        value: Math.round(ms),
        unit: 'ms',
        batch: 16,
        backend: info.name,
        workers: 1,
        processCpuMsPerStep: Math.round(cpuMs),
        winograd: 'off',
        winogradSpeedup: oursSingle[model] ? Number((ms / oursSingle[model]).toFixed(2)) : undefined,
        note: 'winogradSpeedup = this step time / the 1-worker step time with Winograd above',
      });
      trainer.dispose();
      for (const v of params.values()) v.dispose();
    }
    torchFigures(model);
  }
}

if (isMainThread) await main();
