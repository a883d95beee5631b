/**
 * Small dense linear algebra in double precision on row-major `Float64Array`s, for the preconditioners of SOAP and
 * PSGD-Kron (matrices a few hundred wide at most, refreshed every few steps: plain JavaScript beats a round of
 * small backend ops there). An n x n matrix `a` holds a[i * n + j] at row i, column j.
 *
 * - `symmetricEigen`: A = V diag(w) V^T by cyclic Jacobi rotations (each rotation zeroes one off-diagonal pair;
 *   sweeps until the off-diagonal mass is below 1e-14 of the total, O(n^3) per sweep, a handful of sweeps).
 * - `orthonormalize`: the Q of A = QR by Householder reflections (H_k = I - 2 v v^T / v^T v zeroes column k
 *   below the diagonal; Q = H_0 H_1 ... H_{n-1}), columns signed so that R's diagonal is non-negative.
 * - `invertUpperTriangular`: U^-1 by back substitution, column by column (U^-1 is upper triangular too).
 */

/** Eigen-decomposition of a symmetric matrix: `values[k]` with eigenvector column k of `vectors` (row-major). */
export interface SymmetricEigen {
  values: Float64Array;
  vectors: Float64Array;
}

function checkSquare(what: string, a: ArrayLike<number>, n: number): void {
  if (!Number.isInteger(n) || n < 1 || a.length !== n * n) {
    throw new Error(`${what}: expected an ${n} x ${n} matrix (${n * n} values), got ${a.length} values`);
  }
}

/**
 * Eigenvalues and eigenvectors of the symmetric n x n matrix `a` (only its upper triangle is read), sorted by
 * decreasing eigenvalue. Throws when the sweeps do not converge (non-finite input).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  checkSquare('symmetricEigen', a, n);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) m[i * n + j] = m[j * n + i] = a[i * n + j]!;
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let k = 0; k < n * n; k++) total += m[k]! * m[k]!;
  if (!Number.isFinite(total)) throw new Error('symmetricEigen: the matrix has non-finite entries');
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += 2 * m[i * n + j]! ** 2;
    if (off <= 1e-28 * total || off === 0) break;
    if (sweep === 59) throw new Error(`symmetricEigen: no convergence after 60 sweeps (off-diagonal ${off} of ${total})`);
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const app = m[p * n + p]!;
        const aqq = m[q * n + q]!;
        // tan of the rotation angle: the smaller root of t^2 + 2 theta t - 1 = 0
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // columns p and q
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          // rows p and q
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        m[p * n + q] = m[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y]! - m[x * n + x]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    values[to] = m[from * n + from]!;
    for (let k = 0; k < n; k++) vectors[k * n + to] = v[k * n + from]!;
  });
  return { values, vectors };
}

/**
 * The orthogonal factor Q of the QR decomposition of the n x n matrix `a` (Householder), with R's diagonal made
 * non-negative, so Q's column k spans what columns 0..k of `a` add to the previous ones. Rank-deficient input
 * still gives an orthogonal Q (a zero column gets an arbitrary unit direction orthogonal to the others).
 */
export function orthonormalize(a: ArrayLike<number>, n: number): Float64Array {
  checkSquare('orthonormalize', a, n);
  const r = Float64Array.from(a as ArrayLike<number>);
  const vs: Float64Array[] = [];
  const signs = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    let norm = 0;
    for (let i = k; i < n; i++) norm += r[i * n + k]! ** 2;
    norm = Math.sqrt(norm);
    const v = new Float64Array(n);
    const x0 = r[k * n + k]!;
    const alpha = x0 >= 0 ? -norm : norm; // the reflection sends column k to alpha e_k
    for (let i = k; i < n; i++) v[i] = r[i * n + k]!;
    v[k] = x0 - alpha;
    let vv = 0;
    for (let i = k; i < n; i++) vv += v[i]! * v[i]!;
    if (vv > 0) {
      for (let j = k; j < n; j++) {
        let dot = 0;
        for (let i = k; i < n; i++) dot += v[i]! * r[i * n + j]!;
        const f = (2 * dot) / vv;
        for (let i = k; i < n; i++) r[i * n + j] = r[i * n + j]! - f * v[i]!;
      }
    }
    vs.push(v);
    signs[k] = vv > 0 && alpha < 0 ? -1 : 1;
  }
  // Q = H_0 ... H_{n-1} applied to the identity, right to left
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k]!;
    let vv = 0;
    for (let i = k; i < n; i++) vv += v[i]! * v[i]!;
    if (vv === 0) continue;
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = k; i < n; i++) dot += v[i]! * q[i * n + j]!;
      const f = (2 * dot) / vv;
      for (let i = k; i < n; i++) q[i * n + j] = q[i * n + j]! - f * v[i]!;
    }
  }
  // R's diagonal is alpha_k: flip the columns whose alpha is negative
  for (let k = 0; k < n; k++) if (signs[k]! < 0) for (let i = 0; i < n; i++) q[i * n + k] = -q[i * n + k]!;
  return q;
}

/** The inverse of the upper-triangular n x n matrix `u` (its lower triangle is ignored). Throws on a zero pivot. */
export function invertUpperTriangular(u: ArrayLike<number>, n: number): Float64Array {
  checkSquare('invertUpperTriangular', u, n);
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    if (!(Math.abs(u[i * n + i]!) > 0)) throw new Error(`invertUpperTriangular: pivot ${i} is ${u[i * n + i]}, the matrix is singular`);
  }
  for (let col = 0; col < n; col++) {
    // solve U x = e_col for rows col, col-1, ..., 0 (x is zero below col)
    for (let i = col; i >= 0; i--) {
      let s = i === col ? 1 : 0;
      for (let k = i + 1; k <= col; k++) s -= u[i * n + k]! * x[k * n + col]!;
      x[i * n + col] = s / u[i * n + i]!;
    }
  }
  return x;
}
