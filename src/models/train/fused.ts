/**
 * The optimiser step over flat float32 buffers, fused: one pass per parameter does what `AdamW.apply` then
 * `Ema.update` do with a dozen tfjs ops each (optim.ts); one pass per gradient source sums the data-parallel
 * workers' gradients, and one more gives the sum of squares the clipping needs. Used by the trainer when the
 * gradients come back flat (`ParallelGradients`), so that the serial part of a data-parallel step is a few memory
 * passes.
 *
 * Per element, with s the gradient factor (the clip factor, 1 when none), t the update count, lr the rate,
 * b1, b2 the betas, wd the decoupled weight decay (0 for parameters that do not decay) and d the EMA decay:
 *
 *   g' = s g
 *   m <- b1 m + (1 - b1) g'
 *   v <- b2 v + (1 - b2) g'^2
 *   w <- w (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps),     c1 = 1 - b1^t, c2 = 1 - b2^t
 *   e <- d e + (1 - d) w
 *
 * Every scalar is rounded to float32 (as tfjs rounds the numbers an op takes) and every operation is a float32
 * operation in the order of the tensor ops, so the fused step gives the tensor path's bits: in C++ (the native
 * addon, src/models/backend/native/optim.cc, built without fused multiply-adds) and in the JS twin here, which
 * runs when the addon is absent or `WELLSPRING_NATIVE=off` (`Math.fround` after each double operation rounds
 * exactly like the float32 operation: a double holds more than twice float32's precision).
 *
 * The gradient sum over sources j with weights w_j (shard size / batch size) is out <- out + w_j g_j, in double
 * rounded to float32 after each source (as the averaging loop it replaces did). The squared global norm is
 * `globalNorm`'s (optim.ts) to the bit: per parameter, float32 squares added one by one in float32 (tfjs' sum),
 * then those sums added in float32 in layout order.
 */
import { nativeAddon } from '../backend/native/addon.js';
import { slotOf, type ParameterLayout } from './layout.js';

/** The hyper-parameters of one AdamW update, as the numbers the tensor path hands to tfjs. */
export interface AdamwStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Update count after this update (drives the bias corrections). */
  t: number;
  /** Decoupled weight decay of this parameter (0: none). */
  weightDecay: number;
  /** Gradient factor (clipping); 1: none. */
  scale: number;
  /** EMA decay, when an EMA is kept. */
  emaDecay?: number;
}

/** The 14 constants of the native `adamw` export, in its order (doubles; rounded to float32 there and here). */
export function adamwConstants(s: AdamwStep): Float64Array {
  const decays = s.weightDecay > 0;
  const d = s.emaDecay ?? 0;
  return Float64Array.from([
    s.scale, s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, 1 - s.beta1 ** s.t, 1 - s.beta2 ** s.t, s.eps, s.lr,
    decays ? 1 - s.lr * s.weightDecay : 1, decays ? 1 : 0, s.scale === 1 ? 0 : 1, d, 1 - d,
  ]);
}

function checkLengths(what: string, n: number, arrays: Record<string, Float32Array | null>): void {
  for (const [name, a] of Object.entries(arrays)) {
    if (a && a.length !== n) throw new RangeError(`${what}: ${name} has ${a.length} elements, expected ${n}`);
  }
}

/** The JS twin of the native `adamw` (same float32 operations, same order). */
function adamwJs(w: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, ema: Float32Array | null, k: Float64Array): void {
  const f = Math.fround;
  const [scale, b1, ob1, b2, ob2, c1, c2, eps, lr, decay] = Array.from(k.subarray(0, 10), f);
  const decays = k[10] !== 0;
  const scaled = k[11] !== 0;
  const [d, od] = [f(k[12]), f(k[13])];
  for (let i = 0; i < w.length; i++) {
    const gi = scaled ? f(g[i] * scale) : g[i];
    const mi = f(f(m[i] * b1) + f(gi * ob1));
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * ob2));
    m[i] = mi;
    v[i] = vi;
    const step = f(f(f(mi / c1) / f(f(Math.sqrt(f(vi / c2))) + eps)) * lr);
    const wi = f((decays ? f(w[i] * decay) : w[i]) - step);
    w[i] = wi;
    if (ema) ema[i] = f(f(ema[i] * d) + f(wi * od));
  }
}

/**
 * One AdamW update of one parameter in place (w, m, v; ema too when given), from its gradient g: the native pass
 * when the addon is loaded, the JS twin otherwise (same bits).
 */
export function fusedAdamw(w: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, ema: Float32Array | null, step: AdamwStep): void {
  checkLengths('fusedAdamw', w.length, { m, v, g, ema });
  const k = adamwConstants(step);
  const addon = nativeAddon();
  if (addon) addon.adamw(w, m, v, g, ema, k);
  else adamwJs(w, m, v, g, ema, k);
}

/** ema <- decay ema + (1 - decay) w, in place (native or JS, same bits). */
export function fusedEma(ema: Float32Array, w: Float32Array, decay: number): void {
  checkLengths('fusedEma', ema.length, { w });
  const addon = nativeAddon();
  if (addon) return addon.emaUpdate(ema, w, decay, 1 - decay);
  const f = Math.fround;
  const [d, od] = [f(decay), f(1 - decay)];
  for (let i = 0; i < ema.length; i++) ema[i] = f(f(ema[i] * d) + f(w[i] * od));
}

/** out <- weight src (`first`) or out + weight src, in double rounded to float32 (native or JS, same bits). */
export function accumulateGradient(out: Float32Array, src: Float32Array, weight: number, first: boolean): void {
  checkLengths('accumulateGradient', out.length, { src });
  const addon = nativeAddon();
  if (addon) return addon.accumulate(out, src, weight, first);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(first ? 0 + weight * src[i] : out[i] + weight * src[i]);
}

/**
 * The squared global norm of flat gradients, as `globalNorm` computes it from the tensors (float32, in order:
 * see the header), so the clip factor is the tensor path's.
 */
export function squaredNorm(layout: ParameterLayout, values: Float32Array): number {
  checkLengths('squaredNorm', layout.total, { values });
  const addon = nativeAddon();
  const f = Math.fround;
  let total = 0;
  for (let i = 0; i < layout.names.length; i++) {
    const x = slotOf(layout, values, i);
    let sum = 0;
    if (addon) sum = addon.sumSquares(x);
    else for (let k = 0; k < x.length; k++) sum = f(sum + f(x[k] * x[k]));
    total = f(total + sum);
  }
  return total;
}
