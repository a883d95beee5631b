/**
 * Exact solution of the one-dimensional Riemann problem for the Euler equations of an ideal gas (the classical
 * two-shock/two-rarefaction construction: Newton iteration on the star-region pressure, then sampling of the
 * self-similar solution). Used as the independent reference for the finite-volume solver.
 */

export interface RiemannSide {
  density: number;
  velocity: number;
  pressure: number;
}

export interface RiemannSolution {
  /** Pressure and velocity between the two nonlinear waves. */
  pStar: number;
  uStar: number;
  /** The state at similarity coordinate s = (x - x0) / t. */
  sample(s: number): RiemannSide;
}

/** Solves the Riemann problem with left state `l`, right state `r`; throws on vacuum generation. */
export function exactRiemann(l: RiemannSide, r: RiemannSide, gamma: number): RiemannSolution {
  const cl = Math.sqrt((gamma * l.pressure) / l.density);
  const cr = Math.sqrt((gamma * r.pressure) / r.density);
  const g1 = (gamma - 1) / (2 * gamma);
  const g2 = (gamma + 1) / (2 * gamma);
  const g3 = (2 * gamma) / (gamma - 1);
  const g4 = 2 / (gamma - 1);
  const g5 = 2 / (gamma + 1);
  const g6 = (gamma - 1) / (gamma + 1);
  const g7 = (gamma - 1) / 2;
  if (g4 * (cl + cr) <= r.velocity - l.velocity)
    throw new RangeError('exactRiemann: the initial states generate vacuum');

  // f_K(p) and its derivative for one side (shock if p > pK, rarefaction otherwise)
  const side = (p: number, s: RiemannSide, c: number): [number, number] => {
    if (p > s.pressure) {
      const a = g5 / s.density;
      const b = g6 * s.pressure;
      const q = Math.sqrt(a / (p + b));
      return [(p - s.pressure) * q, q * (1 - (0.5 * (p - s.pressure)) / (b + p))];
    }
    const ratio = p / s.pressure;
    return [g4 * c * (ratio ** g1 - 1), (1 / (s.density * c)) * ratio ** -g2];
  };

  // initial guess: two-rarefaction approximation, floored
  const du = r.velocity - l.velocity;
  let p = Math.max(
    ((cl + cr - g7 * du) / (cl / l.pressure ** g1 + cr / r.pressure ** g1)) ** g3,
    1e-12,
  );
  for (let it = 0; it < 100; it++) {
    const [fl, dfl] = side(p, l, cl);
    const [fr, dfr] = side(p, r, cr);
    const next = Math.max(p - (fl + fr + du) / (dfl + dfr), 1e-14);
    const change = (2 * Math.abs(next - p)) / (next + p);
    p = next;
    if (change < 1e-14) break;
  }
  const pStar = p;
  const uStar = 0.5 * (l.velocity + r.velocity) + 0.5 * (side(p, r, cr)[0] - side(p, l, cl)[0]);

  const sample = (s: number): RiemannSide => {
    if (s <= uStar) {
      // left of the contact
      if (pStar > l.pressure) {
        const sl = l.velocity - cl * Math.sqrt(g2 * (pStar / l.pressure) + g1);
        if (s <= sl) return { ...l };
        const ratio = pStar / l.pressure;
        return { density: (l.density * (ratio + g6)) / (ratio * g6 + 1), velocity: uStar, pressure: pStar };
      }
      const head = l.velocity - cl;
      if (s <= head) return { ...l };
      const cStar = cl * (pStar / l.pressure) ** g1;
      const tail = uStar - cStar;
      if (s > tail) return { density: l.density * (pStar / l.pressure) ** (1 / gamma), velocity: uStar, pressure: pStar };
      const c = g5 * (cl + g7 * (l.velocity - s));
      return {
        density: l.density * (c / cl) ** g4,
        velocity: g5 * (cl + g7 * l.velocity + s),
        pressure: l.pressure * (c / cl) ** g3,
      };
    }
    if (pStar > r.pressure) {
      const sr = r.velocity + cr * Math.sqrt(g2 * (pStar / r.pressure) + g1);
      if (s >= sr) return { ...r };
      const ratio = pStar / r.pressure;
      return { density: (r.density * (ratio + g6)) / (ratio * g6 + 1), velocity: uStar, pressure: pStar };
    }
    const head = r.velocity + cr;
    if (s >= head) return { ...r };
    const cStar = cr * (pStar / r.pressure) ** g1;
    const tail = uStar + cStar;
    if (s < tail) return { density: r.density * (pStar / r.pressure) ** (1 / gamma), velocity: uStar, pressure: pStar };
    const c = g5 * (cr - g7 * (r.velocity - s));
    return {
      density: r.density * (c / cr) ** g4,
      velocity: g5 * (-cr + g7 * r.velocity + s),
      pressure: r.pressure * (c / cr) ** g3,
    };
  };
  return { pStar, uStar, sample };
}
