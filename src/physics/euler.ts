/**
 * Two-dimensional compressible Euler equations of an ideal gas, finite volume on a uniform cartesian grid.
 *
 * Scheme: MUSCL-Hancock (second order in space and time, one stage per step): limited slopes of the primitive
 * variables (density, velocity, pressure), a half-step predictor from the primitive quasi-linear form in both
 * directions at once (unsplit), then HLLC fluxes (Toro, Spruce & Speares 1994) with Einfeldt wave-speed bounds at
 * every face, and a conservative update. Each face flux is added to one cell and subtracted from its neighbour,
 * so periodic runs conserve mass, momentum and energy to round-off. A face state whose reconstructed density or
 * pressure is not positive falls back to the cell average (first order there), which keeps the scheme positive.
 * Steps are CFL-adaptive and shortened so that the solver lands exactly on requested output times.
 *
 * Memory: four conservative arrays, four primitive arrays, eight slope arrays and four predictor arrays of
 * (nx + 4) * (ny + 4) doubles; nothing is allocated per step.
 */

/** Boundary treatment on all four sides. `open` is zero-gradient extrapolation (outflow). */
export type EulerBoundary = 'periodic' | 'open';

/** Slope limiter of the reconstruction. */
export type Limiter = 'minmod' | 'vanleer' | 'mc';

export interface EulerOptions {
  nx: number;
  ny: number;
  /** Ratio of specific heats. */
  gamma: number;
  boundary: EulerBoundary;
  /** Domain lengths (default 1 x 1, The Well's [0,1]^2). */
  lx?: number;
  ly?: number;
  /** Courant number for the unsplit step: dt * max((|u|+c)/dx + (|v|+c)/dy) = cfl. Default 0.7. */
  cfl?: number;
  limiter?: Limiter;
}

/** Primitive state of one region. */
export interface PrimitiveState {
  density: number;
  velocityX: number;
  velocityY: number;
  pressure: number;
}

/** The fields of a snapshot, each (nx, ny) row-major with x the first axis (The Well's layout). */
export interface EulerFields {
  density: Float64Array;
  momentumX: Float64Array;
  momentumY: Float64Array;
  energy: Float64Array;
  pressure: Float64Array;
}

const G = 2; // ghost layers

function limit(kind: number, a: number, b: number): number {
  // kind 0 minmod, 1 van Leer, 2 monotonized central
  if (a * b <= 0) return 0;
  if (kind === 1) return (2 * a * b) / (a + b);
  if (kind === 0) return Math.abs(a) < Math.abs(b) ? a : b;
  const c = 0.5 * (a + b);
  const m = 2 * (Math.abs(a) < Math.abs(b) ? a : b);
  return Math.abs(c) < Math.abs(m) ? c : m;
}

export class EulerSolver {
  readonly nx: number;
  readonly ny: number;
  readonly gamma: number;
  readonly boundary: EulerBoundary;
  readonly dx: number;
  readonly dy: number;
  readonly cfl: number;
  /** Simulated time. */
  time = 0;
  /** Number of steps taken so far. */
  steps = 0;
  private readonly limiterKind: number;
  private readonly stride: number; // padded ny
  private readonly size: number;
  // conservative state (padded)
  readonly rho: Float64Array;
  readonly mx: Float64Array;
  readonly my: Float64Array;
  readonly en: Float64Array;
  // primitives, slopes, predictor (padded)
  private readonly pr: Float64Array;
  private readonly pu: Float64Array;
  private readonly pv: Float64Array;
  private readonly pp: Float64Array;
  private readonly sx: Float64Array[];
  private readonly sy: Float64Array[];
  private readonly hr: Float64Array;
  private readonly hu: Float64Array;
  private readonly hv: Float64Array;
  private readonly hp: Float64Array;
  private readonly flux = new Float64Array(4);
  private readonly face = new Float64Array(8);

  constructor(options: EulerOptions) {
    const { nx, ny, gamma, boundary } = options;
    if (!Number.isInteger(nx) || !Number.isInteger(ny) || nx < 2 || ny < 2)
      throw new RangeError(`EulerSolver: nx and ny must be integers >= 2, got ${nx} x ${ny}`);
    if (!(gamma > 1)) throw new RangeError(`EulerSolver: gamma must be > 1, got ${gamma}`);
    if (boundary !== 'periodic' && boundary !== 'open')
      throw new RangeError(`EulerSolver: boundary must be "periodic" or "open", got ${String(boundary)}`);
    this.nx = nx;
    this.ny = ny;
    this.gamma = gamma;
    this.boundary = boundary;
    this.dx = (options.lx ?? 1) / nx;
    this.dy = (options.ly ?? 1) / ny;
    this.cfl = options.cfl ?? 0.7;
    if (!(this.cfl > 0 && this.cfl <= 1)) throw new RangeError(`EulerSolver: cfl must be in (0, 1], got ${this.cfl}`);
    const lim = options.limiter ?? 'vanleer';
    this.limiterKind = lim === 'minmod' ? 0 : lim === 'vanleer' ? 1 : lim === 'mc' ? 2 : -1;
    if (this.limiterKind < 0) throw new RangeError(`EulerSolver: unknown limiter ${String(lim)}`);
    this.stride = ny + 2 * G;
    this.size = (nx + 2 * G) * this.stride;
    const arr = (): Float64Array => new Float64Array(this.size);
    this.rho = arr();
    this.mx = arr();
    this.my = arr();
    this.en = arr();
    this.pr = arr();
    this.pu = arr();
    this.pv = arr();
    this.pp = arr();
    this.sx = [arr(), arr(), arr(), arr()];
    this.sy = [arr(), arr(), arr(), arr()];
    this.hr = arr();
    this.hu = arr();
    this.hv = arr();
    this.hp = arr();
  }

  /** Padded index of interior cell (i, j), 0 <= i < nx, 0 <= j < ny. */
  index(i: number, j: number): number {
    return (i + G) * this.stride + j + G;
  }

  /** Sets the state from a primitive-state function of the cell centre (x, y). Resets time. */
  setPrimitive(at: (x: number, y: number) => PrimitiveState): void {
    const g1 = this.gamma - 1;
    for (let i = 0; i < this.nx; i++) {
      for (let j = 0; j < this.ny; j++) {
        const s = at((i + 0.5) * this.dx, (j + 0.5) * this.dy);
        if (!(s.density > 0) || !(s.pressure > 0))
          throw new RangeError(`EulerSolver: initial density and pressure must be positive at cell (${i}, ${j})`);
        const k = this.index(i, j);
        this.rho[k] = s.density;
        this.mx[k] = s.density * s.velocityX;
        this.my[k] = s.density * s.velocityY;
        this.en[k] = s.pressure / g1 + 0.5 * s.density * (s.velocityX ** 2 + s.velocityY ** 2);
      }
    }
    this.time = 0;
    this.steps = 0;
  }

  /** Domain totals of mass, x-momentum, y-momentum, energy (sums times cell area). */
  totals(): [number, number, number, number] {
    const t: [number, number, number, number] = [0, 0, 0, 0];
    for (let i = 0; i < this.nx; i++) {
      for (let j = 0; j < this.ny; j++) {
        const k = this.index(i, j);
        t[0] += this.rho[k];
        t[1] += this.mx[k];
        t[2] += this.my[k];
        t[3] += this.en[k];
      }
    }
    const a = this.dx * this.dy;
    return [t[0] * a, t[1] * a, t[2] * a, t[3] * a];
  }

  /** Copies the interior state into (nx, ny) arrays, x-major. */
  fields(): EulerFields {
    const n = this.nx * this.ny;
    const out: EulerFields = {
      density: new Float64Array(n),
      momentumX: new Float64Array(n),
      momentumY: new Float64Array(n),
      energy: new Float64Array(n),
      pressure: new Float64Array(n),
    };
    this.writeFields(out);
    return out;
  }

  /** Writes the interior state into caller-owned arrays (any numeric typed arrays of length nx*ny). */
  writeFields(out: {
    density: Float64Array | Float32Array;
    momentumX: Float64Array | Float32Array;
    momentumY: Float64Array | Float32Array;
    energy: Float64Array | Float32Array;
    pressure: Float64Array | Float32Array;
  }, offset = 0): void {
    const g1 = this.gamma - 1;
    let o = offset;
    for (let i = 0; i < this.nx; i++) {
      for (let j = 0; j < this.ny; j++, o++) {
        const k = this.index(i, j);
        const r = this.rho[k];
        const mx = this.mx[k];
        const my = this.my[k];
        const e = this.en[k];
        out.density[o] = r;
        out.momentumX[o] = mx;
        out.momentumY[o] = my;
        out.energy[o] = e;
        out.pressure[o] = g1 * (e - (0.5 * (mx * mx + my * my)) / r);
      }
    }
  }

  /** Fills the ghost layers from the interior: x-ghosts for interior rows first, then full y-ghost columns. */
  private fillGhosts(): void {
    const { nx, ny, stride } = this;
    const arrays = [this.rho, this.mx, this.my, this.en];
    const periodic = this.boundary === 'periodic';
    for (const a of arrays) {
      for (let g = 1; g <= G; g++) {
        const lo = (G - g) * stride;
        const hi = (nx + G - 1 + g) * stride;
        const srcLo = (periodic ? nx + G - g : G) * stride;
        const srcHi = (periodic ? G - 1 + g : nx + G - 1) * stride;
        for (let j = G; j < ny + G; j++) {
          a[lo + j] = a[srcLo + j];
          a[hi + j] = a[srcHi + j];
        }
      }
      for (let i = 0; i < nx + 2 * G; i++) {
        const row = i * stride;
        for (let g = 1; g <= G; g++) {
          a[row + G - g] = a[row + (periodic ? ny + G - g : G)];
          a[row + ny + G - 1 + g] = a[row + (periodic ? G - 1 + g : ny + G - 1)];
        }
      }
    }
  }

  /** Largest stable step for the current state. */
  stableStep(): number {
    const { nx, ny, gamma } = this;
    let maxRate = 0;
    for (let i = 0; i < nx; i++) {
      let k = this.index(i, 0);
      for (let j = 0; j < ny; j++, k++) {
        const r = this.rho[k];
        const u = this.mx[k] / r;
        const v = this.my[k] / r;
        const p = (gamma - 1) * (this.en[k] - 0.5 * r * (u * u + v * v));
        const c = Math.sqrt((gamma * Math.max(p, 0)) / r);
        const rate = (Math.abs(u) + c) / this.dx + (Math.abs(v) + c) / this.dy;
        if (rate > maxRate) maxRate = rate;
      }
    }
    if (!(maxRate > 0) || !Number.isFinite(maxRate))
      throw new Error(`EulerSolver: invalid wave speed (${maxRate}) at t=${this.time}: the state is not finite`);
    return this.cfl / maxRate;
  }

  /** Advances to exactly time `t` with CFL-limited steps; returns the number of steps taken. */
  advanceTo(t: number): number {
    let n = 0;
    while (this.time < t) {
      const stable = this.stableStep();
      const remaining = t - this.time;
      // take the remainder when it is within a hair of a full step, so no sliver step follows
      const dt = remaining <= stable * (1 + 1e-9) ? remaining : Math.min(stable, remaining / Math.ceil(remaining / stable));
      this.step(dt);
      if (dt === remaining) this.time = t;
      n++;
    }
    return n;
  }

  /** One MUSCL-Hancock step of length dt (the caller keeps dt within the stable step). */
  step(dt: number): void {
    this.fillGhosts();
    const { nx, ny, stride, gamma } = this;
    const { rho, mx, my, en, pr, pu, pv, pp, hr, hu, hv, hp } = this;
    const [sxr, sxu, sxv, sxp] = this.sx;
    const [syr, syu, syv, syp] = this.sy;
    const g1 = gamma - 1;
    // primitives on the whole padded grid
    for (let k = 0; k < this.size; k++) {
      const r = rho[k];
      const u = mx[k] / r;
      const v = my[k] / r;
      pr[k] = r;
      pu[k] = u;
      pv[k] = v;
      pp[k] = g1 * (en[k] - 0.5 * r * (u * u + v * v));
    }
    // limited slopes, then the half-step predictor, for cells -1..nx, -1..ny
    this.slopes(pr, sxr, syr);
    this.slopes(pu, sxu, syu);
    this.slopes(pv, sxv, syv);
    this.slopes(pp, sxp, syp);
    const hx = (0.5 * dt) / this.dx;
    const hy = (0.5 * dt) / this.dy;
    for (let i = G - 1; i <= nx + G; i++) {
      for (let j = G - 1; j <= ny + G; j++) {
        const k = i * stride + j;
        const r = pr[k];
        const u = pu[k];
        const v = pv[k];
        const p = pp[k];
        const drx = sxr[k];
        const dux = sxu[k];
        const dvx = sxv[k];
        const dpx = sxp[k];
        const dry = syr[k];
        const duy = syu[k];
        const dvy = syv[k];
        const dpy = syp[k];
        hr[k] = r - hx * (u * drx + r * dux) - hy * (v * dry + r * dvy);
        hu[k] = u - hx * (u * dux + dpx / r) - hy * (v * duy);
        hv[k] = v - hx * (u * dvx) - hy * (v * dvy + dpy / r);
        hp[k] = p - hx * (u * dpx + gamma * p * dux) - hy * (v * dpy + gamma * p * dvy);
      }
    }
    this.sweep(0, dt);
    this.sweep(1, dt);
    this.time += dt;
    this.steps++;
  }

  /** Limited x and y differences of one primitive variable for cells -1..nx, -1..ny. */
  private slopes(q: Float64Array, sx: Float64Array, sy: Float64Array): void {
    const { nx, ny, stride, limiterKind } = this;
    for (let i = G - 1; i <= nx + G; i++) {
      for (let j = G - 1; j <= ny + G; j++) {
        const k = i * stride + j;
        const c = q[k];
        sx[k] = limit(limiterKind, c - q[k - stride], q[k + stride] - c);
        sy[k] = limit(limiterKind, c - q[k - 1], q[k + 1] - c);
      }
    }
  }

  /**
   * Fluxes through the faces normal to `axis` (0: x faces between cells i and i+1, i = -1..nx-1; 1: y faces) and
   * their conservative update. The Riemann problem is solved in the face's frame: normal velocity first, then
   * tangential, and the momentum fluxes are mapped back to (x, y).
   */
  private sweep(axis: 0 | 1, dt: number): void {
    const { nx, ny, stride, gamma } = this;
    const { rho, en, pr, pp, hr, hp } = this;
    const alongX = axis === 0;
    const [sr, sx, sy, sp] = alongX ? this.sx : this.sy;
    // normal (n) and tangential (t) components of velocity, slopes and momentum
    const [hn, ht, pn, pt, sn, st] = alongX ? [this.hu, this.hv, this.pu, this.pv, sx, sy] : [this.hv, this.hu, this.pv, this.pu, sy, sx];
    const [mn, mt] = alongX ? [this.mx, this.my] : [this.my, this.mx];
    const offset = alongX ? stride : 1;
    const cells = alongX ? nx : ny;
    const f = this.flux;
    const face = this.face;
    const c = dt / (alongX ? this.dx : this.dy);
    for (let i = alongX ? G - 1 : G; i < nx + G; i++) {
      for (let j = alongX ? G : G - 1; j < ny + G; j++) {
        const kl = i * stride + j;
        const kr = kl + offset;
        const own = alongX ? i : j; // index of the left cell along the axis
        let rl = hr[kl] + 0.5 * sr[kl];
        let nl = hn[kl] + 0.5 * sn[kl];
        let tl = ht[kl] + 0.5 * st[kl];
        let pl = hp[kl] + 0.5 * sp[kl];
        if (!(rl > 0 && pl > 0)) {
          rl = pr[kl];
          nl = pn[kl];
          tl = pt[kl];
          pl = pp[kl];
        }
        let rr = hr[kr] - 0.5 * sr[kr];
        let nr = hn[kr] - 0.5 * sn[kr];
        let tr = ht[kr] - 0.5 * st[kr];
        let prr = hp[kr] - 0.5 * sp[kr];
        if (!(rr > 0 && prr > 0)) {
          rr = pr[kr];
          nr = pn[kr];
          tr = pt[kr];
          prr = pp[kr];
        }
        face[0] = rl;
        face[1] = nl;
        face[2] = tl;
        face[3] = pl;
        face[4] = rr;
        face[5] = nr;
        face[6] = tr;
        face[7] = prr;
        hllc(gamma, face, f);
        // f = [mass, normal momentum, tangential momentum, energy]
        if (own >= G) {
          rho[kl] -= c * f[0];
          mn[kl] -= c * f[1];
          mt[kl] -= c * f[2];
          en[kl] -= c * f[3];
        }
        if (own + 1 < cells + G) {
          rho[kr] += c * f[0];
          mn[kr] += c * f[1];
          mt[kr] += c * f[2];
          en[kr] += c * f[3];
        }
      }
    }
  }
}

/**
 * HLLC flux through a face. `face` holds the primitive states either side, [density, normal velocity,
 * tangential velocity, pressure] left then right; the flux goes into out = [mass, normal momentum, tangential
 * momentum, energy]. Wave speeds: Einfeldt's bounds from the Roe average, which make the HLL part positively
 * conservative. (States pass through an array so that no number is boxed per face.)
 */
export function hllc(gamma: number, face: Float64Array, out: Float64Array): void {
  const rl = face[0];
  const ul = face[1];
  const vl = face[2];
  const pl = face[3];
  const rr = face[4];
  const ur = face[5];
  const vr = face[6];
  const pr = face[7];
  const g1 = gamma - 1;
  const el = pl / g1 + 0.5 * rl * (ul * ul + vl * vl);
  const er = pr / g1 + 0.5 * rr * (ur * ur + vr * vr);
  const cl = Math.sqrt((gamma * pl) / rl);
  const cr = Math.sqrt((gamma * pr) / rr);
  const sl = Math.sqrt(rl);
  const sr = Math.sqrt(rr);
  const inv = 1 / (sl + sr);
  const uRoe = (sl * ul + sr * ur) * inv;
  const vRoe = (sl * vl + sr * vr) * inv;
  const hl = (el + pl) / rl;
  const hr = (er + pr) / rr;
  const hRoe = (sl * hl + sr * hr) * inv;
  const c2 = g1 * (hRoe - 0.5 * (uRoe * uRoe + vRoe * vRoe));
  const cRoe = Math.sqrt(Math.max(c2, 0));
  const SL = Math.min(ul - cl, uRoe - cRoe);
  const SR = Math.max(ur + cr, uRoe + cRoe);
  if (SL >= 0) {
    out[0] = rl * ul;
    out[1] = rl * ul * ul + pl;
    out[2] = rl * ul * vl;
    out[3] = ul * (el + pl);
    return;
  }
  if (SR <= 0) {
    out[0] = rr * ur;
    out[1] = rr * ur * ur + pr;
    out[2] = rr * ur * vr;
    out[3] = ur * (er + pr);
    return;
  }
  const ml = rl * (SL - ul);
  const mr = rr * (SR - ur);
  const SM = (pr - pl + ul * ml - ur * mr) / (ml - mr);
  if (SM >= 0) {
    const fr = rl * ul;
    const factor = ml / (SL - SM); // density of the star state
    const eStar = factor * (el / rl + (SM - ul) * (SM + pl / ml));
    out[0] = fr + SL * (factor - rl);
    out[1] = rl * ul * ul + pl + SL * (factor * SM - rl * ul);
    out[2] = rl * ul * vl + SL * (factor * vl - rl * vl);
    out[3] = ul * (el + pl) + SL * (eStar - el);
  } else {
    const fr = rr * ur;
    const factor = mr / (SR - SM);
    const eStar = factor * (er / rr + (SM - ur) * (SM + pr / mr));
    out[0] = fr + SR * (factor - rr);
    out[1] = rr * ur * ur + pr + SR * (factor * SM - rr * ur);
    out[2] = rr * ur * vr + SR * (factor * vr - rr * vr);
    out[3] = ur * (er + pr) + SR * (eStar - er);
  }
}
