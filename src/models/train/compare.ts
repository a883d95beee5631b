/**
 * One training step of the same network, from the same weights and on the same batch, on two backends (e.g. wasm
 * and webgpu), and how far apart the results are: the check that a backend trains the project's networks right.
 *
 * Errors are relative to the reference backend's scale: for a gradient, max |g_b - g_a| / max |g_a| per
 * parameter. The update is checked apart from the gradients: AdamW's first update is lr g / (|g| + eps) per
 * element, which amplifies the rounding of gradients near zero (up to 2 lr, a sign flip), so the weights of two
 * independent steps differ by more than float32 rounding wherever a gradient is close to zero. `optimizerError`
 * therefore applies the reference backend's gradients on the second backend too and compares the weights (only the
 * optimiser's own arithmetic differs); `weightDiffLr` is the largest difference of the independent steps' weights,
 * in units of lr (at most 2 by AdamW's bound).
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendName } from '../backend/select.js';
import { computeGradients } from './gradients.js';
import { Trainer } from './trainer.js';
import type { NamedParameters } from './optim.js';
import type { LossFunction } from './types.js';

/** A network to train: fresh parameters, its loss, and a batch (both called once per backend). */
export interface ComparedModel<B> {
  params: NamedParameters;
  loss: LossFunction<B>;
  batch: () => B;
}

export interface StepComparison {
  backends: [BackendName, BackendName];
  loss: [number, number];
  /** |loss_b - loss_a| / |loss_a|. */
  lossError: number;
  /** Largest gradient error relative to the parameter's largest reference gradient, and where. */
  gradError: number;
  gradErrorAt: string;
  /**
   * Largest difference of the weights updated from the same (reference) gradients on the two backends, relative to
   * the parameter's largest weight.
   */
  optimizerError: number;
  /** Largest updated-weight difference anywhere, in units of the learning rate. */
  weightDiffLr: number;
  /** How far the step moved the weights on the reference backend (largest change relative to max |w|). */
  moved: number;
  /** Wall time of the step on each backend, milliseconds (includes first-use compilation). */
  ms: [number, number];
}

interface OneStep {
  loss: number;
  ms: number;
  start: Map<string, Float32Array>;
  grads: Map<string, Float32Array>;
  weights: Map<string, Float32Array>;
}

async function read(params: NamedParameters): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of params) out.set(name, (await v.data()) as Float32Array);
  return out;
}

/**
 * One step on `backend` from `init` (else the fresh weights); with `given`, the trainer applies those gradients
 * (and loss) instead of computing its own.
 */
async function oneStep<B>(
  backend: BackendName,
  make: () => ComparedModel<B>,
  lr: number,
  init?: Map<string, Float32Array>,
  given?: { loss: number; grads: Map<string, Float32Array> },
): Promise<OneStep> {
  await selectBackend({ prefer: backend });
  const model = make();
  try {
    if (init) for (const [name, v] of model.params) v.assign(tf.tensor(init.get(name)!, v.shape));
    const start = await read(model.params);
    const variables = [...model.params.values()].filter((v) => v.trainable);
    const nameOf = new Map([...model.params].map(([name, v]) => [v.name, name]));
    const grads = new Map<string, Float32Array>();
    const trainer = new Trainer<B>({
      params: model.params,
      loss: model.loss,
      optimizer: { lr, weightDecay: 0.01 },
      clipNorm: 1,
      gradients: async (batch, context) => {
        if (given) {
          const shapes = new Map([...model.params].map(([name, v]) => [name, v.shape]));
          const grads = new Map([...given.grads].map(([name, g]) => [name, tf.tensor(g, shapes.get(name))]));
          return { loss: given.loss, grads };
        }
        const computed = await computeGradients(model.loss, batch, context, variables, nameOf);
        for (const [name, g] of computed.grads) grads.set(name, (await g.data()) as Float32Array);
        return computed;
      },
    });
    const report = await trainer.runStep(model.batch());
    trainer.dispose();
    return { loss: report.loss, ms: report.ms, start, grads, weights: await read(model.params) };
  } finally {
    tf.dispose([...model.params.values()]);
  }
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * Runs one AdamW step (weight decay 0.01, gradient clipping at 1) of `make()` on `backends[0]`, then from the same
 * initial weights on `backends[1]` (once with the first backend's gradients, once with its own), and compares.
 * Leaves `backends[1]` selected.
 */
export async function compareTrainingStep<B>(
  make: () => ComparedModel<B>,
  options: { backends: [BackendName, BackendName]; lr?: number },
): Promise<StepComparison> {
  const lr = options.lr ?? 1e-3;
  const a = await oneStep(options.backends[0], make, lr);
  const applied = await oneStep(options.backends[1], make, lr, a.start, { loss: a.loss, grads: a.grads });
  const b = await oneStep(options.backends[1], make, lr, a.start);
  let gradError = 0;
  let gradErrorAt = '';
  let optimizerError = 0;
  let weightDiffLr = 0;
  let moved = 0;
  for (const [name, ga] of a.grads) {
    const gb = b.grads.get(name);
    if (!gb || gb.length !== ga.length) throw new Error(`compareTrainingStep: no matching gradient for ${name} on ${options.backends[1]}`);
    const gmax = Math.max(maxAbs(ga), 1e-30);
    const wa = a.weights.get(name)!;
    const wb = b.weights.get(name)!;
    const wapplied = applied.weights.get(name)!;
    const w0 = a.start.get(name)!;
    const wmax = Math.max(maxAbs(wa), 1e-6);
    for (let i = 0; i < ga.length; i++) {
      const ge = Math.abs(gb[i] - ga[i]) / gmax;
      if (ge > gradError) [gradError, gradErrorAt] = [ge, name];
      const d = Math.abs(wb[i] - wa[i]);
      weightDiffLr = Math.max(weightDiffLr, d / lr);
      optimizerError = Math.max(optimizerError, Math.abs(wapplied[i] - wa[i]) / wmax);
      moved = Math.max(moved, Math.abs(wa[i] - w0[i]) / wmax);
    }
  }
  return {
    backends: options.backends,
    loss: [a.loss, b.loss],
    lossError: Math.abs(b.loss - a.loss) / Math.max(Math.abs(a.loss), 1e-30),
    gradError,
    gradErrorAt,
    optimizerError,
    weightDiffLr,
    moved,
    ms: [a.ms, b.ms],
  };
}
