/**
 * PSGD-Kron (Li 2018, "Preconditioner on matrix Lie group for SGD"; Li 2024, "Stochastic Hessian fittings with
 * Lie groups"): momentum preconditioned by P = Q^T Q with a Kronecker-factored Q = Q_1 (x) ... (x) Q_k, one
 * upper-triangular factor per dimension of the parameter (a diagonal one, a vector, where the dimension is larger
 * than `maxDim`, has size 1, or the parameter is one-dimensional).
 *
 * Q is fitted to the whitening criterion: P should minimise E[h^T P h + v^T P^-1 v] for a random probe
 * v ~ N(0, I) and h the quantity to whiten, whose minimiser satisfies P E[h h^T] P = I (P = E[h h^T]^-1/2: the
 * preconditioned h has identity covariance). With A = Q h (each factor applied to its dimension) and
 * B = Q^-T v, the gradient on the Lie group of factor i is E_i = triu(A_(i) A_(i)^T - B_(i) B_(i)^T), the
 * Gram matrices summing over every other index; one fitting step is
 *
 *   Q_i <- Q_i - precondLr * E_i Q_i / ||A_(i) A_(i)^T + B_(i) B_(i)^T||     (triangular factors)
 *   q_i <- q_i - precondLr * e_i * q_i / max|a_i + b_i|                      (diagonal factors, elementwise)
 *
 * the norm being a lower bound of the spectral norm (one power-iteration step from its largest column), so the
 * step is never too long. h is the momentum plus a tiny multiple of the probe, as in the reference.
 *
 * One update, following the reference (francois-rozet/lola uses heavyball's CachedDelayedPSGDKron, beta 0.9):
 *
 *   m <- EMA_beta(g) (bias-corrected);  u <- clip(P m) with the P of the previous fit ("delayed", P cached);
 *   with probability max(1/frequency, decay^t): refit Q from m (one step, above), and with probability 0.01
 *   rescale the factors to equal max-norms (their product unchanged);  p <- p (1 - lr wd) - lr u,
 *
 * clip being the reference's elementwise trust region (1.5 (0.9 tanh(x/1.5) + 0.1 sign(x) log(1 + |x|/1.5)),
 * clamped to [-2, 2]). Q starts at the identity. The draws (refit or not, the probes) come from
 * `preconditionerSeed(seed, t, ...)`, so a resumed run repeats them. State tensors: `exp_avg/<name>` (m) and
 * `psgd_q<i>/<name>` (factor i of Q, [d, d] or [d]); P is recomputed from Q.
 */
import * as tf from '@tensorflow/tfjs';
import { readState, type NamedData, type NamedParameters, type NamedTensors } from './optim.js';
import type { Optimizer } from './types.js';
import { invertUpperTriangular } from './linalg.js';
import { Rng, preconditionerSeed } from '../../streams/random.js';

export interface PsgdKronOptions {
  /** Base learning rate (default 1e-4). */
  lr?: number;
  /** Momentum decay (default 0.9). */
  beta?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Which parameters decay (default all). */
  decays?: (name: string) => boolean;
  /** The refit probability decays as decay^t down to 1 / frequency (default 64). */
  frequency?: number;
  /** Per-update decay of the refit probability (default 0.999). */
  decay?: number;
  /** Step size of the preconditioner fit (default 0.1). */
  precondLr?: number;
  /** Dimensions larger than this get a diagonal factor (default 4096). */
  maxDim?: number;
  /** Seed of the refit draws and probes (default 0). */
  seed?: number;
}

interface PsgdState {
  m: tf.Variable;
  /** Factor per dimension: [d, d] upper triangular, or [d] diagonal. */
  q: tf.Variable[];
  /** P's factors, Q_i^T Q_i or q_i^2. */
  p: tf.Tensor[];
}

/** Probability that the fitting draws at update t refit (or, below 0.01, also rebalance). */
const BALANCE_PROBABILITY = 0.01;

function triangular(shape: readonly number[], maxDim: number): boolean[] {
  return shape.map((d) => shape.length >= 2 && d > 1 && d <= maxDim);
}

/**
 * Applies one operator per dimension of `x`: a matrix M contracts the dimension's index with M's columns
 * (x_a -> sum_b M[a, b] x_b; with `transpose`, M^T), a vector multiplies elementwise.
 */
function applyFactors(x: tf.Tensor, factors: tf.Tensor[], transpose = false): tf.Tensor {
  const size = x.size;
  let y: tf.Tensor = x;
  for (const f of factors) {
    const d = f.shape[0]!;
    const unfolded = y.reshape([d, size / d]).transpose();
    y = f.rank === 2 ? tf.matMul(unfolded as tf.Tensor2D, f as tf.Tensor2D, false, !transpose) : unfolded.mul(f);
  }
  return y.reshape(x.shape);
}

/** Gram matrix of `x` along dimension i (sum over every other index): [d, d], or its diagonal [d]. */
function gram(x: tf.Tensor, i: number, diagonal: boolean): tf.Tensor {
  const shape = x.shape;
  const perm = [i, ...shape.map((_, j) => j).filter((j) => j !== i)];
  const unfolded = x.transpose(perm).reshape([shape[i]!, x.size / shape[i]!]) as tf.Tensor2D;
  return diagonal ? unfolded.square().sum(1) : tf.matMul(unfolded, unfolded, false, true);
}

/** Lower bound of the spectral norm of a symmetric positive semi-definite matrix (at least 1e-30). */
function normLowerBound(s: tf.Tensor2D): tf.Scalar {
  const maxAbs = s.abs().max().maximum(1e-30);
  const scaled = s.div(maxAbs) as tf.Tensor2D;
  const column = tf.gather(scaled, scaled.square().sum(0).argMax().reshape([1]), 1) as tf.Tensor2D; // [n, 1]
  const x = tf.matMul(column, scaled, true, false); // [1, n]
  const y = tf.matMul(scaled, x.div(x.norm().maximum(1e-30)) as tf.Tensor2D, false, true); // [n, 1]
  return y.norm().mul(maxAbs).maximum(1e-30) as tf.Scalar;
}

/** The reference's update clipping: a soft trust region, linear near 0, logarithmic beyond, clamped to [-2, 2]. */
function trustRegion(u: tf.Tensor): tf.Tensor {
  const x = u.div(1.5);
  const soft = x.tanh();
  const log = x.abs().log1p().mul(soft.sign());
  return log.mul(0.1).add(soft.mul(0.9)).mul(1.5).clipByValue(-2, 2);
}

export class PsgdKron implements Optimizer {
  readonly kind = 'psgd-kron' as const;
  readonly lr: number;
  readonly beta: number;
  readonly weightDecay: number;
  readonly frequency: number;
  readonly decay: number;
  readonly precondLr: number;
  readonly maxDim: number;
  readonly seed: number;
  private readonly decays: (name: string) => boolean;
  t = 0;
  readonly state = new Map<string, PsgdState>();

  constructor(options: PsgdKronOptions = {}) {
    this.lr = options.lr ?? 1e-4;
    this.beta = options.beta ?? 0.9;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decays ?? (() => true);
    this.frequency = options.frequency ?? 64;
    this.decay = options.decay ?? 0.999;
    this.precondLr = options.precondLr ?? 0.1;
    this.maxDim = options.maxDim ?? 4096;
    this.seed = options.seed ?? 0;
    if (!(this.beta >= 0 && this.beta < 1)) throw new Error(`PSGD-Kron: beta must lie in [0, 1), got ${this.beta}`);
    if (!(this.frequency >= 1)) throw new Error(`PSGD-Kron: frequency must be at least 1, got ${this.frequency}`);
    if (!(this.decay > 0 && this.decay <= 1)) throw new Error(`PSGD-Kron: decay must lie in (0, 1], got ${this.decay}`);
    if (!(this.precondLr > 0)) throw new Error(`PSGD-Kron: precondLr must be positive, got ${this.precondLr}`);
    if (!(Number.isInteger(this.maxDim) && this.maxDim >= 1)) throw new Error(`PSGD-Kron: maxDim must be a positive integer, got ${this.maxDim}`);
  }

  /** Probability of a refit at update t (1-based). */
  refitProbability(t: number): number {
    return Math.max(1 / this.frequency, this.decay ** t);
  }

  async apply(params: NamedParameters, grads: NamedTensors, lr = this.lr, scale = 1): Promise<void> {
    this.t += 1;
    const t = this.t;
    const c = 1 - (1 - this.beta) / (1 - this.beta ** t);
    const draw = new Rng(preconditionerSeed(this.seed, t, -1)).uniform();
    const refit = draw < this.refitProbability(t);
    const balance = draw < BALANCE_PROBABILITY;
    const fit: [string, number][] = [];
    let index = -1;
    tf.tidy(() => {
      for (const [name, p] of params) {
        index += 1;
        const g0 = grads.get(name);
        if (!g0) continue;
        const g = scale === 1 ? g0 : g0.mul(scale);
        let s = this.state.get(name);
        if (!s) {
          const q = triangular(p.shape, this.maxDim).map((tri, i) => {
            const d = p.shape[i]!;
            return tf.variable(tri ? tf.eye(d) : tf.ones([d]), false);
          });
          s = { m: tf.variable(tf.zerosLike(p), false), q, p: [] };
          this.state.set(name, s);
          this.refreshCache(s);
        }
        s.m.assign(s.m.mul(c).add(g.mul(1 - c)));
        const u = trustRegion(applyFactors(s.m, s.p));
        let next: tf.Tensor = p;
        if (this.weightDecay > 0 && this.decays(name)) next = next.mul(1 - lr * this.weightDecay);
        p.assign(next.sub(u.mul(lr)));
        if (refit) fit.push([name, index]);
      }
    });
    for (const [name, k] of fit) await this.fit(this.state.get(name)!, preconditionerSeed(this.seed, t, k), balance);
  }

  /** One fitting step of Q on the momentum with a fresh probe, then (if asked) the rebalancing. */
  private async fit(s: PsgdState, probeSeed: number, balance: boolean): Promise<void> {
    const inverses = await Promise.all(
      s.q.map(async (q) => {
        if (q.rank !== 2) return null;
        const n = q.shape[0]!;
        return tf.tensor2d(Float32Array.from(invertUpperTriangular(await q.data(), n)), [n, n]);
      }),
    );
    tf.tidy(() => {
      const v = tf.tensor(new Rng(probeSeed).normalArray(s.m.size), s.m.shape);
      // h = m + tiny * v: keeps the fit well posed where the momentum vanishes
      const tiny = s.m.norm().mul(Math.sqrt(2 ** -23) / s.m.size);
      const h = s.m.add(v.mul(tiny));
      const a = applyFactors(h, s.q);
      const b = applyFactors(v, s.q.map((q, i) => inverses[i] ?? tf.reciprocal(q)), true);
      s.q.forEach((q, i) => {
        const diagonal = q.rank === 1;
        const aa = gram(a, i, diagonal);
        const bb = gram(b, i, diagonal);
        const sum = aa.add(bb);
        if (diagonal) {
          const step = aa.sub(bb).mul(q).mul(this.precondLr).div(sum.abs().max().maximum(1e-30));
          q.assign(q.sub(step));
        } else {
          const e = tf.linalg.bandPart(aa.sub(bb), 0, -1).mul(this.precondLr).div(normLowerBound(sum as tf.Tensor2D));
          q.assign(q.sub(tf.matMul(e as tf.Tensor2D, q as tf.Tensor2D)));
        }
      });
      if (balance && s.q.length > 1) {
        const norms = s.q.map((q) => q.abs().max());
        const mean = tf.addN(norms.map((x) => x.log())).div(s.q.length).exp();
        s.q.forEach((q, i) => q.assign(q.mul(mean.div(norms[i]!))));
      }
    });
    for (const x of inverses) x?.dispose();
    this.refreshCache(s);
  }

  private refreshCache(s: PsgdState): void {
    tf.dispose(s.p);
    s.p = tf.tidy(() => s.q.map((q) => (q.rank === 2 ? tf.matMul(q as tf.Tensor2D, q as tf.Tensor2D, true, false) : q.square())));
    for (const x of s.p) tf.keep(x);
  }

  hyperParameters(): Record<string, unknown> {
    return {
      name: 'PSGD-Kron', lr: this.lr, beta: this.beta, weight_decay: this.weightDecay, frequency: this.frequency,
      decay: this.decay, precond_lr: this.precondLr, max_dim: this.maxDim, seed: this.seed,
    };
  }

  stateData(): Promise<Map<string, NamedData>> {
    return readState(this.stateTensors());
  }

  /** The state tensors, by `<kind>/<parameter name>` (the optimiser keeps ownership). */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.state) {
      out.set(`exp_avg/${name}`, s.m);
      s.q.forEach((q, i) => out.set(`psgd_q${i}/${name}`, q));
    }
    return out;
  }

  stateShapes(shape: readonly number[]): Map<string, number[]> {
    const out = new Map<string, number[]>([['exp_avg', shape.slice()]]);
    triangular(shape, this.maxDim).forEach((tri, i) => out.set(`psgd_q${i}`, tri ? [shape[i]!, shape[i]!] : [shape[i]!]));
    return out;
  }

  setState(state: Map<string, Map<string, tf.Tensor>>, t: number): void {
    this.dispose();
    for (const [name, kinds] of state) {
      const m = kinds.get('exp_avg')!;
      const s: PsgdState = { m: tf.variable(m, false), q: m.shape.map((_, i) => tf.variable(kinds.get(`psgd_q${i}`)!, false)), p: [] };
      this.refreshCache(s);
      this.state.set(name, s);
      for (const x of kinds.values()) x.dispose();
    }
    this.t = t;
  }

  dispose(): void {
    for (const s of this.state.values()) tf.dispose([s.m, ...s.q, ...s.p]);
    this.state.clear();
  }
}
