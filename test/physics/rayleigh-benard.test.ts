import t from 'tap';
import { RayleighBenardSolver, chebyshevGaussNodes } from '../../src/physics/rayleigh-benard.js';
import { FFT, RealRows } from '../../src/physics/fft.js';

t.test('FFT matches a direct DFT and real-row transforms round-trip', async (t) => {
  const n = 16;
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    re[i] = Math.sin(0.7 * i) + 0.1 * i;
    im[i] = Math.cos(1.3 * i);
  }
  const dftRe = new Float64Array(n);
  const dftIm = new Float64Array(n);
  for (let k = 0; k < n; k++)
    for (let i = 0; i < n; i++) {
      const a = (-2 * Math.PI * k * i) / n;
      dftRe[k] += re[i] * Math.cos(a) - im[i] * Math.sin(a);
      dftIm[k] += re[i] * Math.sin(a) + im[i] * Math.cos(a);
    }
  const fr = re.slice();
  const fi = im.slice();
  const fft = new FFT(n);
  fft.forward(fr, fi);
  for (let k = 0; k < n; k++) {
    t.ok(Math.abs(fr[k] - dftRe[k]) < 1e-12 && Math.abs(fi[k] - dftIm[k]) < 1e-12, `mode ${k}`);
  }
  fft.inverse(fr, fi);
  for (let i = 0; i < n; i++) t.ok(Math.abs(fr[i] - re[i]) < 1e-13 && Math.abs(fi[i] - im[i]) < 1e-13);
  // three real rows (odd count exercises the unpaired row)
  const rows = new RealRows(n);
  const src = new Float64Array(3 * n).map((_, k) => Math.sin(k * 0.37) + (k % 5));
  const sr = new Float64Array(3 * rows.modes);
  const si = new Float64Array(3 * rows.modes);
  rows.forward(src, 0, 3, sr, si);
  // row 1, mode 2 against a direct sum
  let dr = 0;
  let di = 0;
  for (let i = 0; i < n; i++) {
    dr += src[n + i] * Math.cos((-2 * Math.PI * 2 * i) / n);
    di += src[n + i] * Math.sin((-2 * Math.PI * 2 * i) / n);
  }
  t.ok(Math.abs(sr[rows.modes + 2] - dr) < 1e-12 && Math.abs(si[rows.modes + 2] - di) < 1e-12);
  const back = new Float64Array(3 * n);
  rows.inverse(sr, si, 3, back, 0);
  let worst = 0;
  for (let k = 0; k < back.length; k++) worst = Math.max(worst, Math.abs(back[k] - src[k]));
  t.ok(worst < 1e-13, `round-trip error ${worst}`);
  t.throws(() => new FFT(12), /power of two/);
});

t.test('the y grid puts cell centres on Chebyshev-Gauss nodes', async (t) => {
  const s = new RayleighBenardSolver({ nx: 16, ny: 8, rayleigh: 1e4, prandtl: 1 });
  const nodes = chebyshevGaussNodes(8);
  t.same(Array.from(s.yc), Array.from(nodes));
  t.ok(nodes[0] > 0 && nodes[7] < 1 && nodes[0] < nodes[1]);
  t.ok(Math.abs(nodes[0] + nodes[7] - 1) < 1e-15, 'symmetric about the mid-plane');
  t.equal(s.kappa, 1e-2);
  t.equal(s.nu, 1e-2);
  const t2 = new RayleighBenardSolver({ nx: 16, ny: 8, rayleigh: 1e6, prandtl: 4 });
  t.ok(Math.abs(t2.kappa - 1 / Math.sqrt(4e6)) < 1e-15 && Math.abs(t2.nu - 1 / Math.sqrt(2.5e5)) < 1e-15);
  t.throws(() => new RayleighBenardSolver({ nx: 24, ny: 8, rayleigh: 1e4, prandtl: 1 }), /power of two/);
  t.throws(() => new RayleighBenardSolver({ nx: 16, ny: 8, rayleigh: -1, prandtl: 1 }), /positive/);
});

t.test('below the critical Rayleigh number perturbations decay to the conductive profile', async (t) => {
  const s = new RayleighBenardSolver({ nx: 32, ny: 8, rayleigh: 1000, prandtl: 1 });
  s.setInitialState(3, 1e-2);
  s.advanceTo(10);
  const early = s.kineticEnergy();
  s.advanceTo(60);
  const late = s.kineticEnergy();
  t.ok(early > 0, 'the noise drives some flow at first');
  t.ok(late < 1e-6 * early, `kinetic energy decays: ${early.toExponential(2)} -> ${late.toExponential(2)}`);
  let worst = 0;
  const f = s.fields();
  for (let i = 0; i < s.nx; i++)
    for (let j = 0; j < s.ny; j++) worst = Math.max(worst, Math.abs(f.buoyancy[i * s.ny + j] - (1 - s.yc[j])));
  t.ok(worst < 1e-5, `buoyancy is the linear conduction profile (max deviation ${worst})`);
  t.ok(Math.abs(s.nusselt() - 1) < 1e-6, `Nu = ${s.nusselt()}`);
});

t.test('above the critical Rayleigh number convection starts', async (t) => {
  const s = new RayleighBenardSolver({ nx: 32, ny: 8, rayleigh: 2500, prandtl: 1 });
  s.setInitialState(3, 1e-3);
  s.advanceTo(10);
  const early = s.kineticEnergy();
  s.advanceTo(60);
  const late = s.kineticEnergy();
  t.ok(late > 1000 * early, `kinetic energy grows: ${early.toExponential(2)} -> ${late.toExponential(2)}`);
});

t.test('Nusselt number at Ra = 1e4, Pr = 1 matches steady-roll results; velocity stays divergence-free', async (t) => {
  const s = new RayleighBenardSolver({ nx: 64, ny: 16, rayleigh: 1e4, prandtl: 1 });
  s.setInitialState(1, 1e-3);
  let worstDivergence = 0;
  for (let time = 5; time <= 70; time += 5) {
    s.advanceTo(time);
    worstDivergence = Math.max(worstDivergence, s.relativeDivergence());
  }
  const nu = s.nusselt();
  const wall = s.wallNusselt();
  // Reference: steady two-dimensional rolls between no-slip isothermal plates, Ra = 1e4, wavenumber 3.117
  // (our period 4 holds two roll pairs, wavenumber pi): Nu = 2.66 (Clever & Busse 1974, J. Fluid Mech. 65,
  // 625-645, Pr = 0.71; the steady-roll Nusselt number depends only weakly on Pr at this Ra).
  const reference = 2.66;
  t.comment(`Nu (volume) ${nu.toFixed(4)}, Nu (wall) ${wall.toFixed(4)}, reference ${reference}`);
  t.ok(Math.abs(nu - reference) < 0.1 * reference, `Nu ${nu} within 10% of ${reference}`);
  t.ok(Math.abs(wall - nu) < 0.02 * nu, `wall and volume Nusselt numbers agree (${wall} vs ${nu})`);
  t.ok(worstDivergence < 1e-12, `|div u| dx / max|u| stays at round-off (${worstDivergence.toExponential(2)})`);
  // no-slip and no-penetration at the walls; pressure gauge has zero mean
  t.equal(s.v[0], 0);
  t.equal(s.v[s.ny * s.nx], 0);
  const f = s.fields();
  let mean = 0;
  for (let i = 0; i < s.nx; i++) for (let j = 0; j < s.ny; j++) mean += f.pressure[i * s.ny + j] * s.hy[j];
  t.ok(Math.abs(mean / s.nx) < 1e-12, 'pressure has zero mean');
  t.equal(s.time, 70, 'lands exactly on output times');
});

t.test('time stepping is second order (SBDF2 with rotational pressure correction)', async (t) => {
  const run = (maxStep: number): Float64Array[] => {
    const s = new RayleighBenardSolver({ nx: 32, ny: 8, rayleigh: 1e4, prandtl: 1, maxStep, cfl: 1 });
    s.setBuoyancy((x, y) => 1 - y + 0.2 * Math.sin(Math.PI * y) * Math.cos((Math.PI * x) / 2));
    s.advanceTo(2);
    const f = s.fields();
    return [f.velocityY, f.buoyancy];
  };
  const reference = run(0.001);
  const errors = [0.04, 0.02, 0.01].map((h) => {
    const [v, b] = run(h);
    let e = 0;
    for (let k = 0; k < v.length; k++) e = Math.max(e, Math.abs(v[k] - reference[0][k]), Math.abs(b[k] - reference[1][k]));
    return e;
  });
  const rates = errors.slice(1).map((e, i) => Math.log2(errors[i] / e));
  t.comment(`max errors ${errors.map((e) => e.toExponential(2)).join(', ')}; rates ${rates.map((r) => r.toFixed(2)).join(', ')}`);
  for (const r of rates) t.ok(r > 1.8 && r < 2.3, `temporal rate ${r} close to 2`);
});

t.test('runs are deterministic for a seed', async (t) => {
  const run = (seed: number): Float64Array => {
    const s = new RayleighBenardSolver({ nx: 16, ny: 8, rayleigh: 1e5, prandtl: 1 });
    s.setInitialState(seed);
    s.advanceTo(2);
    return s.fields().buoyancy;
  };
  t.same(run(5), run(5));
  t.notSame(run(5), run(6));
});
