/**
 * Two-dimensional Rayleigh-Benard convection (Boussinesq) on [0, Lx] x [0, 1], periodic in x, no-slip walls,
 * buoyancy b = 1 at the bottom and b = 0 at the top, as in The Well:
 *   db/dt + u.grad b = kappa lap b,   du/dt + u.grad u = -grad p + nu lap u + b e_y,   div u = 0,
 * with kappa = (Ra Pr)^-1/2 and nu = (Ra / Pr)^-1/2 (free-fall units).
 *
 * Discretisation: a staggered (MAC) finite-volume grid, uniform in x and stretched in y so that the cell centres
 * are the Chebyshev-Gauss nodes The Well's files use (finer near the walls, where the boundary layers are).
 * b and p live at cell centres, u on x-faces, v on y-faces. Advection is in flux form with third-order
 * upwind-biased (QUICK) face values (weights precomputed for the stretched grid). Time stepping is semi-implicit
 * second-order backward differentiation (SBDF2): advection extrapolated explicitly, diffusion implicit; the
 * incompressibility constraint by an incremental pressure-correction projection in rotational form. Every
 * implicit solve (diffusion and the pressure Poisson equation) is diagonal in x after a real FFT, leaving one
 * tridiagonal system in y per Fourier mode; because the Poisson operator is exactly the product of the discrete
 * divergence and gradient, the projected velocity is divergence-free to round-off. Steps are CFL-adaptive and
 * land exactly on output times (a first-order step restarts the scheme whenever the step size changes).
 *
 * Memory: about 30 arrays of nx * ny doubles; nothing is allocated per step.
 */
import { RealRows } from './fft.js';
import { createRng } from '../streams/random.js';

export interface RayleighBenardOptions {
  /** Cells along x (a power of two) and y. The Well: 512 x 128. */
  nx: number;
  ny: number;
  rayleigh: number;
  prandtl: number;
  /** Horizontal period (The Well: 4). */
  lx?: number;
  /** Courant number of the explicit advection (default 0.35). */
  cfl?: number;
  /** Largest step (default 0.05 free-fall times). */
  maxStep?: number;
}

/** Snapshot fields at cell centres, each (nx, ny) with x the first axis (The Well's layout). */
export interface RayleighBenardFields {
  buoyancy: Float64Array;
  pressure: Float64Array;
  velocityX: Float64Array;
  velocityY: Float64Array;
}

/** The Chebyshev-Gauss nodes on (0, 1), ascending: the y coordinates of The Well's Rayleigh-Benard grid. */
export function chebyshevGaussNodes(n: number): Float64Array {
  const y = new Float64Array(n);
  for (let j = 0; j < n; j++) y[j] = 0.5 * (1 - Math.cos((Math.PI * (j + 0.5)) / n));
  return y;
}

/** Quadratic upwind interpolation weights onto `s` from nodes (z[a], z[a+1], z[a+2]). */
function lagrange3(z: Float64Array, a: number, s: number): [number, number, number] {
  const [x0, x1, x2] = [z[a], z[a + 1], z[a + 2]];
  return [
    ((s - x1) * (s - x2)) / ((x0 - x1) * (x0 - x2)),
    ((s - x0) * (s - x2)) / ((x1 - x0) * (x1 - x2)),
    ((s - x0) * (s - x1)) / ((x2 - x0) * (x2 - x1)),
  ];
}

/**
 * Upwind-biased interpolation tables for faces between consecutive nodes z[k], z[k+1] (k = 0..K-2) at
 * positions s[k]: for positive flow nodes (k-1, k, k+1), for negative flow (k, k+1, k+2), falling back to
 * linear interpolation where a stencil would leave the node set. Stored as 3 weights + first node per face.
 */
function upwindTable(z: Float64Array, s: Float64Array): { pos: Float64Array; neg: Float64Array; posAt: Int32Array; negAt: Int32Array } {
  const faces = s.length;
  const pos = new Float64Array(faces * 3);
  const neg = new Float64Array(faces * 3);
  const posAt = new Int32Array(faces);
  const negAt = new Int32Array(faces);
  for (let k = 0; k < faces; k++) {
    const t = (s[k] - z[k]) / (z[k + 1] - z[k]);
    const linear: [number, number, number] = [1 - t, t, 0];
    if (k - 1 >= 0) {
      pos.set(lagrange3(z, k - 1, s[k]), 3 * k);
      posAt[k] = k - 1;
    } else {
      pos.set(linear, 3 * k);
      posAt[k] = k;
    }
    if (k + 2 <= z.length - 1) {
      neg.set(lagrange3(z, k, s[k]), 3 * k);
    } else {
      neg.set(linear, 3 * k);
    }
    negAt[k] = k;
  }
  return { pos, neg, posAt, negAt };
}

/** QUICK face value between nodes i and i+1 of a periodic row of n values starting at `row`. */
function quickX(q: Float64Array, row: number, i: number, n: number, positive: boolean): number {
  const ip1 = i === n - 1 ? 0 : i + 1;
  if (positive) return 0.125 * (-q[row + (i === 0 ? n - 1 : i - 1)] + 6 * q[row + i] + 3 * q[row + ip1]);
  return 0.125 * (3 * q[row + i] + 6 * q[row + ip1] - q[row + (ip1 === n - 1 ? 0 : ip1 + 1)]);
}

/** Precomputed Thomas-algorithm factors of one tridiagonal system per Fourier mode. */
interface Tridiagonal {
  n: number;
  modes: number;
  sub: Float64Array; // per row (shared by modes)
  cp: Float64Array; // modes x n modified super-diagonal
  inv: Float64Array; // modes x n inverse pivots
}

export class RayleighBenardSolver {
  readonly nx: number;
  readonly ny: number;
  readonly lx: number;
  readonly rayleigh: number;
  readonly prandtl: number;
  readonly kappa: number;
  readonly nu: number;
  readonly dx: number;
  readonly cfl: number;
  readonly maxStep: number;
  /** Cell-centre y (Chebyshev-Gauss nodes), y-face positions (ny + 1), cell heights, centre spacings. */
  readonly yc: Float64Array;
  readonly yf: Float64Array;
  readonly hy: Float64Array;
  readonly dc: Float64Array; // dc[j] = yc[j] - yc[j-1], j = 1..ny-1 (dc[0] unused)
  time = 0;
  steps = 0;
  // state: rows in y, x contiguous
  readonly b: Float64Array; // ny x nx
  readonly u: Float64Array; // ny x nx, at (x_{i+1/2}, yc_j)
  readonly v: Float64Array; // (ny+1) x nx, at (x_i, yf_j); rows 0 and ny are walls (0)
  readonly p: Float64Array; // ny x nx
  // history for SBDF2
  private readonly bOld: Float64Array;
  private readonly uOld: Float64Array;
  private readonly vOld: Float64Array;
  private readonly nb: Float64Array;
  private readonly nu_: Float64Array;
  private readonly nv: Float64Array;
  private readonly nbOld: Float64Array;
  private readonly nuOld: Float64Array;
  private readonly nvOld: Float64Array;
  private hasHistory = false;
  private lastDt = 0;
  private lastOrder = 0;
  // scratch
  private readonly rhs: Float64Array;
  private readonly rhsV: Float64Array;
  private readonly fx: Float64Array;
  private readonly fy: Float64Array;
  private readonly sr: Float64Array;
  private readonly si: Float64Array;
  private readonly rows: RealRows;
  private readonly lambda: Float64Array; // x-eigenvalues of the 3-point Laplacian per mode
  private readonly cellTable: ReturnType<typeof upwindTable>;
  private readonly faceTable: ReturnType<typeof upwindTable>;
  private readonly vcWeight: Float64Array; // weight of v[j+1] when interpolating v to yc[j]
  private opB: Tridiagonal | null = null;
  private opU: Tridiagonal | null = null;
  private opV: Tridiagonal | null = null;
  private readonly opP: Tridiagonal;
  // y-operator coefficients
  private readonly cellLo: Float64Array; // coefficient of q[j-1] (or wall) in (Ly q)_j
  private readonly cellHi: Float64Array;
  private readonly faceLo: Float64Array;
  private readonly faceHi: Float64Array;

  constructor(options: RayleighBenardOptions) {
    const { nx, ny, rayleigh, prandtl } = options;
    if (!Number.isInteger(nx) || nx < 4 || (nx & (nx - 1)) !== 0)
      throw new RangeError(`RayleighBenardSolver: nx must be a power of two >= 4, got ${nx}`);
    if (!Number.isInteger(ny) || ny < 4) throw new RangeError(`RayleighBenardSolver: ny must be an integer >= 4, got ${ny}`);
    if (!(rayleigh > 0) || !(prandtl > 0))
      throw new RangeError(`RayleighBenardSolver: rayleigh and prandtl must be positive, got ${rayleigh}, ${prandtl}`);
    this.nx = nx;
    this.ny = ny;
    this.lx = options.lx ?? 4;
    this.rayleigh = rayleigh;
    this.prandtl = prandtl;
    this.kappa = 1 / Math.sqrt(rayleigh * prandtl);
    this.nu = 1 / Math.sqrt(rayleigh / prandtl);
    this.dx = this.lx / nx;
    this.cfl = options.cfl ?? 0.35;
    this.maxStep = options.maxStep ?? 0.05;

    this.yc = chebyshevGaussNodes(ny);
    this.yf = new Float64Array(ny + 1);
    this.yf[ny] = 1;
    for (let j = 1; j < ny; j++) this.yf[j] = 0.5 * (this.yc[j - 1] + this.yc[j]);
    this.hy = new Float64Array(ny);
    for (let j = 0; j < ny; j++) this.hy[j] = this.yf[j + 1] - this.yf[j];
    this.dc = new Float64Array(ny);
    for (let j = 1; j < ny; j++) this.dc[j] = this.yc[j] - this.yc[j - 1];

    const cells = nx * ny;
    const arr = (n = cells): Float64Array => new Float64Array(n);
    this.b = arr();
    this.u = arr();
    this.v = arr(cells + nx);
    this.p = arr();
    this.bOld = arr();
    this.uOld = arr();
    this.vOld = arr(cells + nx);
    this.nb = arr();
    this.nu_ = arr();
    this.nv = arr(cells + nx);
    this.nbOld = arr();
    this.nuOld = arr();
    this.nvOld = arr(cells + nx);
    this.rhs = arr();
    this.rhsV = arr(cells + nx);
    this.fx = arr(cells + nx);
    this.fy = arr(cells + 2 * nx);
    this.rows = new RealRows(nx);
    const modes = this.rows.modes;
    this.sr = arr((ny + 1) * modes);
    this.si = arr((ny + 1) * modes);
    this.lambda = new Float64Array(modes);
    for (let m = 0; m < modes; m++) this.lambda[m] = -(4 / this.dx ** 2) * Math.sin((Math.PI * m) / nx) ** 2;

    // upwind tables: cell nodes yc at interior faces yf[1..ny-1]; face nodes yf at centres yc[0..ny-1]
    this.cellTable = upwindTable(this.yc, this.yf.subarray(1, ny));
    this.faceTable = upwindTable(this.yf, this.yc);
    this.vcWeight = new Float64Array(ny);
    for (let j = 0; j < ny; j++) this.vcWeight[j] = (this.yc[j] - this.yf[j]) / this.hy[j];

    // y second-derivative coefficients. Cells: wall distance yc[0] and 1 - yc[ny-1]
    this.cellLo = new Float64Array(ny);
    this.cellHi = new Float64Array(ny);
    for (let j = 0; j < ny; j++) {
      const below = j === 0 ? this.yc[0] : this.dc[j];
      const above = j === ny - 1 ? 1 - this.yc[ny - 1] : this.dc[j + 1];
      this.cellLo[j] = 1 / (below * this.hy[j]);
      this.cellHi[j] = 1 / (above * this.hy[j]);
    }
    // faces j = 1..ny-1 (index j), neighbours at distance hy[j-1] below and hy[j] above
    this.faceLo = new Float64Array(ny);
    this.faceHi = new Float64Array(ny);
    for (let j = 1; j < ny; j++) {
      this.faceLo[j] = 1 / (this.hy[j - 1] * this.dc[j]);
      this.faceHi[j] = 1 / (this.hy[j] * this.dc[j]);
    }
    this.opP = this.poissonOperator();
  }

  /** Linear conduction profile plus seeded noise z(1 - z) eps, eps ~ N(0, noise^2); velocity and pressure zero. */
  setInitialState(seed: number, noise = 1e-3, amplitude = 1): void {
    const rng = createRng(seed);
    const { nx, ny } = this;
    for (let j = 0; j < ny; j++) {
      const y = this.yc[j];
      for (let i = 0; i < nx; i++) this.b[j * nx + i] = amplitude * (1 - y) + y * (1 - y) * noise * rng.normal();
    }
    this.u.fill(0);
    this.v.fill(0);
    this.p.fill(0);
    this.time = 0;
    this.steps = 0;
    this.hasHistory = false;
  }

  /** Sets the buoyancy from a function of the cell centre; velocity and pressure zero. */
  setBuoyancy(at: (x: number, y: number) => number): void {
    const { nx, ny } = this;
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) this.b[j * nx + i] = at(i * this.dx, this.yc[j]);
    this.u.fill(0);
    this.v.fill(0);
    this.p.fill(0);
    this.time = 0;
    this.steps = 0;
    this.hasHistory = false;
  }

  private helmholtzCells(alpha: number, beta: number): Tridiagonal {
    const { ny } = this;
    return this.factor(ny, (m, j, row) => {
      row[0] = j > 0 ? -beta * this.cellLo[j] : 0;
      row[1] = alpha - beta * (this.lambda[m] - this.cellLo[j] - this.cellHi[j]);
      row[2] = j < ny - 1 ? -beta * this.cellHi[j] : 0;
    });
  }

  private helmholtzFaces(alpha: number, beta: number): Tridiagonal {
    const n = this.ny - 1; // unknown faces 1..ny-1, row r = face r + 1
    return this.factor(n, (m, r, row) => {
      const j = r + 1;
      row[0] = r > 0 ? -beta * this.faceLo[j] : 0;
      row[1] = alpha - beta * (this.lambda[m] - this.faceLo[j] - this.faceHi[j]);
      row[2] = r < n - 1 ? -beta * this.faceHi[j] : 0;
    });
  }

  private poissonOperator(): Tridiagonal {
    const { ny } = this;
    return this.factor(ny, (m, j, row) => {
      // zero-flux walls: drop the wall terms
      const lo = j > 0 ? this.cellLo[j] : 0;
      const hi = j < ny - 1 ? this.cellHi[j] : 0;
      if (m === 0 && j === 0) {
        // pin the singular mean mode
        row[0] = 0;
        row[1] = 1;
        row[2] = 0;
        return;
      }
      row[0] = lo;
      row[1] = this.lambda[m] - lo - hi;
      row[2] = hi;
    });
  }

  private factor(n: number, fill: (m: number, j: number, row: Float64Array) => void): Tridiagonal {
    const modes = this.rows.modes;
    const sub = new Float64Array(modes * n);
    const cp = new Float64Array(modes * n);
    const inv = new Float64Array(modes * n);
    const row = new Float64Array(3);
    for (let m = 0; m < modes; m++) {
      let prevCp = 0;
      for (let j = 0; j < n; j++) {
        fill(m, j, row);
        const a = row[0];
        const d = row[1];
        const c = row[2];
        const pivot = d - a * prevCp;
        if (pivot === 0) throw new Error('RayleighBenardSolver: singular tridiagonal system');
        sub[m * n + j] = a;
        inv[m * n + j] = 1 / pivot;
        prevCp = c / pivot;
        cp[m * n + j] = prevCp;
      }
    }
    return { n, modes, sub, cp, inv };
  }

  /** Solves in place on spectra rows [0, n) (row stride = modes) for every mode, real and imaginary parts. */
  private solve(op: Tridiagonal, re: Float64Array, im: Float64Array): void {
    const { n, modes, sub, cp, inv } = op;
    for (let m = 0; m < modes; m++) {
      const base = m * n;
      let pr = 0;
      let pi = 0;
      for (let j = 0; j < n; j++) {
        const a = sub[base + j];
        const k = j * modes + m;
        pr = (re[k] - a * pr) * inv[base + j];
        pi = (im[k] - a * pi) * inv[base + j];
        re[k] = pr;
        im[k] = pi;
      }
      for (let j = n - 2; j >= 0; j--) {
        const k = j * modes + m;
        const c = cp[base + j];
        re[k] -= c * re[k + modes];
        im[k] -= c * im[k + modes];
      }
    }
  }

  /** Advection terms -div(u q) for b, u and v into nb, nu_, nv (flux form, QUICK face values). */
  private advection(): void {
    const { nx, ny, dx, b, u, v, fx, fy, hy, dc } = this;
    const ct = this.cellTable;
    const ft = this.faceTable;
    // ---- buoyancy (cells) ----
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const vel = u[row + i];
        fx[row + i] = vel * quickX(b, row, i, nx, vel >= 0);
      }
    }
    fy.fill(0, 0, nx);
    fy.fill(0, ny * nx, (ny + 1) * nx);
    for (let j = 1; j < ny; j++) {
      const k = j - 1; // face index in the cell table
      for (let i = 0; i < nx; i++) {
        const vel = v[j * nx + i];
        const w = vel >= 0 ? ct.pos : ct.neg;
        const a = vel >= 0 ? ct.posAt[k] : ct.negAt[k];
        fy[j * nx + i] = vel * (w[3 * k] * b[a * nx + i] + w[3 * k + 1] * b[(a + 1) * nx + i] + w[3 * k + 2] * (a + 2 < ny ? b[(a + 2) * nx + i] : 0));
      }
    }
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const w = i === 0 ? nx - 1 : i - 1;
        this.nb[row + i] = -(fx[row + i] - fx[row + w]) / dx - (fy[row + nx + i] - fy[row + i]) / hy[j];
      }
    }
    // ---- u (x-faces): x-fluxes at cell centres i (between u-nodes i-1 and i), y-fluxes at (x_{i+1/2}, yf_j) ----
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const w = i === 0 ? nx - 1 : i - 1;
        const vel = 0.5 * (u[row + w] + u[row + i]);
        fx[row + i] = vel * quickX(u, row, w, nx, vel >= 0);
      }
    }
    for (let j = 1; j < ny; j++) {
      const k = j - 1;
      for (let i = 0; i < nx; i++) {
        const e = i === nx - 1 ? 0 : i + 1;
        const vel = 0.5 * (v[j * nx + i] + v[j * nx + e]);
        const w = vel >= 0 ? ct.pos : ct.neg;
        const a = vel >= 0 ? ct.posAt[k] : ct.negAt[k];
        fy[j * nx + i] = vel * (w[3 * k] * u[a * nx + i] + w[3 * k + 1] * u[(a + 1) * nx + i] + w[3 * k + 2] * (a + 2 < ny ? u[(a + 2) * nx + i] : 0));
      }
    }
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const e = i === nx - 1 ? 0 : i + 1;
        this.nu_[row + i] = -(fx[row + e] - fx[row + i]) / dx - (fy[row + nx + i] - fy[row + i]) / hy[j];
      }
    }
    // ---- v (y-faces 1..ny-1): x-fluxes at (x_{i+1/2}, yf_j), y-fluxes at cell centres yc_j ----
    for (let j = 1; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const vel = 0.5 * (u[row - nx + i] + u[row + i]);
        fx[row + i] = vel * quickX(v, row, i, nx, vel >= 0);
      }
    }
    for (let j = 0; j < ny; j++) {
      const t = this.vcWeight[j];
      for (let i = 0; i < nx; i++) {
        const vel = (1 - t) * v[j * nx + i] + t * v[(j + 1) * nx + i];
        const w = vel >= 0 ? ft.pos : ft.neg;
        const a = vel >= 0 ? ft.posAt[j] : ft.negAt[j];
        fy[j * nx + i] = vel * (w[3 * j] * v[a * nx + i] + w[3 * j + 1] * v[(a + 1) * nx + i] + w[3 * j + 2] * (a + 2 <= ny ? v[(a + 2) * nx + i] : 0));
      }
    }
    for (let j = 1; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const w = i === 0 ? nx - 1 : i - 1;
        this.nv[row + i] = -(fx[row + i] - fx[row + w]) / dx - (fy[row + i] - fy[row - nx + i]) / dc[j];
      }
    }
  }

  /** Largest stable step for the current velocity (capped by maxStep). */
  stableStep(): number {
    const { nx, ny, u, v, dx, hy } = this;
    let rate = 0;
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const r = Math.abs(u[j * nx + i]) / dx + Math.max(Math.abs(v[j * nx + i]), Math.abs(v[(j + 1) * nx + i])) / hy[j];
        if (r > rate) rate = r;
      }
    }
    if (!Number.isFinite(rate)) throw new Error(`RayleighBenardSolver: the velocity is not finite at t=${this.time}`);
    return rate > 0 ? Math.min(this.maxStep, this.cfl / rate) : this.maxStep;
  }

  /** Advances to exactly time `t` with equal CFL-limited steps per call; returns the number of steps. */
  advanceTo(t: number): number {
    let taken = 0;
    while (this.time < t) {
      const remaining = t - this.time;
      const stable = this.stableStep();
      // keep the previous step size while it is stable and not wastefully small, so SBDF2 keeps its history and
      // its factorisations; otherwise aim at 80% of the stable step so the next few steps can keep it too
      const target = this.lastDt > 0 && this.lastDt <= stable && this.lastDt >= 0.5 * stable ? this.lastDt : 0.8 * stable;
      const n = Math.max(1, Math.ceil(remaining / target - 1e-9));
      let dt = remaining / n;
      if (dt > stable * (1 + 1e-9)) dt = remaining / Math.ceil(remaining / stable);
      const last = dt >= remaining * (1 - 1e-12);
      this.step(last ? remaining : dt);
      if (last) this.time = t;
      taken++;
    }
    return taken;
  }

  /** One SBDF step (second order when the previous step had the same size, else first order). */
  step(dt: number): void {
    const { nx, ny, kappa, nu, b, u, v, p, dx, dc, sr, si, rows } = this;
    // equal up to round-off (remaining / n inside an output interval) counts as the same step
    const sameDt = Math.abs(dt - this.lastDt) <= 1e-12 * dt;
    const order = this.hasHistory && sameDt ? 2 : 1;
    const alpha = order === 2 ? 1.5 / dt : 1 / dt;
    if (order !== this.lastOrder || !sameDt || !this.opB) {
      this.opB = this.helmholtzCells(alpha, kappa);
      this.opU = this.helmholtzCells(alpha, nu);
      this.opV = this.helmholtzFaces(alpha, nu);
    }
    this.advection();
    const cells = nx * ny;
    const c1 = order === 2 ? 2 / dt : 1 / dt;
    const c0 = order === 2 ? -0.5 / dt : 0;
    const e1 = order === 2 ? 2 : 1;
    const e0 = order === 2 ? -1 : 0;
    const { rhs, rhsV, bOld, uOld, vOld, nb, nu_, nv, nbOld, nuOld, nvOld } = this;

    // ---- buoyancy ----
    for (let k = 0; k < cells; k++) rhs[k] = c1 * b[k] + c0 * bOld[k] + e1 * nb[k] + e0 * nbOld[k];
    // Dirichlet wall values b = 1 (bottom), b = 0 (top) enter the mean mode through the wall fluxes
    for (let i = 0; i < nx; i++) rhs[i] += kappa * this.cellLo[0] * 1;
    rows.forward(rhs, 0, ny, sr, si);
    this.solve(this.opB!, sr, si);
    bOld.set(b);
    rows.inverse(sr, si, ny, b, 0);

    // ---- u* ----
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const e = i === nx - 1 ? 0 : i + 1;
        const k = row + i;
        rhs[k] = c1 * u[k] + c0 * uOld[k] + e1 * nu_[k] + e0 * nuOld[k] - (p[row + e] - p[k]) / dx;
      }
    }
    rows.forward(rhs, 0, ny, sr, si);
    this.solve(this.opU!, sr, si);
    uOld.set(u);
    rows.inverse(sr, si, ny, u, 0);

    // ---- v* (faces 1..ny-1), buoyancy at the new level interpolated to the faces ----
    for (let j = 1; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const k = row + i;
        rhsV[k - nx] =
          c1 * v[k] + c0 * vOld[k] + e1 * nv[k] + e0 * nvOld[k] - (p[k] - p[k - nx]) / dc[j] + 0.5 * (b[k] + b[k - nx]);
      }
    }
    rows.forward(rhsV, 0, ny - 1, sr, si);
    this.solve(this.opV!, sr, si);
    vOld.set(v);
    rows.inverse(sr, si, ny - 1, v, 1);

    // ---- projection: D G phi = alpha D u*, u = u* - G phi / alpha, p += phi - nu D u* ----
    const div = rhs;
    this.divergence(div);
    for (let k = 0; k < cells; k++) div[k] *= alpha;
    rows.forward(div, 0, ny, sr, si);
    sr[0] = 0; // pinned mean mode (row 0, mode 0)
    si[0] = 0;
    this.solve(this.opP, sr, si);
    const phi = this.fx;
    rows.inverse(sr, si, ny, phi, 0);
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const e = i === nx - 1 ? 0 : i + 1;
        u[row + i] -= (phi[row + e] - phi[row + i]) / (alpha * dx);
      }
    }
    for (let j = 1; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) v[row + i] -= (phi[row + i] - phi[row - nx + i]) / (alpha * dc[j]);
    }
    // rotational correction uses D u* = div / alpha
    for (let k = 0; k < cells; k++) p[k] += phi[k] - (nu * div[k]) / alpha;

    nbOld.set(nb);
    nuOld.set(nu_);
    nvOld.set(nv);
    this.hasHistory = true;
    this.lastDt = dt;
    this.lastOrder = order;
    this.time += dt;
    this.steps++;
  }

  /** Discrete divergence at cell centres into `out` (ny x nx). */
  divergence(out: Float64Array = new Float64Array(this.nx * this.ny)): Float64Array {
    const { nx, ny, u, v, dx, hy } = this;
    for (let j = 0; j < ny; j++) {
      const row = j * nx;
      for (let i = 0; i < nx; i++) {
        const w = i === 0 ? nx - 1 : i - 1;
        out[row + i] = (u[row + i] - u[row + w]) / dx + (v[row + nx + i] - v[row + i]) / hy[j];
      }
    }
    return out;
  }

  /** Largest |div u| times the cell size over the largest |velocity|: a dimensionless divergence measure. */
  relativeDivergence(): number {
    const d = this.divergence();
    let maxDiv = 0;
    for (let k = 0; k < d.length; k++) maxDiv = Math.max(maxDiv, Math.abs(d[k]) * this.hy[Math.floor(k / this.nx)]);
    let maxVel = 0;
    for (const x of this.u) maxVel = Math.max(maxVel, Math.abs(x));
    for (const x of this.v) maxVel = Math.max(maxVel, Math.abs(x));
    return maxVel > 0 ? maxDiv / maxVel : 0;
  }

  /** Nusselt number from the volume-averaged heat flux: 1 + <v b> / kappa (conduction gives exactly 1). */
  nusselt(): number {
    const { nx, ny, v, b } = this;
    let flux = 0;
    for (let j = 1; j < ny; j++) {
      // v b at the faces, weighted by the distance between centres
      let s = 0;
      for (let i = 0; i < nx; i++) s += v[j * nx + i] * 0.5 * (b[j * nx + i] + b[(j - 1) * nx + i]);
      flux += (s / nx) * this.dc[j];
    }
    return 1 + flux / this.kappa;
  }

  /** Nusselt number from the conductive flux through the bottom wall (mean of -db/dy at y = 0). */
  wallNusselt(): number {
    let s = 0;
    for (let i = 0; i < this.nx; i++) s += (1 - this.b[i]) / this.yc[0];
    return s / this.nx;
  }

  /** Kinetic energy per unit area. */
  kineticEnergy(): number {
    const { nx, ny, u, v, hy, dc } = this;
    let e = 0;
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) e += 0.5 * u[j * nx + i] ** 2 * hy[j];
    for (let j = 1; j < ny; j++) for (let i = 0; i < nx; i++) e += 0.5 * v[j * nx + i] ** 2 * dc[j];
    return e / nx;
  }

  /** Writes cell-centred fields (x first axis) into caller-owned arrays at `offset`; pressure with zero mean. */
  writeFields(
    out: {
      buoyancy: Float64Array | Float32Array;
      pressure: Float64Array | Float32Array;
      velocityX: Float64Array | Float32Array;
      velocityY: Float64Array | Float32Array;
    },
    offset = 0,
  ): void {
    const { nx, ny, b, u, v, p, hy } = this;
    let mean = 0;
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) mean += p[j * nx + i] * hy[j];
    mean /= nx;
    for (let i = 0; i < nx; i++) {
      const w = i === 0 ? nx - 1 : i - 1;
      for (let j = 0; j < ny; j++) {
        const o = offset + i * ny + j;
        const k = j * nx + i;
        const t = this.vcWeight[j];
        out.buoyancy[o] = b[k];
        out.pressure[o] = p[k] - mean;
        out.velocityX[o] = 0.5 * (u[k] + u[j * nx + w]);
        out.velocityY[o] = (1 - t) * v[k] + t * v[k + nx];
      }
    }
  }

  fields(): RayleighBenardFields {
    const n = this.nx * this.ny;
    const out = {
      buoyancy: new Float64Array(n),
      pressure: new Float64Array(n),
      velocityX: new Float64Array(n),
      velocityY: new Float64Array(n),
    };
    this.writeFields(out);
    return out;
  }
}

/** The Well's Rayleigh-Benard file stem: `rayleigh_benard_Rayleigh_1e6_Prandtl_1`. */
export function rayleighBenardFileStem(rayleigh: number, prandtl: number): string {
  const ra = rayleigh.toExponential().replace('e+', 'e');
  return `rayleigh_benard_Rayleigh_${ra}_Prandtl_${prandtl}`;
}

export interface RayleighBenardTrajectoryOptions {
  /** Cells across the layer (y); x gets 4x as many (The Well: 128 -> 512 x 128). */
  resolution: number;
  rayleigh: number;
  prandtl: number;
  /** Number of snapshots including the initial one (The Well: 200). */
  snapshots: number;
  /** Time between snapshots (The Well: 0.25). */
  dt: number;
  seed: number;
  /** Standard deviation of the initial noise (The Well: 1e-3). */
  noise?: number;
  /** Amplitude of the linear initial profile, delta b0 (The Well draws from 0.2..1; default 1). */
  amplitude?: number;
  cfl?: number;
}

/** One snapshot of a Rayleigh-Benard trajectory, float32 fields (nx, ny) x-major. */
export interface RayleighBenardSnapshot {
  index: number;
  time: number;
  buoyancy: Float32Array;
  pressure: Float32Array;
  velocityX: Float32Array;
  velocityY: Float32Array;
}

/** Runs one trajectory, yielding each snapshot when reached (double inside, float32 out). */
export function* rayleighBenardTrajectory(options: RayleighBenardTrajectoryOptions): Generator<RayleighBenardSnapshot> {
  const ny = options.resolution;
  const nx = 4 * ny;
  const solver = new RayleighBenardSolver({
    nx,
    ny,
    rayleigh: options.rayleigh,
    prandtl: options.prandtl,
    cfl: options.cfl,
  });
  solver.setInitialState(options.seed, options.noise ?? 1e-3, options.amplitude ?? 1);
  for (let s = 0; s < options.snapshots; s++) {
    const time = s * options.dt;
    solver.advanceTo(time);
    const n = nx * ny;
    const snap: RayleighBenardSnapshot = {
      index: s,
      time,
      buoyancy: new Float32Array(n),
      pressure: new Float32Array(n),
      velocityX: new Float32Array(n),
      velocityY: new Float32Array(n),
    };
    solver.writeFields(snap);
    yield snap;
  }
}
