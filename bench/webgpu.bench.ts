/**
 * WebGPU benchmark: the training step of the compute benchmark's networks (`dcae-small` batch 16, `vit-small`
 * batch 32; bench/compute.bench.ts's `build`) on the webgpu backend, in one process (no workers, no
 * micro-batches), naming the adapter. Where no adapter can be had it prints one line saying why and exits 0. On
 * a software adapter (lavapipe, SwiftShader) it runs batch 2: a correctness run, not a speed figure.
 *
 * `--check` also runs one step of each network on wasm and on webgpu from the same weights and prints how far
 * apart loss, gradients and updated weights are (`compareTrainingStep`); a mismatch sets the exit code.
 * `--torch-device cuda` runs the same networks in PyTorch on CUDA (bench/torch_train.py) and prints the ratio
 * PyTorch-time / wellspring-time of the webgpu step.
 *
 * `node dist/bench/webgpu.bench.js [--steps N] [--which dcae-small,vit-small] [--check] [--torch-device cpu|cuda]`
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/models/backend/select.js';
import { Trainer, compareTrainingStep } from '../src/models/train/index.js';
import { Rng } from '../src/streams/random.js';
import { build, makeBatch, type Batch } from './compute.bench.js';

type Model = 'dcae-small' | 'vit-small';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '5' },
    which: { type: 'string', default: 'dcae-small,vit-small' },
    check: { type: 'boolean', default: false },
    'torch-device': { type: 'string', default: 'cpu' },
  },
});
const steps = Number(values.steps);
const which = values.which.split(',').filter(Boolean) as Model[];
const torchDevice = values['torch-device'];
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'webgpu', ...line }));

/** Median wall and process-CPU milliseconds of `steps` training steps after one warm-up step. */
async function timeSteps(trainer: Trainer<Batch>, batch: () => Batch): Promise<{ ms: number; cpuMs: number }> {
  const step = async () => {
    const b = batch();
    try {
      await trainer.runStep(b);
    } finally {
      tf.dispose(b as tf.Tensor | tf.Tensor[]);
    }
  };
  await step();
  const walls: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step();
    walls.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  walls.sort((a, b) => a - b);
  return { ms: walls[Math.floor(walls.length / 2)]!, cpuMs: (cpu.user + cpu.system) / 1000 / steps };
}

// --check compares against wasm: start it first (scripts/gpu-bundle.sh also traces this run for the files it opens).
if (values.check) await selectBackend({ prefer: 'wasm' });
const gpu = await selectBackend({ prefer: 'webgpu' }).catch((err: Error) => err);
if (gpu instanceof Error) {
  emit({ figure: 'train-step webgpu', skipped: gpu.message });
} else {
  const adapter = gpu.adapter!;
  const adapterName = `${adapter.vendor} ${adapter.architecture} "${adapter.description || adapter.device}"`;
  const software = adapter.software;
  const here = dirname(fileURLToPath(import.meta.url));
  const script = [join(here, 'torch_train.py'), join(here, '..', '..', 'bench', 'torch_train.py')].find(existsSync);
  for (const model of which) {
    await selectBackend({ prefer: 'webgpu' });
    const { params, loss } = build({ model });
    const rng = new Rng(1);
    const trainer = new Trainer<Batch>({ params, loss, optimizer: { lr: 1e-4, weightDecay: 0.01 }, clipNorm: 1 });
    // A software adapter (a CPU) takes minutes for a full batch: there the run checks that the step works, on 2.
    const n = software ? 2 : undefined;
    const { ms, cpuMs } = await timeSteps(trainer, () => makeBatch(model, rng, n));
    emit({
      figure: `train-step ${model}`,
      value: Math.round(ms),
      unit: 'ms',
      batch: n ?? (model === 'dcae-small' ? 16 : 32),
      backend: 'webgpu',
      adapter: adapterName,
      software,
      steps,
      processCpuMsPerStep: Math.round(cpuMs),
      ...(software ? { note: 'software adapter (lavapipe or the like), batch 2: a correctness run, not a speed figure' } : {}),
    });
    trainer.dispose();
    for (const v of params.values()) v.dispose();
    if (values.check) {
      // Dropout off: the wasm backend draws its masks in its own kernel, so masks differ between backends.
      const size = model === 'dcae-small' ? 4 : 8;
      const c = await compareTrainingStep(() => {
        const net = build({ model, dropout: 0 });
        return { params: net.params, loss: net.loss, batch: () => makeBatch(model, new Rng(5), size) };
      }, { backends: ['wasm', 'webgpu'] });
      const ok = c.lossError < 1e-5 && c.gradError < 1e-4 && c.optimizerError < 2e-6 && c.weightDiffLr <= 2.001;
      emit({
        figure: `webgpu-vs-wasm ${model}`,
        value: ok ? 'match' : 'MISMATCH',
        batch: size,
        adapter: adapterName,
        loss: c.loss,
        lossError: Number(c.lossError.toExponential(2)),
        gradError: Number(c.gradError.toExponential(2)),
        gradErrorAt: c.gradErrorAt,
        optimizerError: Number(c.optimizerError.toExponential(2)),
        weightDiffLr: Number(c.weightDiffLr.toExponential(2)),
        tolerances: 'loss 1e-5, gradients 1e-4, weights updated from the same gradients 2e-6, independent steps 2 lr (AdamW bound)',
      });
      if (!ok) process.exitCode = 1;
    }
    if (torchDevice !== 'cpu' && !software) {
      const python = ['python3', '/usr/bin/python3'].find((exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
      if (!script || !python) {
        emit({ figure: `torch-train-step ${model}`, skipped: !script ? 'bench/torch_train.py not found' : 'no python3 with torch' });
        continue;
      }
      const run = spawnSync(python, [script, '--steps', String(steps), '--which', model, '--device', torchDevice], { encoding: 'utf8' });
      if (run.status !== 0) {
        emit({ figure: `torch-train-step ${model}`, skipped: `torch_train.py failed: ${run.stderr.trim().split('\n').pop()}` });
        continue;
      }
      for (const line of run.stdout.trim().split('\n')) {
        const fig = JSON.parse(line) as { value: number; gpu?: string };
        console.log(line);
        emit({
          figure: `ratio torch/wellspring ${model} (torch on ${torchDevice}, wellspring on webgpu)`,
          value: Number((fig.value / ms).toFixed(3)),
          unit: 'x',
          torchMs: fig.value,
          wellspringMs: Math.round(ms),
          adapter: adapterName,
          torchGpu: fig.gpu,
        });
      }
    }
  }
}
