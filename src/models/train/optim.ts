/**
 * Optimisation pieces over named parameters (`Map<name, tf.Variable>`, the networks' `ParameterMap`): AdamW with
 * decoupled weight decay, a cosine learning-rate schedule with linear warm-up, global gradient-norm clipping and an
 * exponential moving average of the weights. The state is held in named tensors, or, once the trainer updates
 * flat buffers (data-parallel training: `applyFlat`, fused.ts), in flat float32 buffers in the parameters' layout;
 * either way a checkpoint reads and restores it by name (`momentData` / `restoreMoments`, `shadowData` /
 * `restoreShadow`).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedAdamw, fusedEma } from './fused.js';
import { slotOf, type ParameterLayout } from './layout.js';
import type { NamedData, NamedParameters, NamedTensors, Optimizer } from './types.js';

export type { NamedData, NamedParameters, NamedTensors } from './types.js';

/** Flat gradients as `AdamW.applyFlat` takes them (see `FlatGradients`). */
export interface FlatUpdate {
  layout: ParameterLayout;
  /** The gradient, flat. */
  values: Float32Array;
  /** Which parameters (layout order) received a gradient. */
  present: readonly boolean[];
  /** The weights, flat: updated in place. */
  weights: Float32Array;
}

function sameLayout(a: ParameterLayout, b: ParameterLayout): boolean {
  return a.total === b.total && a.names.length === b.names.length && a.names.every((n, i) => n === b.names[i] && a.offsets[i] === b.offsets[i]);
}

/** Copies each named tensor's values into its slot of a flat buffer, in `layout`; names not in it are refused. */
function tensorsToFlat(what: string, tensors: Map<string, tf.Tensor>, layout: ParameterLayout, flat: Float32Array, has?: boolean[]): void {
  for (const [name, t] of tensors) {
    const i = layout.names.indexOf(name);
    if (i < 0) throw new Error(`${what}: state for "${name}", which is not among the flat parameters`);
    slotOf(layout, flat, i).set(t.dataSync() as Float32Array);
    if (has) has[i] = true;
  }
}

/** Reads named tensors out (an optimiser's `stateData`, an EMA's shadow); the keys are kept. */
export async function readState(tensors: Map<string, tf.Tensor>): Promise<Map<string, NamedData>> {
  const out = new Map<string, NamedData>();
  for (const [key, x] of tensors) out.set(key, { shape: x.shape.slice(), data: (await x.data()) as Float32Array });
  return out;
}

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
 * Its state tensors are `exp_avg/<name>` and `exp_avg_sq/<name>`.
 */
export class AdamW implements Optimizer {
  readonly kind = 'adamw' as const;
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decays: (name: string) => boolean;
  /** Number of updates applied so far. */
  t = 0;
  /** First moments (exp_avg), by parameter name (tensor mode; empty once the moments are flat, see `applyFlat`). */
  readonly m = new Map<string, tf.Variable>();
  /** Second moments (exp_avg_sq), by parameter name (tensor mode; empty once the moments are flat). */
  readonly v = new Map<string, tf.Variable>();
  /** The moments in flat mode: buffers in the parameters' layout, and which parameters have moments yet. */
  private flat?: { layout: ParameterLayout; m: Float32Array; v: Float32Array; has: boolean[] };

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
    if (this.flat) throw new Error('AdamW.apply: the moments are flat (this optimiser updates flat buffers, see applyFlat)');
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

  /** Whether the moments are held flat (after the first `applyFlat`). */
  get isFlat(): boolean {
    return this.flat !== undefined;
  }

  /**
   * The same update as `apply`, fused, over flat buffers (fused.ts: one pass per parameter, native when the addon
   * is loaded, the same bits as `apply`): `update.weights` is updated in place, and the EMA's flat shadow too when
   * `ema` is given (as `ema.update` after `apply` would). The first call moves the moments (and the EMA's shadow)
   * into flat buffers in `update.layout`; the optimiser then stays flat.
   */
  applyFlat(params: NamedParameters, update: FlatUpdate, lr = this.lr, scale = 1, ema?: Ema): void {
    const { layout } = update;
    if (update.weights.length !== layout.total || update.values.length !== layout.total || update.present.length !== layout.names.length) {
      throw new Error(`AdamW.applyFlat: buffers of ${update.weights.length} and ${update.values.length} floats and ${update.present.length} flags for a layout of ${layout.total} floats in ${layout.names.length} parameters`);
    }
    const state = this.flatState(layout);
    const shadow = ema?.flatShadow(params, layout);
    this.t += 1;
    const [beta1, beta2] = this.betas;
    for (let i = 0; i < layout.names.length; i++) {
      const name = layout.names[i];
      const w = slotOf(layout, update.weights, i);
      const e = shadow ? slotOf(layout, shadow, i) : null;
      if (!update.present[i]) {
        if (e && ema) fusedEma(e, w, ema.decay);
        continue;
      }
      state.has[i] = true;
      const weightDecay = this.weightDecay > 0 && this.decays(name) ? this.weightDecay : 0;
      fusedAdamw(w, slotOf(layout, state.m, i), slotOf(layout, state.v, i), slotOf(layout, update.values, i), e, {
        lr, beta1, beta2, eps: this.eps, t: this.t, weightDecay, scale, emaDecay: ema?.decay,
      });
    }
  }

  /** The flat moments in `layout`, created (from the tensor moments, if any) on first use. */
  private flatState(layout: ParameterLayout): { layout: ParameterLayout; m: Float32Array; v: Float32Array; has: boolean[] } {
    if (this.flat) {
      if (!sameLayout(this.flat.layout, layout)) throw new Error('AdamW.applyFlat: the parameter layout changed between steps');
      return this.flat;
    }
    const flat = { layout, m: new Float32Array(layout.total), v: new Float32Array(layout.total), has: layout.names.map(() => false) };
    tensorsToFlat('AdamW.applyFlat', this.m, layout, flat.m, flat.has);
    tensorsToFlat('AdamW.applyFlat', this.v, layout, flat.v);
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
    this.flat = flat;
    return flat;
  }

  /** The moments by parameter name (only parameters that have had a gradient), read out: what checkpoints store. */
  async momentData(): Promise<Map<string, { m: NamedData; v: NamedData }>> {
    const out = new Map<string, { m: NamedData; v: NamedData }>();
    if (this.flat) {
      const { layout, m, v, has } = this.flat;
      layout.names.forEach((name, i) => {
        if (!has[i]) return;
        const shape = layout.shapes[i].slice();
        out.set(name, { m: { shape, data: slotOf(layout, m, i).slice() }, v: { shape, data: slotOf(layout, v, i).slice() } });
      });
      return out;
    }
    for (const [name, m] of this.m) {
      const v = this.v.get(name);
      if (!v) throw new Error(`AdamW: parameter "${name}" has a first moment and no second`);
      out.set(name, { m: { shape: m.shape.slice(), data: (await m.data()) as Float32Array }, v: { shape: v.shape.slice(), data: (await v.data()) as Float32Array } });
    }
    return out;
  }

  /** Replaces the moments (and the update count) with `moments` (by parameter name, as `momentData` gives them). */
  restoreMoments(moments: Map<string, { m: Float32Array; v: Float32Array; shape: readonly number[] }>, t: number): void {
    if (this.flat) {
      const { layout, m, v, has } = this.flat;
      m.fill(0);
      v.fill(0);
      has.fill(false);
      for (const [name, entry] of moments) {
        const i = layout.names.indexOf(name);
        if (i < 0) throw new Error(`AdamW.restoreMoments: "${name}" is not among the flat parameters`);
        slotOf(layout, m, i).set(entry.m);
        slotOf(layout, v, i).set(entry.v);
        has[i] = true;
      }
    } else {
      for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
      this.m.clear();
      this.v.clear();
      for (const [name, entry] of moments) {
        this.m.set(name, tf.variable(tf.tensor(entry.m, [...entry.shape], 'float32'), false));
        this.v.set(name, tf.variable(tf.tensor(entry.v, [...entry.shape], 'float32'), false));
      }
    }
    this.t = t;
  }

  hyperParameters(): Record<string, unknown> {
    return { name: 'AdamW', lr: this.lr, betas: this.betas, eps: this.eps, weight_decay: this.weightDecay };
  }

  /** The moments by `exp_avg/<name>` and `exp_avg_sq/<name>` (flat or tensor mode), read out. */
  async stateData(): Promise<Map<string, NamedData>> {
    const out = new Map<string, NamedData>();
    for (const [name, { m, v }] of await this.momentData()) {
      out.set(`exp_avg/${name}`, m);
      out.set(`exp_avg_sq/${name}`, v);
    }
    return out;
  }

  stateShapes(shape: readonly number[]): Map<string, number[]> {
    return new Map([['exp_avg', shape.slice()], ['exp_avg_sq', shape.slice()]]);
  }

  setState(state: Map<string, Map<string, tf.Tensor>>, t: number): void {
    const moments = new Map<string, { m: Float32Array; v: Float32Array; shape: readonly number[] }>();
    for (const [name, kinds] of state) {
      const m = kinds.get('exp_avg')!;
      moments.set(name, { m: m.dataSync() as Float32Array, v: kinds.get('exp_avg_sq')!.dataSync() as Float32Array, shape: m.shape });
      for (const x of kinds.values()) x.dispose();
    }
    this.restoreMoments(moments, t);
  }

  /** Frees the moments. */
  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
    this.flat = undefined;
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
  /** The averaged weights by name (tensor mode; empty once the shadow is flat, see `AdamW.applyFlat`). */
  readonly shadow = new Map<string, tf.Variable>();
  private flat?: { layout: ParameterLayout; data: Float32Array };

  constructor(params: NamedParameters, decay = 0.999) {
    if (!(decay >= 0 && decay < 1)) throw new Error(`Ema: decay must lie in [0, 1), got ${decay}`);
    this.decay = decay;
    for (const [name, p] of params) this.shadow.set(name, tf.variable(p.clone(), false));
  }

  update(params: NamedParameters): void {
    if (this.flat) throw new Error('Ema.update: the shadow is flat (the optimiser updates it, see AdamW.applyFlat)');
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
    if (this.flat) {
      const { layout, data } = this.flat;
      for (const [name, p] of params) {
        const i = layout.names.indexOf(name);
        if (i < 0) throw new Error(`Ema.copyTo: no shadow for parameter "${name}"`);
        tf.tidy(() => p.assign(tf.tensor(slotOf(layout, data, i).slice(), layout.shapes[i], 'float32')));
      }
      return;
    }
    for (const [name, p] of params) {
      const s = this.shadow.get(name);
      if (!s) throw new Error(`Ema.copyTo: no shadow for parameter "${name}"`);
      p.assign(s);
    }
  }

  /**
   * The shadow as one flat buffer in `layout` (for `AdamW.applyFlat`): the first call moves it there from the
   * tensors, which are then freed. `params` are the parameters the layout describes.
   */
  flatShadow(params: NamedParameters, layout: ParameterLayout): Float32Array {
    if (this.flat) {
      if (!sameLayout(this.flat.layout, layout)) throw new Error('Ema: the parameter layout changed between steps');
      return this.flat.data;
    }
    const missing = layout.names.filter((n) => !this.shadow.has(n));
    if (missing.length > 0 || this.shadow.size !== params.size) {
      throw new Error(`Ema: no shadow for parameters ${missing.join(', ')} (the parameter set changed)`);
    }
    const data = new Float32Array(layout.total);
    tensorsToFlat('Ema', this.shadow, layout, data);
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
    this.flat = { layout, data };
    return data;
  }

  /** The averaged weights by parameter name, read out (what checkpoints store). */
  async shadowData(): Promise<Map<string, NamedData>> {
    if (this.flat) {
      const { layout, data } = this.flat;
      return new Map(layout.names.map((name, i) => [name, { shape: layout.shapes[i].slice(), data: slotOf(layout, data, i).slice() }]));
    }
    return readState(this.shadow);
  }

  /** Overwrites the averaged weights of the parameters named in `values`. */
  restoreShadow(values: Map<string, Float32Array>): void {
    for (const [name, data] of values) {
      if (this.flat) {
        const i = this.flat.layout.names.indexOf(name);
        if (i < 0) throw new Error(`Ema.restoreShadow: no shadow for parameter "${name}"`);
        slotOf(this.flat.layout, this.flat.data, i).set(data);
      } else {
        const s = this.shadow.get(name);
        if (!s) throw new Error(`Ema.restoreShadow: no shadow for parameter "${name}"`);
        tf.tidy(() => s.assign(tf.tensor(data, s.shape, 'float32')));
      }
    }
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
    this.flat = undefined;
  }
}
