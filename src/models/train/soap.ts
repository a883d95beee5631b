/**
 * SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam run in the eigenbasis of
 * Shampoo's Kronecker-factored preconditioner.
 *
 * For a parameter whose gradient G has (size-1 dimensions dropped) shape d_1 x ... x d_k, SOAP keeps per
 * dimension i a running second-moment factor L_i = EMA_beta3( G_(i) G_(i)^T ) (d_i x d_i; G_(i) is G unfolded
 * along dimension i, so L_i sums g_a g_b over every other index) and an orthonormal basis Q_i of L_i's
 * eigenvectors. With the rotation R(X) = X x_1 Q_1^T x_2 ... x_k Q_k^T (X's i-th index contracted with Q_i's
 * rows) and its inverse R^-1(X) = X x_1 Q_1 ... x_k Q_k, one update is
 *
 *   G' = R(G),  m <- EMA_beta1(G'),  v <- EMA_beta2(G' * G')      (bias-corrected EMAs, elementwise square)
 *   p  <- (p - lr R^-1( m / sqrt(v + eps^2) )) (1 - lr wd)
 *
 * i.e. Adam whose second moment is diagonal in the rotated basis rather than in the parameter basis. Q_i is set
 * by an eigen-decomposition of L_i on a parameter's first gradient (that step only initialises: no update, as in
 * the reference) and refreshed every `frequency` steps by one power iteration and a QR decomposition:
 * Q_i <- qr(L_i Q_i), columns ordered by the estimated eigenvalues q_j^T L_i q_j (each keeps its slot, so the
 * second moment v needs no rotation); the first moment m is rotated into the new basis with it.
 *
 * A dimension larger than `maxDim`, and every dimension of a one-dimensional parameter (biases, norm scales), gets
 * no factor (Q_i = I): the update is Adam's along it. Hyper-parameters default to the reference's
 * (francois-rozet/lola, configs/optim/soap.yaml): betas (0.9, 0.99), shampoo beta 0.99, frequency 16, max 4096.
 * State tensors: `exp_avg/<name>`, `exp_avg_sq/<name>` (in the rotated basis), `soap_gg<i>/<name>` (L_i) and
 * `soap_q<i>/<name>` (Q_i), i indexing the dimensions left after dropping size-1 ones.
 */
import * as tf from '@tensorflow/tfjs';
import { readState, type NamedData, type NamedParameters, type NamedTensors } from './optim.js';
import type { Optimizer } from './types.js';
import { orthonormalize, symmetricEigen } from './linalg.js';

export interface SoapOptions {
  /** Base learning rate (default 3e-4). */
  lr?: number;
  /** Adam's moment decay rates in the rotated basis (default [0.9, 0.99]). */
  betas?: [number, number];
  /** Decay of the Kronecker factors L_i (default 0.99). */
  shampooBeta?: number;
  /** Added to the second moment as eps^2 under the root (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Which parameters decay (default all). */
  decays?: (name: string) => boolean;
  /** Steps between refreshes of the eigenbases (default 16). */
  frequency?: number;
  /** Refresh at every step during this many first steps (default 0). */
  warmup?: number;
  /** Dimensions larger than this are not preconditioned (default 4096). */
  maxDim?: number;
}

interface SoapState {
  m: tf.Variable;
  v: tf.Variable;
  /** L_i per dimension of `shape`, null where the dimension is not preconditioned. */
  gg: (tf.Variable | null)[];
  q: (tf.Variable | null)[];
  /** The parameter's shape without size-1 dimensions. */
  shape: number[];
}

/** Shape without size-1 dimensions, and which of its dimensions get a factor. */
function factorLayout(shape: readonly number[], maxDim: number): { shape: number[]; factored: boolean[] } {
  const squeezed = shape.filter((d) => d !== 1);
  const multi = squeezed.length >= 2;
  return { shape: squeezed, factored: squeezed.map((d) => multi && d <= maxDim) };
}

/**
 * Contracts each dimension of `x` (reshaped to `shape`) with its matrix: X x_i Q_i^T (forward) or X x_i Q_i
 * (back); a null matrix leaves its dimension as it is. Each round unfolds the leading dimension, multiplies, and
 * moves it to the end, so after all rounds the order is restored.
 */
function rotate(x: tf.Tensor, shape: number[], qs: (tf.Tensor | null)[], back: boolean): tf.Tensor {
  const size = x.size;
  let y: tf.Tensor = x;
  shape.forEach((d, i) => {
    const unfolded = y.reshape([d, size / d]).transpose();
    const q = qs[i];
    y = q ? tf.matMul(unfolded as tf.Tensor2D, q as tf.Tensor2D, false, back) : unfolded;
  });
  return y.reshape(x.shape);
}

/** G_(i) G_(i)^T: the Gram matrix of `g` (reshaped to `shape`) unfolded along dimension `i`. */
function modeGram(g: tf.Tensor, shape: number[], i: number): tf.Tensor2D {
  const perm = [i, ...shape.map((_, j) => j).filter((j) => j !== i)];
  const unfolded = g.reshape(shape).transpose(perm).reshape([shape[i]!, g.size / shape[i]!]) as tf.Tensor2D;
  return tf.matMul(unfolded, unfolded, false, true);
}

export class Soap implements Optimizer {
  readonly kind = 'soap' as const;
  readonly lr: number;
  readonly betas: [number, number];
  readonly shampooBeta: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly frequency: number;
  readonly warmup: number;
  readonly maxDim: number;
  private readonly decays: (name: string) => boolean;
  t = 0;
  readonly state = new Map<string, SoapState>();

  constructor(options: SoapOptions = {}) {
    this.lr = options.lr ?? 3e-4;
    this.betas = options.betas ?? [0.9, 0.99];
    this.shampooBeta = options.shampooBeta ?? 0.99;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decays ?? (() => true);
    this.frequency = options.frequency ?? 16;
    this.warmup = options.warmup ?? 0;
    this.maxDim = options.maxDim ?? 4096;
    for (const b of [...this.betas, this.shampooBeta]) {
      if (!(b >= 0 && b < 1)) throw new Error(`SOAP: betas and shampooBeta must lie in [0, 1), got ${[...this.betas, this.shampooBeta]}`);
    }
    if (!(Number.isInteger(this.frequency) && this.frequency >= 1)) throw new Error(`SOAP: frequency must be a positive integer, got ${this.frequency}`);
    if (!(Number.isInteger(this.maxDim) && this.maxDim >= 1)) throw new Error(`SOAP: maxDim must be a positive integer, got ${this.maxDim}`);
  }

  async apply(params: NamedParameters, grads: NamedTensors, lr = this.lr, scale = 1): Promise<void> {
    this.t += 1;
    // The reference counts a parameter's steps from 0 at its first gradient (which only initialises).
    const step = this.t - 1;
    const [b1, b2] = this.betas;
    const c1 = 1 - (1 - b1) / (1 - b1 ** step);
    const c2 = 1 - (1 - b2) / (1 - b2 ** step);
    const c3 = 1 - (1 - this.shampooBeta) / (1 - this.shampooBeta ** (step + 1));
    const refresh = step < this.warmup || step % this.frequency === 0;
    const fresh: string[] = [];
    const refreshed: string[] = [];
    tf.tidy(() => {
      for (const [name, p] of params) {
        const g0 = grads.get(name);
        if (!g0) continue;
        const g = scale === 1 ? g0 : g0.mul(scale);
        const s = this.state.get(name);
        if (!s) {
          const { shape, factored } = factorLayout(p.shape, this.maxDim);
          const gg = factored.map((f, i) => (f ? tf.variable(modeGram(g, shape, i), false) : null));
          this.state.set(name, {
            m: tf.variable(tf.zerosLike(p), false),
            v: tf.variable(tf.zerosLike(p), false),
            gg,
            q: gg.map(() => null),
            shape,
          });
          fresh.push(name);
          continue;
        }
        const gRot = rotate(g, s.shape, s.q, false);
        s.m.assign(s.m.mul(c1).add(gRot.mul(1 - c1)));
        s.v.assign(s.v.mul(c2).add(gRot.square().mul(1 - c2)));
        const u = rotate(s.m.div(s.v.add(this.eps ** 2).sqrt()), s.shape, s.q, true);
        s.gg.forEach((l, i) => l?.assign(l.mul(c3).add(modeGram(g, s.shape, i).mul(1 - c3))));
        let next = p.sub(u.mul(lr));
        if (this.weightDecay > 0 && this.decays(name)) next = next.mul(1 - lr * this.weightDecay);
        p.assign(next);
        if (refresh && s.q.some((q) => q)) refreshed.push(name);
      }
    });
    for (const name of fresh) await this.initBasis(this.state.get(name)!);
    for (const name of refreshed) await this.refreshBasis(this.state.get(name)!);
  }

  /** Q_i from the eigen-decomposition of L_i (eigenvalues decreasing). */
  private async initBasis(s: SoapState): Promise<void> {
    for (let i = 0; i < s.gg.length; i++) {
      const l = s.gg[i];
      if (!l) continue;
      const n = s.shape[i]!;
      const data = Float64Array.from(await l.data());
      for (let k = 0; k < n; k++) data[k * n + k] = data[k * n + k]! + 1e-9;
      s.q[i] = tf.variable(tf.tensor2d(Float32Array.from(symmetricEigen(data, n).vectors), [n, n]), false);
    }
  }

  /** One power iteration and QR per factor (slots ordered by estimated eigenvalue); m rotated to the new basis. */
  private async refreshBasis(s: SoapState): Promise<void> {
    const next: (tf.Tensor | null)[] = [];
    for (let i = 0; i < s.gg.length; i++) {
      const l = s.gg[i];
      const q = s.q[i];
      if (!l || !q) {
        next.push(null);
        continue;
      }
      const n = s.shape[i]!;
      const lq = tf.matMul(l as tf.Tensor2D, q as tf.Tensor2D);
      const [lqData, qData] = await Promise.all([lq.data(), q.data()]);
      lq.dispose();
      const eigen = new Float64Array(n);
      for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) eigen[c] = eigen[c]! + qData[r * n + c]! * lqData[r * n + c]!;
      const order = Array.from({ length: n }, (_, c) => c).sort((a, b) => eigen[b]! - eigen[a]!);
      const sorted = new Float64Array(n * n);
      for (let r = 0; r < n; r++) order.forEach((from, to) => (sorted[r * n + to] = lqData[r * n + from]!));
      const basis = orthonormalize(sorted, n);
      const placed = new Float32Array(n * n);
      for (let r = 0; r < n; r++) order.forEach((slot, j) => (placed[r * n + slot] = basis[r * n + j]!));
      next.push(tf.tensor2d(placed, [n, n]));
    }
    tf.tidy(() => {
      const restored = rotate(s.m, s.shape, s.q, true);
      s.m.assign(rotate(restored, s.shape, next, false));
    });
    next.forEach((q, i) => {
      if (!q) return;
      s.q[i]!.assign(q);
      q.dispose();
    });
  }

  hyperParameters(): Record<string, unknown> {
    return {
      name: 'SOAP', lr: this.lr, betas: this.betas, shampoo_beta: this.shampooBeta, eps: this.eps,
      weight_decay: this.weightDecay, frequency: this.frequency, warmup: this.warmup, max_dim: this.maxDim,
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
      out.set(`exp_avg_sq/${name}`, s.v);
      s.gg.forEach((l, i) => l && out.set(`soap_gg${i}/${name}`, l));
      s.q.forEach((q, i) => q && out.set(`soap_q${i}/${name}`, q));
    }
    return out;
  }

  stateShapes(shape: readonly number[]): Map<string, number[]> {
    const out = new Map<string, number[]>([['exp_avg', shape.slice()], ['exp_avg_sq', shape.slice()]]);
    const layout = factorLayout(shape, this.maxDim);
    layout.factored.forEach((f, i) => {
      if (!f) return;
      const d = layout.shape[i]!;
      out.set(`soap_gg${i}`, [d, d]);
      out.set(`soap_q${i}`, [d, d]);
    });
    return out;
  }

  setState(state: Map<string, Map<string, tf.Tensor>>, t: number): void {
    this.dispose();
    for (const [name, kinds] of state) {
      const m = kinds.get('exp_avg')!;
      const layout = factorLayout(m.shape, this.maxDim);
      const factor = (prefix: string) =>
        layout.factored.map((f, i) => (f ? tf.variable(kinds.get(`${prefix}${i}`)!, false) : null));
      this.state.set(name, {
        m: tf.variable(m, false),
        v: tf.variable(kinds.get('exp_avg_sq')!, false),
        gg: factor('soap_gg'),
        q: factor('soap_q'),
        shape: layout.shape,
      });
      for (const x of kinds.values()) x.dispose();
    }
    this.t = t;
  }

  dispose(): void {
    for (const s of this.state.values()) {
      for (const x of [s.m, s.v, ...s.gg, ...s.q]) x?.dispose();
    }
    this.state.clear();
  }
}
