/**
 * Steady Darcy flow, -div(a grad u) = f on the unit square with u = 0 on the boundary, as in the FNO / PIDDM
 * Darcy benchmark: a two-valued coefficient a (12 where a Gaussian random field is >= 0, 3 elsewhere) and f = 1.
 *
 * Grid: `size` x `size` nodes x_i = i h, i = 0..size-1, h = 1 / (size - 1), boundary nodes included (so the
 * N = size - 2 interior nodes have spacing h = 1 / (N + 1)). Arrays are row-major with x the first axis
 * (index i * size + j), The Well's stored layout.
 *
 * Random field: g = sum_k sqrt(lambda_k) xi_k phi_k over the cosine (zero-Neumann) eigenfunctions of the
 * Laplacian on [0,1]^2, phi_k = c_k cos(pi k1 x) cos(pi k2 y) (c_k normalising them in L2), eigenvalues of the
 * covariance lambda_k = (pi^2 |k|^2 + tau^2)^(-alpha), i.e. covariance (-Laplacian + tau^2 I)^(-alpha), with
 * the constant mode dropped (mean zero, as the benchmark's generator does) and modes k1, k2 < size, their normals
 * drawn shell by shell (`modeOrder`) so that a seed gives the same field at every resolution. The cosine
 * sums are evaluated on the nodes with the project's FFT (`fftnInPlace` on the even extension, a DCT-I).
 * Normals come from the project's generator (`createRng(seed)`), so a seed gives the same field everywhere.
 *
 * Discretisation (5-point, conservative): with face coefficients a_{i+1/2,j} = (a_{i,j} + a_{i+1,j}) / 2
 * between interior nodes and a_{i,j} itself on faces that touch the boundary,
 *   R_ij = -[a_{i+1/2,j}(u_{i+1,j} - u_ij) - a_{i-1/2,j}(u_ij - u_{i-1,j}) + (same in j)] / h^2 - f_ij,
 * second-order accurate for smooth a. The symmetric positive definite system is solved by preconditioned
 * conjugate gradients in Float64 (incomplete Cholesky IC(0) by default, or Jacobi), to a relative residual
 * ||b - A u||_2 <= tolerance ||b||_2 checked on the true residual, not only CG's recursive one.
 */
import { fftnInPlace } from './fft.js';
import { createRng, type Rng } from '../streams/random.js';

export interface GaussianRandomFieldOptions {
  /** Exponent of the covariance operator (default 2). */
  alpha?: number;
  /** Shift of the covariance operator (default 3). */
  tau?: number;
}

/** The benchmark's defaults: alpha = 2, tau = 3, a = 12 where the field is >= 0, 3 elsewhere, f = 1. */
export const DARCY_DEFAULTS = { alpha: 2, tau: 3, high: 12, low: 3, forcing: 1 } as const;

/**
 * A mean-zero Gaussian random field with covariance (-Laplacian + tau^2 I)^(-alpha) (zero-Neumann cosine basis)
 * on the `size` x `size` nodes of [0,1]^2, x-major. `seed` is any safe integer (through `createRng`) or a
 * generator to draw from. Draws size^2 normals, one per mode (k1, k2 < size) in `modeOrder`, the constant
 * mode's included (and discarded).
 */
export function gaussianRandomField(size: number, seed: number | Rng, options: GaussianRandomFieldOptions = {}): Float64Array {
  if (!Number.isInteger(size) || size < 2) throw new RangeError(`gaussianRandomField: size must be an integer >= 2, got ${size}`);
  const alpha = options.alpha ?? DARCY_DEFAULTS.alpha;
  const tau = options.tau ?? DARCY_DEFAULTS.tau;
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`gaussianRandomField: alpha must be positive, got ${alpha}`);
  if (!(tau >= 0) || !Number.isFinite(tau)) throw new RangeError(`gaussianRandomField: tau must be non-negative, got ${tau}`);
  const rng = typeof seed === 'number' ? createRng(seed) : seed;
  const K = size; // modes 0..size-1 per axis
  const coef = new Float64Array(K * K);
  for (const [k1, k2] of modeOrder(K)) {
    const xi = rng.normal();
    if (k1 === 0 && k2 === 0) continue; // mean zero
    const lambda = (Math.PI * Math.PI * (k1 * k1 + k2 * k2) + tau * tau) ** -alpha;
    const norm = (k1 > 0 ? Math.SQRT2 : 1) * (k2 > 0 ? Math.SQRT2 : 1);
    coef[k1 * K + k2] = xi * Math.sqrt(lambda) * norm;
  }
  return cosineSum(coef, size);
}

/**
 * The order in which `gaussianRandomField` draws its normals, by shells m = max(k1, k2) = 0, 1, ..: (m, 0..m),
 * then (0..m-1, m). It does not depend on the grid size, so one seed gives the same low modes at every
 * resolution: a coarse field is the fine one without its highest modes.
 */
export function* modeOrder(modes: number): Generator<[number, number]> {
  for (let m = 0; m < modes; m++) {
    for (let k2 = 0; k2 <= m; k2++) yield [m, k2];
    for (let k1 = 0; k1 < m; k1++) yield [k1, m];
  }
}

/**
 * g(x_n, y_m) = sum_{k1, k2 < size} coef[k1, k2] cos(pi k1 x_n) cos(pi k2 y_m) on the nodes x_n = n / (size - 1):
 * a DCT-I, computed as the DFT of the even extension (length 2 (size - 1) per axis) with the project's FFT.
 */
function cosineSum(coef: Float64Array, size: number): Float64Array {
  const L = 2 * (size - 1);
  const mode = (p: number): number => (p <= size - 1 ? p : L - p);
  const weight = (p: number): number => {
    const k = mode(p);
    return k === 0 || k === size - 1 ? 1 : 0.5;
  };
  const re = new Float64Array(L * L);
  const im = new Float64Array(L * L);
  for (let p1 = 0; p1 < L; p1++) {
    const k1 = mode(p1);
    const w1 = weight(p1);
    for (let p2 = 0; p2 < L; p2++) re[p1 * L + p2] = coef[k1 * size + mode(p2)]! * w1 * weight(p2);
  }
  fftnInPlace(re, im, [L, L]);
  const out = new Float64Array(size * size);
  for (let n = 0; n < size; n++) for (let m = 0; m < size; m++) out[n * size + m] = re[n * L + m]!;
  return out;
}

/** Two-valued coefficient: `high` where the field is >= 0, `low` elsewhere (defaults 12 and 3). */
export function thresholdCoefficient(field: ArrayLike<number>, high: number = DARCY_DEFAULTS.high, low: number = DARCY_DEFAULTS.low): Float64Array {
  const a = new Float64Array(field.length);
  for (let k = 0; k < field.length; k++) a[k] = field[k]! >= 0 ? high : low;
  return a;
}

/** The benchmark's random coefficient on `size` x `size` nodes: a thresholded `gaussianRandomField`. */
export function darcyCoefficient(
  size: number,
  seed: number | Rng,
  options: GaussianRandomFieldOptions & { high?: number; low?: number } = {},
): Float64Array {
  return thresholdCoefficient(gaussianRandomField(size, seed, options), options.high, options.low);
}

// ---------------------------------------------------------------------------------------------------------
// The discrete operator

/**
 * Face coefficients of the interior nodes (N = size - 2 per axis, interior index p = (i-1) N + (j-1)):
 * `cx[f * N + j]` is the face between interior x-indices f-1 and f (f = 0..N; f = 0 and f = N touch the
 * boundary), `cy[i * (N + 1) + f]` likewise along y.
 */
function faceCoefficients(a: ArrayLike<number>, size: number): { cx: Float64Array; cy: Float64Array } {
  const N = size - 2;
  const at = (i: number, j: number): number => a[(i + 1) * size + (j + 1)]!; // interior (i, j), 0-based
  const cx = new Float64Array((N + 1) * N);
  const cy = new Float64Array(N * (N + 1));
  for (let f = 0; f <= N; f++) {
    for (let j = 0; j < N; j++) {
      cx[f * N + j] = f === 0 ? at(0, j) : f === N ? at(N - 1, j) : 0.5 * (at(f - 1, j) + at(f, j));
    }
  }
  for (let i = 0; i < N; i++) {
    for (let f = 0; f <= N; f++) {
      cy[i * (N + 1) + f] = f === 0 ? at(i, 0) : f === N ? at(i, N - 1) : 0.5 * (at(i, f - 1) + at(i, f));
    }
  }
  return { cx, cy };
}

function checkGrid(name: string, size: number, arrays: Record<string, ArrayLike<number> | number | undefined>): void {
  if (!Number.isInteger(size) || size < 3) throw new RangeError(`${name}: size must be an integer >= 3 (one interior node), got ${size}`);
  for (const [key, v] of Object.entries(arrays)) {
    if (v === undefined || typeof v === 'number') continue;
    if (v.length !== size * size) throw new RangeError(`${name}: ${key} has ${v.length} values, expected ${size} x ${size} = ${size * size}`);
  }
}

/**
 * The discrete residual R = -div_h(a grad_h u) - f at the interior nodes, `(size-2) x (size-2)` x-major, of
 * `a` and `u` given on the whole `size` x `size` node grid (u's boundary values are used as given; the solver's
 * are 0). `f` is a number or an array on the node grid (interior values used). Float64 throughout.
 */
export function darcyResidualOnGrid(
  a: ArrayLike<number>,
  u: ArrayLike<number>,
  size: number,
  f: number | ArrayLike<number> = DARCY_DEFAULTS.forcing,
): Float64Array {
  checkGrid('darcyResidualOnGrid', size, { a, u, f });
  const N = size - 2;
  const h = 1 / (size - 1);
  const { cx, cy } = faceCoefficients(a, size);
  const R = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const k = (i + 1) * size + (j + 1);
      const uc = u[k]!;
      const flux =
        cx[(i + 1) * N + j]! * (u[k + size]! - uc) -
        cx[i * N + j]! * (uc - u[k - size]!) +
        cy[i * (N + 1) + j + 1]! * (u[k + 1]! - uc) -
        cy[i * (N + 1) + j]! * (uc - u[k - 1]!);
      R[i * N + j] = -flux / (h * h) - (typeof f === 'number' ? f : f[k]!);
    }
  }
  return R;
}

export interface DarcySolveOptions {
  /** Right-hand side: a number, or values on the node grid (interior used). Default 1. */
  f?: number | ArrayLike<number>;
  /** Relative residual ||b - A u||_2 / ||b||_2 to reach (default 1e-10). */
  tolerance?: number;
  /** Iteration cap (default max(500, 20 (N + 2))); exceeding it throws. */
  maxIterations?: number;
  /** Preconditioner (default 'ic0', incomplete Cholesky with no fill; 'jacobi' the diagonal). */
  preconditioner?: 'ic0' | 'jacobi';
}

export interface DarcySolution {
  /** The solution on the whole `size` x `size` node grid, x-major, 0 on the boundary. */
  u: Float64Array;
  /** PCG iterations taken (matrix-vector products, restarts included). */
  iterations: number;
  /** The true relative residual ||b - A u||_2 / ||b||_2 reached (0 when b = 0). */
  relativeResidual: number;
}

/**
 * Solves -div(a grad u) = f with u = 0 on the boundary, `a` given on the `size` x `size` node grid (its
 * interior values enter the operator). Preconditioned conjugate gradients in Float64; throws naming the
 * residual reached if `maxIterations` pass first. Memory: about 10 arrays of (size - 2)^2 doubles.
 */
export function solveDarcy(a: ArrayLike<number>, size: number, options: DarcySolveOptions = {}): DarcySolution {
  const f = options.f ?? DARCY_DEFAULTS.forcing;
  checkGrid('solveDarcy', size, { a, f });
  for (let k = 0; k < a.length; k++) {
    if (!(a[k]! > 0) || !Number.isFinite(a[k]!)) throw new RangeError(`solveDarcy: coefficient a[${k}] = ${a[k]} is not a positive finite number`);
  }
  const N = size - 2;
  const n = N * N;
  const h = 1 / (size - 1);
  const tolerance = options.tolerance ?? 1e-10;
  if (!(tolerance > 0)) throw new RangeError(`solveDarcy: tolerance must be positive, got ${tolerance}`);
  const maxIterations = options.maxIterations ?? Math.max(500, 20 * size);
  if (!Number.isInteger(maxIterations) || maxIterations < 1) throw new RangeError(`solveDarcy: maxIterations must be a positive integer, got ${maxIterations}`);
  if (options.preconditioner !== undefined && options.preconditioner !== 'jacobi' && options.preconditioner !== 'ic0') {
    throw new RangeError(`solveDarcy: preconditioner must be 'ic0' or 'jacobi', got ${String(options.preconditioner)}`);
  }
  const { cx, cy } = faceCoefficients(a, size);
  // the operator scaled by h^2: A p = sum over faces c (u_p - u_neighbour), boundary neighbours 0
  const diag = new Float64Array(n);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      diag[i * N + j] = cx[i * N + j]! + cx[(i + 1) * N + j]! + cy[i * (N + 1) + j]! + cy[i * (N + 1) + j + 1]!;
    }
  }
  const apply = (x: Float64Array, out: Float64Array): void => {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        const p = i * N + j;
        let s = diag[p]! * x[p]!;
        if (i > 0) s -= cx[i * N + j]! * x[p - N]!;
        if (i < N - 1) s -= cx[(i + 1) * N + j]! * x[p + N]!;
        if (j > 0) s -= cy[i * (N + 1) + j]! * x[p - 1]!;
        if (j < N - 1) s -= cy[i * (N + 1) + j + 1]! * x[p + 1]!;
        out[p] = s;
      }
    }
  };
  const b = new Float64Array(n);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) b[i * N + j] = h * h * (typeof f === 'number' ? f : f[(i + 1) * size + j + 1]!);
  }
  const precondition = options.preconditioner === 'jacobi' ? jacobi(diag) : ic0(diag, cx, cy, N);

  const x = new Float64Array(n);
  const r = Float64Array.from(b);
  const z = new Float64Array(n);
  const d = new Float64Array(n);
  const q = new Float64Array(n);
  const bNorm = Math.sqrt(dot(b, b));
  const solution = (iterations: number, relativeResidual: number): DarcySolution => {
    const u = new Float64Array(size * size);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) u[(i + 1) * size + j + 1] = x[i * N + j]!;
    return { u, iterations, relativeResidual };
  };
  if (bNorm === 0) return solution(0, 0);
  const target = tolerance * bNorm;
  let iterations = 0;
  let trueResidual = bNorm;
  // outer loop: restarts from the true residual if CG's recursive residual has drifted below it
  for (let restart = 0; ; restart++) {
    precondition(r, z);
    d.set(z);
    let rz = dot(r, z);
    let rNorm = Math.sqrt(dot(r, r));
    while (rNorm > target && iterations < maxIterations) {
      apply(d, q);
      const alpha = rz / dot(d, q);
      for (let p = 0; p < n; p++) {
        x[p] += alpha * d[p]!;
        r[p] -= alpha * q[p]!;
      }
      iterations++;
      rNorm = Math.sqrt(dot(r, r));
      if (rNorm <= target) break;
      precondition(r, z);
      const rzNew = dot(r, z);
      const beta = rzNew / rz;
      rz = rzNew;
      for (let p = 0; p < n; p++) d[p] = z[p]! + beta * d[p]!;
    }
    apply(x, q);
    for (let p = 0; p < n; p++) r[p] = b[p]! - q[p]!;
    trueResidual = Math.sqrt(dot(r, r));
    if (trueResidual <= target) return solution(iterations, trueResidual / bNorm);
    if (iterations >= maxIterations || restart >= 5) break;
  }
  throw new Error(
    `solveDarcy: PCG did not converge on the ${size}x${size} grid: relative residual ${(trueResidual / bNorm).toExponential(3)} ` +
      `after ${iterations} iterations (tolerance ${tolerance}, maxIterations ${maxIterations}); raise maxIterations or the tolerance`,
  );
}

function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let p = 0; p < x.length; p++) s += x[p]! * y[p]!;
  return s;
}

function jacobi(diag: Float64Array): (r: Float64Array, z: Float64Array) => void {
  const inv = diag.map((v) => 1 / v);
  return (r, z) => {
    for (let p = 0; p < r.length; p++) z[p] = r[p]! * inv[p]!;
  };
}

/**
 * IC(0) of the 5-point matrix in natural order (p = i N + j): M = (D + L) D^-1 (D + L^T), L the strictly lower
 * part of A, d_p = A_pp - A_{p,p-1}^2 / d_{p-1} - A_{p,p-N}^2 / d_{p-N}. Positive for this M-matrix.
 */
function ic0(diag: Float64Array, cx: Float64Array, cy: Float64Array, N: number): (r: Float64Array, z: Float64Array) => void {
  const n = N * N;
  const dd = new Float64Array(n);
  // off-diagonal magnitudes: west (p - N) and south (p - 1) couplings of p
  const west = new Float64Array(n);
  const south = new Float64Array(n);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const p = i * N + j;
      west[p] = i > 0 ? cx[i * N + j]! : 0;
      south[p] = j > 0 ? cy[i * (N + 1) + j]! : 0;
      let v = diag[p]!;
      if (i > 0) v -= (west[p]! * west[p]!) / dd[p - N]!;
      if (j > 0) v -= (south[p]! * south[p]!) / dd[p - 1]!;
      dd[p] = v;
    }
  }
  return (r, z) => {
    // forward: (D + L) y = r, with L entries -west, -south
    for (let p = 0; p < n; p++) {
      let s = r[p]!;
      if (p >= N) s += west[p]! * z[p - N]!;
      if (p % N !== 0) s += south[p]! * z[p - 1]!;
      z[p] = s / dd[p]!;
    }
    // backward: (D + L^T) z = D y  ->  z_p = y_p + (west[p+N] z_{p+N} + south[p+1] z_{p+1}) / d_p
    for (let p = n - 1; p >= 0; p--) {
      let s = 0;
      if (p + N < n) s += west[p + N]! * z[p + N]!;
      if ((p + 1) % N !== 0) s += south[p + 1]! * z[p + 1]!;
      z[p] = z[p]! + s / dd[p]!;
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// One benchmark sample

export interface DarcySampleOptions extends GaussianRandomFieldOptions {
  /** Nodes per axis, boundary included (N = size - 2 unknowns per axis). */
  size: number;
  seed: number;
  /** PCG tolerance (default 1e-10). */
  tolerance?: number;
}

/** A benchmark pair: coefficient and solution on the node grid, with the solver's report. */
export interface DarcySample {
  a: Float64Array;
  u: Float64Array;
  iterations: number;
  relativeResidual: number;
}

/** One sample of the benchmark: a = 12/3 thresholded field for `seed`, u solving -div(a grad u) = 1, u = 0 on the boundary. */
export function darcySample(options: DarcySampleOptions): DarcySample {
  const a = darcyCoefficient(options.size, options.seed, options);
  const { u, iterations, relativeResidual } = solveDarcy(a, options.size, { tolerance: options.tolerance });
  return { a, u, iterations, relativeResidual };
}

/** The file stem of a Darcy parameter set: `darcy_flow_alpha_2_tau_3`. */
export function darcyFileStem(alpha: number, tau: number): string {
  return `darcy_flow_alpha_${alpha}_tau_${tau}`;
}
