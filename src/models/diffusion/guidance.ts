/**
 * Guidance: sampling from p(x | y) with a denoiser trained for p(x), given an observation y ~ N(A(x), Sigma_y)
 * of the clean window x (A may be nonlinear: with latent windows it is the observation operator of the decoded
 * physical states, A(x) = obs(decode(x))). A guidance turns the denoiser D(x_t) ~ E[x | x_t] into an estimate
 * of E[x | x_t, y] by Tweedie's formula for x_t = alpha_t x + sigma_t eps, whatever the schedule (diffusion and
 * flow alike):
 *
 *   E[x | x_t, y] = E[x | x_t] + gamma_t grad_{x_t} log p(y | x_t),   gamma_t = sigma_t^2 / alpha_t,
 *
 * and the samplers run unchanged on the guided denoiser. The methods differ in their Gaussian approximation of
 * p(y | x_t):
 *  - DPS (Chung et al. 2022): N(y; A(D(x_t)), Sigma_y), so the correction is
 *    zeta gamma_t J_{A o D}^T Sigma_y^-1 (y - A(D(x_t))), zeta a strength (1: the approximation as such);
 *  - MMPS (Rozet et al. 2024): N(y; A(D), Sigma_y + A' V A'^T) with the Tweedie covariance
 *    V = Cov[x | x_t] = gamma_t dD/dx_t and A' the Jacobian of A at D, so the correction is
 *    gamma_t J_{A o D}^T u with (Sigma_y + A' V A'^T) u = y - A(D), solved by `iterations` steps of GMRES
 *    (default) or conjugate gradients (the derivative of the covariance itself is neglected). With a Gaussian
 *    prior, a linear A and enough iterations this is the exact posterior denoiser.
 *    The solver matters with a trained network: its Jacobian dD/dx_t is neither symmetric nor positive
 *    semi-definite, and gamma_t (up to sigma_max^2 = 1e6 on the log-logit schedule) magnifies its errors, so at
 *    high noise M = Sigma_y + A' V A'^T is indefinite. One CG step takes u = (b.b / b.Mb) b, unbounded as b.Mb
 *    crosses zero (on the Euler demo b.Mb ranged over -253..98 for b.b ~ 30 at t = 1, and one member's step of
 *    RMS 47 in a latent space of RMS 2 wrecked its window); one GMRES step takes u = (b.Mb / Mb.Mb) b, the
 *    multiple of b minimising |b - M u|, so the linearised misfit never grows, and a meaningless covariance
 *    gives a small step instead of a huge one. On a symmetric positive definite M both reach the exact solution
 *    in K iterations on K observations.
 *    Why a trained network still misleads it at high noise: with EDM preconditioning,
 *    D = c_skip x_t + c_out F(c_in x_t), so gamma_t dD/dx_t ~ sigma_data^2 I + sigma_t sigma_data F' for
 *    sigma_t >> sigma_data. The exact denoiser's F' shrinks like 1/sigma_t there (the covariance tends to the
 *    prior's); a trained network's F' is O(1) noise, so the covariance estimate grows like sigma_t (up to 1e3)
 *    and so does the correction gamma_t J^T A'^T u, whatever the solver.
 *  - MMPS with the isotropic covariance (`covariance: 'isotropic'`): V = r_t^2 I with
 *    r_t^2 = p sigma_t^2 / (sigma_t^2 + alpha_t^2 p), the exact Cov[x | x_t] of a white prior N(0, p I) (p the
 *    latents' variance, 1 when standardised); the correction is r_t^2 A'^T u with
 *    (Sigma_y + r_t^2 A' A'^T) u = y - A(D): one Gauss-Newton step of the data-consistency problem
 *    min |y - A(x)|^2_{Sigma_y} + |x - D|^2 / r_t^2 (as DiffPIR's proximal step), bounded by p at every noise
 *    level, symmetric positive definite (CG is exact on it), and without any pass through the denoiser's
 *    Jacobian. `tweedieUpTo: s` keeps the Tweedie covariance up to the noise level sigma_t / alpha_t = s and uses
 *    the isotropic one above it.
 * Products with transposed Jacobians (J^T v, A'^T v) are reverse-mode gradients (`tf.grad` with an upstream
 * gradient); tfjs has no forward mode, so the product A' w inside the MMPS covariance is a central difference
 * (A(D + h w) - A(D - h w)) / 2h with h w scaled to 1e-2 of the window's RMS (exact for linear A; it costs two
 * evaluations of A instead of a second-order gradient through the decoder's custom kernels).
 *
 * Cost per sampler step, in passes of the denoiser's network: DPS 2 forward + 1 backward; MMPS 1 + iterations
 * forward and `iterations` backward (J^T A'^T u is gathered from the solver's own products, u being a
 * combination of the vectors it applied M to); plus, for A, 1 + 3 iterations decoder passes and `iterations` backward.
 */
import * as tf from '@tensorflow/tfjs';
import type { ObservationOperator } from '../../physics/observe.js';
import type { SamplingDenoiser } from './denoiser.js';
import type { NoiseSchedule } from './schedule.js';

/** y ~ N(A(x), diag(variance)) for clean windows x (B, L, h, w, c), the same y for every window of a batch. */
export interface Likelihood {
  /** Predicted observations A(x): (B, K); tfjs ops, differentiable in x. */
  observe(x: tf.Tensor5D): tf.Tensor2D;
  /** The observed values y (K). */
  y: tf.Tensor1D;
  /** Noise variance of each observed value (K). */
  variance: tf.Tensor1D;
}

export type GuidanceName = 'dps' | 'mmps';

export interface Guidance {
  readonly name: GuidanceName;
  /** The guided denoiser ~ E[x | x_t, y] built on `denoise` ~ E[x | x_t] (see the header). */
  guide(denoise: SamplingDenoiser, schedule: NoiseSchedule, likelihood: Likelihood): SamplingDenoiser;
}

/** J^T dy for the Jacobian J of f at x (reverse mode). */
function vjp(f: (x: tf.Tensor5D) => tf.Tensor, x: tf.Tensor5D, dy: tf.Tensor): tf.Tensor5D {
  return tf.grad((v: tf.Tensor) => f(v as tf.Tensor5D))(x, dy) as tf.Tensor5D;
}

/** Relative size of the central-difference step of `jvp` (of the window's RMS). */
const JVP_STEP = 1e-2;

/**
 * J w for the Jacobian J of f: (B, ...) -> (B, K) at x, by central differences with a step per window of
 * JVP_STEP (1 + rms(x_b)) / rms(w_b).
 */
export function finiteDifferenceJvp(f: (x: tf.Tensor5D) => tf.Tensor2D, x: tf.Tensor5D, w: tf.Tensor5D): tf.Tensor2D {
  return tf.tidy(() => {
    const B = x.shape[0];
    const rms = (v: tf.Tensor) => tf.sqrt(tf.mean(tf.square(tf.reshape(v, [B, -1])), 1));
    const h = tf.div(tf.mul(tf.add(rms(x), 1), JVP_STEP), tf.add(rms(w), 1e-30)) as tf.Tensor1D;
    const step = tf.mul(tf.reshape(h, [B, 1, 1, 1, 1]), w);
    const diff = tf.sub(f(tf.add(x, step) as tf.Tensor5D), f(tf.sub(x, step) as tf.Tensor5D));
    return tf.div(diff, tf.reshape(tf.mul(h, 2), [B, 1])) as tf.Tensor2D;
  });
}

export type LinearSolverName = 'gmres' | 'cg';

/** A solver of M u = b row by row, where `apply(v)` also returns L v and the solver returns L u (see below). */
type LiftedSolver = (apply: (v: tf.Tensor2D) => { product: tf.Tensor2D; lifted: tf.Tensor }, b: tf.Tensor2D, iterations: number) => tf.Tensor;

/** Row-wise dot products of (B, K) tensors, as a (B, 1) column. */
const rowDot = (a: tf.Tensor, c: tf.Tensor): tf.Tensor => tf.sum(tf.mul(a, c), 1, true);

/** Scales each row of `t` (B, ...) by the (B, 1) column `c`. */
function scaleRows(t: tf.Tensor, c: tf.Tensor): tf.Tensor {
  return tf.mul(tf.reshape(c, [c.shape[0]!, ...t.shape.slice(1).map(() => 1)]), t);
}

function checkIterations(who: string, iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`${who}: iterations must be a positive integer, got ${iterations}`);
}

/**
 * `iterations` steps of GMRES on M u = b for each row of b (B, K) separately, from u = 0: u minimises |b - M u|
 * over the Krylov space span(b, Mb, ..., M^(k-1) b), built by Arnoldi with modified Gram-Schmidt, the small
 * least-squares problem solved by Givens rotations, all in tf ops on (B, 1) columns (no read-back). `apply`
 * computes M v row by row; M need not be symmetric or definite. The residual norm never grows with the
 * iterations, and on a nonsingular K x K system K iterations give the exact solution. Rows whose Krylov space
 * is exhausted early (an exact solution found, or b = 0) keep their solution; a new direction under 1e-5 of
 * |M v| is taken as none (float32 round-off).
 */
export function gmres(apply: (v: tf.Tensor2D) => tf.Tensor2D, b: tf.Tensor2D, iterations: number): tf.Tensor2D {
  return liftedGmres((v) => ({ product: apply(v), lifted: v }), b, iterations) as tf.Tensor2D;
}

/** Relative size of the new Krylov direction under which GMRES takes its space as exhausted (float32 round-off). */
const BREAKDOWN = 1e-5;

/** GMRES as `gmres`, returning L u for the L of `apply` (as `liftedConjugateGradient`). */
function liftedGmres(
  apply: (v: tf.Tensor2D) => { product: tf.Tensor2D; lifted: tf.Tensor },
  b: tf.Tensor2D,
  iterations: number,
): tf.Tensor {
  checkIterations('gmres', iterations);
  return tf.tidy(() => {
    const beta = tf.sqrt(rowDot(b, b));
    const basis: tf.Tensor[] = [tf.divNoNan(b, beta)];
    const lifts: tf.Tensor[] = [];
    // Columns of the upper-triangular R (after the rotations), the rotations (c, s), and g = Q^T beta e_1.
    const R: tf.Tensor[][] = [];
    const cs: tf.Tensor[] = [];
    const sn: tf.Tensor[] = [];
    const g: tf.Tensor[] = [beta];
    for (let j = 0; j < iterations; j++) {
      const { product, lifted } = apply(basis[j] as tf.Tensor2D);
      lifts.push(lifted);
      let w: tf.Tensor = product;
      const column: tf.Tensor[] = [];
      for (let i = 0; i <= j; i++) {
        const h = rowDot(w, basis[i]!);
        w = tf.sub(w, tf.mul(h, basis[i]!));
        column.push(h);
      }
      // What M v_j adds to the Krylov space; below float32 round-off of the orthogonalisation it is none (the
      // space is exhausted and the solution found: the next vector is 0 and so is its coefficient).
      const left = tf.sqrt(rowDot(w, w));
      const below = tf.where(tf.greater(left, tf.mul(tf.sqrt(rowDot(product, product)), BREAKDOWN)), left, tf.zerosLike(left));
      if (j + 1 < iterations) basis.push(tf.divNoNan(w, below));
      for (let i = 0; i < j; i++) {
        const [a, c] = [column[i]!, column[i + 1]!];
        column[i] = tf.add(tf.mul(cs[i]!, a), tf.mul(sn[i]!, c));
        column[i + 1] = tf.sub(tf.mul(cs[i]!, c), tf.mul(sn[i]!, a));
      }
      // The rotation that zeroes `below` against the diagonal (the identity where both vanish).
      const radius = tf.sqrt(tf.add(tf.square(column[j]!), tf.square(below)));
      const c = tf.where(tf.greater(radius, 0), tf.divNoNan(column[j]!, radius), tf.onesLike(radius));
      const s = tf.divNoNan(below, radius);
      cs.push(c);
      sn.push(s);
      column[j] = radius;
      R.push(column);
      g.push(tf.neg(tf.mul(s, g[j]!)));
      g[j] = tf.mul(c, g[j]!);
    }
    // Back substitution R y = g[0..k-1]; a vanishing diagonal (exhausted Krylov space) gives y = 0 there.
    const yv: tf.Tensor[] = new Array<tf.Tensor>(iterations);
    for (let j = iterations - 1; j >= 0; j--) {
      let rhs = g[j]!;
      for (let l = j + 1; l < iterations; l++) rhs = tf.sub(rhs, tf.mul(R[l]![j]!, yv[l]!));
      yv[j] = tf.divNoNan(rhs, R[j]![j]!);
    }
    let u = scaleRows(lifts[0]!, yv[0]!);
    for (let j = 1; j < iterations; j++) u = tf.add(u, scaleRows(lifts[j]!, yv[j]!));
    return u;
  });
}

/**
 * `iterations` steps of conjugate gradients on M u = b for each row of b (B, K) separately, from u = 0; `apply`
 * computes M v row by row (M symmetric positive definite). Rows whose residual vanishes stay put.
 */
export function conjugateGradient(apply: (v: tf.Tensor2D) => tf.Tensor2D, b: tf.Tensor2D, iterations: number): tf.Tensor2D {
  return liftedConjugateGradient((v) => ({ product: apply(v), lifted: v }), b, iterations) as tf.Tensor2D;
}

/**
 * Conjugate gradients as `conjugateGradient`, where `apply(v)` also returns L v for a linear map L; returns L u
 * for the solution u = sum_k a_k p_k as sum_k a_k L p_k, from the products already computed (MMPS needs
 * J^T A'^T u, which its covariance products compute on the way: this saves a backward pass).
 */
function liftedConjugateGradient(
  apply: (v: tf.Tensor2D) => { product: tf.Tensor2D; lifted: tf.Tensor },
  b: tf.Tensor2D,
  iterations: number,
): tf.Tensor {
  checkIterations('conjugateGradient', iterations);
  return tf.tidy(() => {
    let u: tf.Tensor | undefined;
    let r: tf.Tensor = b;
    let p: tf.Tensor = b;
    let rr = rowDot(r, r);
    for (let k = 0; k < iterations; k++) {
      const { product, lifted } = apply(p as tf.Tensor2D);
      const alpha = tf.divNoNan(rr, rowDot(p, product));
      const step = scaleRows(lifted, alpha);
      u = u ? tf.add(u, step) : step;
      if (k + 1 === iterations) break;
      r = tf.sub(r, tf.mul(alpha, product));
      const next = rowDot(r, r);
      p = tf.add(r, tf.mul(tf.divNoNan(next, rr), p));
      rr = next;
    }
    return u!;
  });
}

function gammaAt(schedule: NoiseSchedule, t: number, who: string): number {
  const alpha = schedule.alpha(t);
  if (!(alpha > 0)) throw new Error(`${who}: alpha(${t}) = ${alpha}; guidance needs alpha > 0 on the time grid (schedule ${schedule.name})`);
  return schedule.sigma(t) ** 2 / alpha;
}

export interface DpsOptions {
  /** Strength zeta multiplying the likelihood gradient (default 1). */
  scale?: number;
}

/** Diffusion posterior sampling (see the header): likelihood N(y; A(D(x_t)), Sigma_y). */
export function dps(options: DpsOptions = {}): Guidance {
  const { scale = 1 } = options;
  if (!(scale >= 0) || !Number.isFinite(scale)) throw new Error(`dps: scale must be a finite number >= 0, got ${scale}`);
  return {
    name: 'dps',
    guide(denoise, schedule, likelihood) {
      if (Math.min(...likelihood.variance.dataSync()) <= 0) throw new Error('dps: the observation noise variance must be positive (DPS divides by it)');
      return (xt, t) =>
        tf.tidy(() => {
          const gamma = gammaAt(schedule, t, 'dps');
          const xhat = denoise(xt, t);
          const weighted = tf.div(tf.sub(likelihood.y, likelihood.observe(xhat)), likelihood.variance);
          const grad = vjp((x) => likelihood.observe(denoise(x, t)), xt, weighted);
          return tf.add(xhat, tf.mul(grad, scale * gamma)) as tf.Tensor5D;
        });
    },
  };
}

export type CovarianceName = 'tweedie' | 'isotropic';

export interface MmpsOptions {
  /** Solver iterations for the covariance solve (default 1, as the reference's evaluation). */
  iterations?: number;
  /**
   * The covariance solver: 'gmres' (default, as the reference's; safe when the network's covariance is
   * indefinite, see the header) or 'cg' (conjugate gradients, which assume it positive definite).
   */
  solver?: LinearSolverName;
  /**
   * The covariance V of x given x_t: 'tweedie' (default, the reference's: gamma_t dD/dx_t) or 'isotropic'
   * (r_t^2 I, see the header: no pass through the denoiser's Jacobian).
   */
  covariance?: CovarianceName;
  /**
   * With 'tweedie': the noise level sigma_t / alpha_t above which the isotropic covariance is used instead
   * (default Infinity: Tweedie at every level).
   */
  tweedieUpTo?: number;
  /** Variance of the white Gaussian prior of the isotropic covariance (default 1: standardised latents). */
  priorVariance?: number;
}

const SOLVERS: Record<LinearSolverName, LiftedSolver> = { gmres: liftedGmres, cg: liftedConjugateGradient };

/** Moment-matching posterior sampling (see the header): likelihood N(y; A(D), Sigma_y + A' V A'^T). */
export function mmps(options: MmpsOptions = {}): Guidance {
  const { iterations = 1, solver = 'gmres', covariance = 'tweedie', tweedieUpTo = Infinity, priorVariance = 1 } = options;
  checkIterations('mmps', iterations);
  if (!Object.hasOwn(SOLVERS, solver)) throw new Error(`mmps: solver must be 'gmres' or 'cg', got ${JSON.stringify(solver)}`);
  if (covariance !== 'tweedie' && covariance !== 'isotropic') throw new Error(`mmps: covariance must be 'tweedie' or 'isotropic', got ${JSON.stringify(covariance)}`);
  if (!(tweedieUpTo > 0)) throw new Error(`mmps: tweedieUpTo must be a positive noise level (or Infinity), got ${tweedieUpTo}`);
  if (!(priorVariance > 0) || !Number.isFinite(priorVariance)) throw new Error(`mmps: priorVariance must be a positive number, got ${priorVariance}`);
  const solve = SOLVERS[solver];
  return {
    name: 'mmps',
    guide(denoise, schedule, likelihood) {
      return (xt, t) =>
        tf.tidy(() => {
          const [alpha, sigma] = [schedule.alpha(t), schedule.sigma(t)];
          // V = scale J with J = dD/dx_t (Tweedie: scale gamma_t) or J = I (isotropic: scale r_t^2, no pass
          // through the denoiser's Jacobian).
          const isotropic = covariance === 'isotropic' || sigma / alpha > tweedieUpTo;
          const scale = isotropic ? (priorVariance * sigma * sigma) / (sigma * sigma + alpha * alpha * priorVariance) : gammaAt(schedule, t, 'mmps');
          const xhat = denoise(xt, t);
          const residual = tf.sub(likelihood.y, likelihood.observe(xhat)) as tf.Tensor2D;
          // v -> (Sigma_y v + A' V A'^T v, J^T A'^T v): the covariance product and, lifted, the correction direction.
          const product = (v: tf.Tensor2D) =>
            tf.tidy(() => {
              const observed = vjp(likelihood.observe, xhat, v);
              const lifted = isotropic ? observed : vjp((x) => denoise(x, t), xt, observed);
              const applied = tf.add(tf.mul(likelihood.variance, v), finiteDifferenceJvp(likelihood.observe, xhat, tf.mul(lifted, scale) as tf.Tensor5D)) as tf.Tensor2D;
              return { product: applied, lifted };
            });
          return tf.add(xhat, tf.mul(solve(product, residual, iterations), scale)) as tf.Tensor5D;
        });
    },
  };
}

export interface GuidanceOptions extends DpsOptions, MmpsOptions {}

/** The guidance of that name ('dps' or 'mmps') with its options. */
export function guidance(name: string, options: GuidanceOptions = {}): Guidance {
  if (name === 'dps') return dps(options);
  if (name === 'mmps') return mmps(options);
  throw new Error(`guidance: expected 'dps' or 'mmps', got ${JSON.stringify(name)}`);
}

/** A differentiable map from latent states (N, h, w, c) to physical states (N, H, W, C). */
export type LatentDecoder = (latents: tf.Tensor4D) => tf.Tensor4D;

/** Observations of some frames of a window. */
export interface FrameObservations {
  /** Window frame index of each observed state, ascending. */
  frames: readonly number[];
  /** Their observations, frame after frame (frames.length x operator.size values). */
  values: Float32Array;
}

/**
 * The likelihood of observations of some frames of latent windows, through the decoder:
 * y = operator(decoder(x[:, frame])) + noise, frame by frame, every window of a batch observed alike. Only the
 * observed frames are decoded. The caller disposes it (`dispose`).
 */
export function windowLikelihood(
  decoder: LatentDecoder,
  operator: ObservationOperator,
  observed: FrameObservations,
): Likelihood & { dispose(): void } {
  const n = observed.frames.length;
  if (n === 0) throw new Error('windowLikelihood: no observed frame');
  if (observed.values.length !== n * operator.size) {
    throw new Error(`windowLikelihood: ${observed.values.length} values for ${n} frames, expected ${n} x ${operator.size} (${operator.name}: [${operator.outShape}] per state)`);
  }
  const frames = tf.tensor1d([...observed.frames], 'int32');
  const y = tf.tensor1d(observed.values);
  const variance = tf.fill([observed.values.length], operator.variance) as tf.Tensor1D;
  return {
    y,
    variance,
    observe: (x) =>
      tf.tidy(() => {
        const [B, , h, w, c] = x.shape;
        const latents = tf.reshape(tf.gather(x, frames, 1), [B * n, h, w, c]) as tf.Tensor4D;
        return tf.reshape(operator.apply(decoder(latents)), [B, n * operator.size]) as tf.Tensor2D;
      }),
    dispose: () => tf.dispose([frames, y, variance]),
  };
}
