/**
 * Optimisation pieces over named parameters (`Map<name, tf.Variable>`, the networks' `ParameterMap`): AdamW with
 * decoupled weight decay, a cosine learning-rate schedule with linear warm-up, global gradient-norm clipping and an
 * exponential moving average of the weights. All state is held in named tensors so a checkpoint can save it.
 */
import * as tf from '@tensorflow/tfjs';

/** Named trainable parameters (same shape as the networks' `ParameterMap`). */
export type NamedParameters = Map<string, tf.Variable>;
/** Named gradients (or any named tensors). */
export type NamedTensors = Map<string, tf.Tensor>;

export interface AdamWOptions {
  /** Base learning rate, used when `apply` is not given one (default 1e-4). */
  lr?: number;
  /** Exponential decay rates of the first and second moments (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the root of the second moment (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay: each step multiplies a parameter by (1 - lr * weightDecay) (default 0). */
  weightDecay?: number;
  /** Which parameters decay (default all); e.g. `(name) => !name.endsWith('.bias')`. */
  decays?: (name: string) => boolean;
}

/**
 * AdamW (Loshchilov & Hutter): Adam moments with bias correction, plus weight decay applied to the parameters
 * directly rather than through the gradient. `t` counts applied updates (it drives the bias correction).
 * Moments are created lazily, one pair per parameter name, the first time that parameter gets a gradient.
 */
export class AdamW {
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decays: (name: string) => boolean;
  /** Number of updates applied so far. */
  t = 0;
  /** First moments (exp_avg), by parameter name. */
  readonly m = new Map<string, tf.Variable>();
  /** Second moments (exp_avg_sq), by parameter name. */
  readonly v = new Map<string, tf.Variable>();

  constructor(options: AdamWOptions = {}) {
    this.lr = options.lr ?? 1e-4;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decays ?? (() => true);
    const [b1, b2] = this.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new Error(`AdamW: betas must lie in [0, 1), got ${this.betas}`);
  }

  /**
   * One update of every parameter that has a gradient (`scale` multiplies the gradients first, e.g. the clipping
   * factor). Parameters without a gradient are left untouched, moments included.
   */
  apply(params: NamedParameters, grads: NamedTensors, lr = this.lr, scale = 1): void {
    this.t += 1;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      for (const [name, p] of params) {
        const g0 = grads.get(name);
        if (!g0) continue;
        const g = scale === 1 ? g0 : g0.mul(scale);
        let m = this.m.get(name);
        let v = this.v.get(name);
        if (!m || !v) {
          m = tf.variable(tf.zerosLike(p), false);
          v = tf.variable(tf.zerosLike(p), false);
          this.m.set(name, m);
          this.v.set(name, v);
        }
        m.assign(m.mul(b1).add(g.mul(1 - b1)));
        v.assign(v.mul(b2).add(g.square().mul(1 - b2)));
        const step = m.div(c1).div(v.div(c2).sqrt().add(this.eps)).mul(lr);
        const decayed = this.weightDecay > 0 && this.decays(name) ? p.mul(1 - lr * this.weightDecay) : p;
        p.assign(decayed.sub(step));
      }
    });
  }

  /** Frees the moment tensors. */
  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

export interface CosineScheduleOptions {
  /** Peak learning rate, reached at the end of the warm-up. */
  lr: number;
  /** Steps of linear warm-up from 0 (default 0). */
  warmup?: number;
  /** Total steps: the rate decays from `lr` at the end of the warm-up to `minLr` at this step, then stays. */
  total: number;
  /** Final learning rate (default 0). */
  minLr?: number;
}

/**
 * Learning rate at a (0-based) step: linear warm-up over `warmup` steps ((step + 1) / warmup * lr, so the first
 * step is not wasted at 0), then half a cosine from `lr` down to `minLr` at step `total`.
 */
export function cosineSchedule(options: CosineScheduleOptions): (step: number) => number {
  const { lr, total } = options;
  const warmup = options.warmup ?? 0;
  const minLr = options.minLr ?? 0;
  if (!(total > warmup)) throw new Error(`cosineSchedule: total (${total}) must exceed warmup (${warmup})`);
  return (step) => {
    if (step < warmup) return (lr * (step + 1)) / warmup;
    const progress = Math.min(1, (step - warmup) / (total - warmup));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

/** Global L2 norm of named tensors, as a scalar tensor: sqrt(sum of every element squared). */
export function globalNorm(tensors: Iterable<tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    const squares = [...tensors].map((g) => g.square().sum());
    return (squares.length === 0 ? tf.scalar(0) : tf.addN(squares).sqrt()) as tf.Scalar;
  });
}

/** Factor that brings a gradient of norm `norm` down to `maxNorm` (1 when already below it). */
export function clipFactor(norm: number, maxNorm: number): number {
  return norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/**
 * Exponential moving average of parameters: `shadow <- decay * shadow + (1 - decay) * param` after each update.
 * The shadow starts as a copy of the parameters. Use `copyTo` to evaluate with the averaged weights.
 */
export class Ema {
  readonly decay: number;
  readonly shadow = new Map<string, tf.Variable>();

  constructor(params: NamedParameters, decay = 0.999) {
    if (!(decay >= 0 && decay < 1)) throw new Error(`Ema: decay must lie in [0, 1), got ${decay}`);
    this.decay = decay;
    for (const [name, p] of params) this.shadow.set(name, tf.variable(p.clone(), false));
  }

  update(params: NamedParameters): void {
    tf.tidy(() => {
      for (const [name, p] of params) {
        const s = this.shadow.get(name);
        if (!s) throw new Error(`Ema.update: no shadow for parameter "${name}" (the parameter set changed)`);
        s.assign(s.mul(this.decay).add(p.mul(1 - this.decay)));
      }
    });
  }

  /** Writes the averaged weights into `params` (e.g. a copy of the network used for evaluation). */
  copyTo(params: NamedParameters): void {
    for (const [name, p] of params) {
      const s = this.shadow.get(name);
      if (!s) throw new Error(`Ema.copyTo: no shadow for parameter "${name}"`);
      p.assign(s);
    }
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}
