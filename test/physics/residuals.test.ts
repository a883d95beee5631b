import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { EulerSolver } from '../../src/physics/euler.js';
import { eulerTrajectory } from '../../src/physics/quadrants.js';
import { RayleighBenardSolver, chebyshevGaussNodes } from '../../src/physics/rayleigh-benard.js';
import { SYSTEM_FIELDS, taskSpec } from '../../src/physics/simulate/systems.js';
import {
  DARCY_CHANNELS,
  EULER_CHANNELS,
  EulerResidual,
  RAYLEIGH_BENARD_CHANNELS,
  RayleighBenardResidual,
  darcyResidual,
  describeWellMeta,
  residualFor,
  type PdeResidual,
  type ResidualDescription,
} from '../../src/physics/residuals/index.js';
import { darcyResidualOnGrid } from '../../src/physics/darcy.js';
import { createRng } from '../../src/streams/random.js';
import type { WellMeta } from '../../src/formats/well/meta.js';

await selectBackend({ prefer: 'wasm' });

const rms = (values: ArrayLike<number>, channels: number, channel: number): number => {
  let s = 0;
  let m = 0;
  for (let k = channel; k < values.length; k += channels, m++) s += values[k] ** 2;
  return Math.sqrt(s / m);
};
const maxAbs = (values: ArrayLike<number>, channels = 1, channel = 0): number => {
  let s = 0;
  for (let k = channel; k < values.length; k += channels) s = Math.max(s, Math.abs(values[k]));
  return s;
};
const rates = (errors: number[]): number[] => errors.slice(1).map((e, i) => Math.log2(errors[i] / e));
const fmt = (xs: number[], digits = 2): string => xs.map((x) => x.toExponential(digits)).join(', ');
const fmtRates = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ');

/** Seeded normal noise of `n` values. */
function noise(n: number, seed: number, scale: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

/** An Euler solver's interior state as one (X, Y, 5) frame in The Well's channel order. */
function eulerFrame(s: EulerSolver): Float32Array {
  const f = s.fields();
  const n = s.nx * s.ny;
  const out = new Float32Array(5 * n);
  const by = [f.energy, f.density, f.pressure, f.momentumX, f.momentumY];
  for (let k = 0; k < n; k++) for (let c = 0; c < 5; c++) out[5 * k + c] = by[c][k];
  return out;
}

/** A Rayleigh-Benard solver's state as one (X, Y, 4) frame in The Well's channel order. */
function rbFrame(s: RayleighBenardSolver): Float32Array {
  const f = s.fields();
  const n = s.nx * s.ny;
  const out = new Float32Array(4 * n);
  const by = [f.buoyancy, f.pressure, f.velocityX, f.velocityY];
  for (let k = 0; k < n; k++) for (let c = 0; c < 4; c++) out[4 * k + c] = by[c][k];
  return out;
}

/** Two frames as a (1, 2, X, Y, C) tensor. */
function pairTensor(a: Float32Array, b: Float32Array, x: number, y: number, c: number): tf.Tensor {
  const data = new Float32Array(a.length + b.length);
  data.set(a);
  data.set(b, a.length);
  return tf.tensor(data, [1, 2, x, y, c]);
}

function residualData(res: PdeResidual, states: tf.Tensor): Float32Array {
  return tf.tidy(() => res.residual(states).dataSync() as Float32Array);
}

/**
 * Checks tf.grad(meanSquare) against central differences at the given flat entries. The difference quotient is
 * sum((r+ - r-)(r+ + r-)) / (M 2 eps), accumulated in float64: entries outside the stencil cancel exactly.
 */
function gradientErrors(res: PdeResidual, states: tf.Tensor, entries: number[], eps: number): { analytic: number; numeric: number }[] {
  const grad = tf.tidy(() => tf.grad((s: tf.Tensor) => res.meanSquare(s))(states).dataSync() as Float32Array);
  const base = states.dataSync() as Float32Array;
  return entries.map((k) => {
    const at = (sign: number): Float32Array => {
      const v = base.slice();
      v[k] += sign * eps;
      const s = tf.tensor(v, states.shape);
      const r = residualData(res, s);
      s.dispose();
      return r;
    };
    const plus = at(1);
    const minus = at(-1);
    let sum = 0;
    for (let i = 0; i < plus.length; i++) sum += (plus[i] - minus[i]) * (plus[i] + minus[i]);
    // the perturbation actually applied, after float32 rounding
    const step = Math.fround(base[k] + eps) - Math.fround(base[k] - eps);
    return { analytic: grad[k], numeric: sum / (plus.length * step) };
  });
}

/** `count` seeded entries among those whose gradient is at least a tenth of the largest. */
function strongEntries(res: PdeResidual, states: tf.Tensor, count: number, seed: number): number[] {
  const grad = tf.tidy(() => tf.grad((s: tf.Tensor) => res.meanSquare(s))(states).dataSync() as Float32Array);
  const top = maxAbs(grad);
  const strong = [...grad.keys()].filter((k) => Math.abs(grad[k]) >= 0.1 * top);
  const rng = createRng(seed);
  return Array.from({ length: count }, () => strong[rng.int(strong.length)]);
}

// ---------------------------------------------------------------------------------------------- Euler

/** The smooth diagonal advection problem of the Euler solver's own convergence test. */
function smoothEulerPair(n: number, t0: number, dt: number, boundary: 'periodic' | 'open' = 'periodic'): [Float32Array, Float32Array] {
  const solver = new EulerSolver({ nx: n, ny: n, gamma: 1.4, boundary });
  solver.setPrimitive((x, y) => ({ density: 1 + 0.2 * Math.sin(2 * Math.PI * (x + y)), velocityX: 1, velocityY: 0.5, pressure: 1 }));
  solver.advanceTo(t0);
  const a = eulerFrame(solver);
  solver.advanceTo(t0 + dt);
  return [a, eulerFrame(solver)];
}

/** The same problem sampled exactly at the nodes (point values), for the truncation level of the residual. */
function exactEulerFrame(n: number, time: number): Float32Array {
  const out = new Float32Array(5 * n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const rho = 1 + 0.2 * Math.sin(2 * Math.PI * ((i + 0.5) / n - time + (j + 0.5) / n - 0.5 * time));
      const k = 5 * (i * n + j);
      out.set([1 / 0.4 + 0.5 * rho * 1.25, rho, 1, rho, 0.5 * rho], k);
    }
  return out;
}

/**
 * Cells away from the density extrema of the advected wave at time `time` (|cos(phase)| > 1/2), and inside
 * `margin` cells from the edges: where the solver's slope limiters are inactive and the flow is smooth.
 */
function smoothRegion(n: number, time: number, margin = 0): boolean[] {
  const mask: boolean[] = [];
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const phase = 2 * Math.PI * ((i + 0.5) / n + (j + 0.5) / n - 1.5 * time);
      const inside = i >= margin && j >= margin && i < n - margin && j < n - margin;
      mask.push(inside && Math.abs(Math.cos(phase)) > 0.5);
    }
  return mask;
}

/** RMS over the first `equations` channels of the cells in `mask` (all cells when absent). */
function regionRms(r: ArrayLike<number>, channels: number, equations: number, mask?: boolean[]): number {
  let s = 0;
  let m = 0;
  for (let k = 0; k * channels < r.length; k++) {
    if (mask && !mask[k]) continue;
    for (let c = 0; c < equations; c++, m++) s += r[k * channels + c] ** 2;
  }
  return Math.sqrt(s / m);
}

t.test('Euler residual on the solver output is at the discretisation level and converges at second order', async (t) => {
  const sizes = [32, 64, 128];
  const perChannel: number[][] = [[], [], [], []];
  const total: number[] = [];
  const smooth: number[] = [];
  const exactSmooth: number[] = [];
  const exactTotal: number[] = [];
  const eos: number[] = [];
  const defects: number[] = [];
  for (const n of sizes) {
    const dt = 1 / n; // frames a fixed CFL apart, so that space and time errors shrink together
    const res = new EulerResidual({ gamma: 1.4, dt, dx: 1 / n, dy: 1 / n, boundary: 'periodic' });
    const [a, b] = smoothEulerPair(n, 0.1, dt);
    const states = pairTensor(a, b, n, n, 5);
    const r = residualData(res, states);
    const mask = smoothRegion(n, 0.1 + dt / 2);
    for (let c = 0; c < 4; c++) perChannel[c].push(rms(r, 5, c));
    total.push(regionRms(r, 5, 4));
    smooth.push(regionRms(r, 5, 4, mask));
    eos.push(maxAbs(r, 5, 4));
    const exact = pairTensor(exactEulerFrame(n, 0.1), exactEulerFrame(n, 0.1 + dt), n, n, 5);
    const re = residualData(res, exact);
    exactTotal.push(regionRms(re, 5, 4));
    exactSmooth.push(regionRms(re, 5, 4, mask));
    defects.push(maxAbs(tf.tidy(() => res.conservationDefects(states).dataSync())));
    tf.dispose([states, exact]);
  }
  const channels = ['mass', 'momentum_x', 'momentum_y', 'energy'];
  for (let c = 0; c < 4; c++) t.comment(`${channels[c]} RMS residual ${fmt(perChannel[c])}; orders ${fmtRates(rates(perChannel[c]))}`);
  t.comment(`all cells: solver ${fmt(total)} (orders ${fmtRates(rates(total))}); exact samples ${fmt(exactTotal)} (orders ${fmtRates(rates(exactTotal))})`);
  t.comment(`away from extrema: solver ${fmt(smooth)} (orders ${fmtRates(rates(smooth))}); exact samples ${fmt(exactSmooth)} (orders ${fmtRates(rates(exactSmooth))})`);
  t.comment(`equation of state max ${fmt(eos)}; periodic conservation defects max ${fmt(defects)}`);
  // the stencil itself: second order on exact samples
  for (const r of rates(exactTotal)) t.ok(r > 1.85 && r < 2.15, `truncation order on exact samples ${r.toFixed(2)} in (1.85, 2.15)`);
  // the solver's frames: second order where its limiters are inactive ...
  const smoothRates = rates(smooth);
  t.ok(smoothRates[1] > 1.7 && smoothRates[1] < 2.3, `order away from extrema ${smoothRates[1].toFixed(2)} in (1.7, 2.3)`);
  t.ok(smoothRates[0] > 1.7 && smoothRates[0] < 2.7, `order away from extrema, coarsest pair ${smoothRates[0].toFixed(2)} in (1.7, 2.7)`);
  // ... and about 3/2 in RMS over all cells: limiters clip the slopes at smooth extrema, a first-order error there
  for (const r of rates(total)) t.ok(r > 1.3 && r < 1.7, `order over all cells ${r.toFixed(2)} in (1.3, 1.7) (limiter clipping at extrema)`);
  for (let i = 0; i < sizes.length; i++) {
    const ratio = smooth[i] / exactSmooth[i];
    t.ok(ratio > 0.5 && ratio < 3, `N=${sizes[i]}: solver / exact-sample residual away from extrema = ${ratio.toFixed(2)} in (0.5, 3)`);
    t.ok(eos[i] < 1e-6, `equation of state holds to float32 rounding (${eos[i].toExponential(2)})`);
    t.ok(defects[i] < 1e-7, `periodic totals are conserved (${defects[i].toExponential(2)})`);
  }
});

t.test('Euler residual with open boundaries converges too (one-sided edges), and shapes agree', async (t) => {
  const errors: number[] = [];
  const t0 = 0.05;
  for (const n of [32, 64, 128]) {
    const dt = 1 / n;
    // open boundaries: the solver's zero-gradient ghost cells disturb the wave near the edges; early frames and
    // the inner half (which that disturbance has not reached), away from the extrema
    const res = new EulerResidual({ gamma: 1.4, dt, dx: 1 / n, dy: 1 / n, boundary: 'open' });
    const [a, b] = smoothEulerPair(n, t0, dt, 'open');
    const states = pairTensor(a, b, n, n, 5);
    const r = residualData(res, states);
    errors.push(regionRms(r, 5, 4, smoothRegion(n, t0 + dt / 2, n / 4)));
    // a (B, X, Y, C) frame and its successor give the same as the (B, 2, X, Y, C) stack
    const [f0, f1] = [tf.tensor(a, [1, n, n, 5]), tf.tensor(b, [1, n, n, 5])];
    const r2 = tf.tidy(() => res.residual(f0, f1).dataSync());
    t.same(Array.from(r2), Array.from(r), `N=${n}: pair and stack shapes agree`);
    tf.dispose([states, f0, f1]);
  }
  t.comment(`open boundaries, inner half away from extrema: RMS residual ${fmt(errors)}; orders ${fmtRates(rates(errors))}`);
  for (const r of rates(errors)) t.ok(r > 1.7 && r < 2.7, `order ${r.toFixed(2)} in (1.7, 2.7)`);
  // the edges use one-sided differences: exact for a linear field
  const n = 8;
  const lin = new Float32Array(5 * n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) lin.set([3 + 0.1 * i, 1 + 0.05 * i + 0.02 * j, 1, 0, 0], 5 * (i * n + j));
  const res = new EulerResidual({ gamma: 1.4, dt: 0.1, dx: 1, dy: 1, boundary: 'open' });
  // momentum 0: the mass and energy fluxes vanish; the x-momentum flux p = 0.4 (E - 0) has slope 0.04
  const r = residualData(res, pairTensor(lin, lin, n, n, 5));
  let worst = 0;
  for (let k = 0; k < n * n; k++) worst = Math.max(worst, Math.abs(r[5 * k] - 0), Math.abs(r[5 * k + 1] - 0.04), Math.abs(r[5 * k + 2] - 0), Math.abs(r[5 * k + 3] - 0));
  t.ok(worst < 1e-6, `one-sided edge differences exact on a linear field (${worst.toExponential(2)})`);
});

t.test('Euler: added noise raises the residual by more than an order of magnitude', async (t) => {
  const n = 64;
  const dt = 1 / n;
  const res = new EulerResidual({ gamma: 1.4, dt, dx: 1 / n, dy: 1 / n, boundary: 'periodic' });
  const [a, b] = smoothEulerPair(n, 0.1, dt);
  const clean = pairTensor(a, b, n, n, 5);
  const eps = noise(2 * 5 * n * n, 11, 1e-3);
  const noisy = tf.tidy(() => clean.add(tf.tensor(eps, clean.shape)));
  const m0 = tf.tidy(() => res.meanSquare(clean).dataSync()[0]);
  const m1 = tf.tidy(() => res.meanSquare(noisy).dataSync()[0]);
  const ratio = Math.sqrt(m1 / m0);
  t.comment(`RMS residual clean ${Math.sqrt(m0).toExponential(2)}, with 1e-3 noise ${Math.sqrt(m1).toExponential(2)} (x${ratio.toFixed(1)})`);
  t.ok(ratio > 10, `noise of 1e-3 raises the RMS residual ${ratio.toFixed(1)}x > 10x`);
  tf.dispose([clean, noisy]);
});

t.test('Euler: quadrant trajectories conserve periodic totals; the factory reads a Well description', async (t) => {
  const task = { system: 'euler' as const, resolution: 32, gamma: 1.4, boundary: 'periodic' as const, snapshots: 3, dt: 0.015, seed: 5 };
  const frames = [...eulerTrajectory(task)].map((s) => {
    const out = new Float32Array(5 * s.density.length);
    for (let k = 0; k < s.density.length; k++) out.set([s.energy[k], s.density[k], s.pressure[k], s.momentumX[k], s.momentumY[k]], 5 * k);
    return out;
  });
  const spec = taskSpec(task);
  const description: ResidualDescription = {
    channels: SYSTEM_FIELDS.euler.flatMap((f) => (f.order ? [`${f.name}_x`, `${f.name}_y`] : [f.name])),
    coords: [spec.coords.x, spec.coords.y],
    dt: spec.time[1] - spec.time[0],
    boundaries: spec.boundaryConditions.map((b) => b.bcType),
    parameters: Object.fromEntries((spec.scalars ?? []).map((s) => [s.name, s.value])),
  };
  const res = residualFor('euler', description) as EulerResidual;
  t.same(res.fields, ['density', 'momentum_x', 'momentum_y', 'energy', 'pressure']);
  t.equal(res.dx, 1 / 32);
  t.equal(res.dt, 0.015);
  const data = new Float32Array(3 * frames[0].length);
  frames.forEach((f, k) => data.set(f, k * f.length));
  const states = tf.tensor(data, [1, 3, 32, 32, 5]);
  const r = tf.tidy(() => res.residual(states));
  t.same(r.shape, [1, 2, 32, 32, 5], '(B, T, X, Y, C) gives T - 1 residual frames');
  const defects = tf.tidy(() => res.conservationDefects(states));
  t.same(defects.shape, [1, 2, 4]);
  const d = defects.dataSync();
  t.ok(maxAbs(d) < 1e-6, `conservation defects ${fmt(Array.from(d))}`);
  const eos = tf.tidy(() => res.equationOfState(states));
  t.same(eos.shape, [1, 3, 32, 32, 1]);
  t.ok(maxAbs(eos.dataSync()) < 1e-5, 'equation of state of every frame holds');
  // the discontinuous quadrant problem leaves O(1/dx) residuals at its shocks, smooth regions stay small
  const rd = r.dataSync();
  t.comment(`quadrant frames: RMS residual ${Math.sqrt(rd.reduce((s, x) => s + x * x, 0) / rd.length).toExponential(2)}, max ${maxAbs(rd).toExponential(2)}`);
  tf.dispose([states, r, defects, eos]);
});

t.test('Euler: gradients of the mean square match central differences', async (t) => {
  const n = 12;
  const res = new EulerResidual({ gamma: 1.4, dt: 0.02, dx: 1 / n, dy: 1 / n, boundary: 'periodic' });
  const [a, b] = smoothEulerPair(n, 0.1, 0.02);
  const base = pairTensor(a, b, n, n, 5);
  const states = tf.tidy(() => base.add(tf.tensor(noise(base.size, 3, 1e-2), base.shape)));
  const entries = strongEntries(res, states, 8, 1);
  // also one entry of each channel of the later frame (the pressure only enters the equation of state)
  for (let c = 0; c < 5; c++) entries.push(n * n * 5 + 5 * (3 * n + 4) + c);
  for (const { analytic, numeric } of gradientErrors(res, states, entries, 1e-3)) {
    const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-12);
    t.ok(rel < 1e-2, `analytic ${analytic.toExponential(4)} vs central difference ${numeric.toExponential(4)} (rel ${rel.toExponential(1)})`);
  }
  tf.dispose([base, states]);
});

// ---------------------------------------------------------------------------------------------- Rayleigh-Benard

function rbPair(ny: number, t0: number, dt: number): { frames: [Float32Array, Float32Array]; solver: RayleighBenardSolver } {
  const solver = new RayleighBenardSolver({ nx: 4 * ny, ny, rayleigh: 1e4, prandtl: 1, maxStep: 0.5 / ny });
  solver.setBuoyancy((x, y) => 1 - y + 0.2 * Math.sin(Math.PI * y) * Math.cos((Math.PI * x) / 2));
  solver.advanceTo(t0);
  const a = rbFrame(solver);
  solver.advanceTo(t0 + dt);
  return { frames: [a, rbFrame(solver)], solver };
}

t.test('Rayleigh-Benard residuals on the solver output converge at second order on the Chebyshev grid', async (t) => {
  const sizes = [8, 16, 32];
  const div: number[] = [];
  const buoyancy: number[] = [];
  const scales: number[] = [];
  for (const ny of sizes) {
    const dt = 2 / ny;
    const { frames, solver } = rbPair(ny, 2, dt);
    const res = new RayleighBenardResidual({ rayleigh: 1e4, prandtl: 1, dt, dx: 4 / (4 * ny), y: chebyshevGaussNodes(ny) });
    const states = pairTensor(frames[0], frames[1], 4 * ny, ny, 4);
    const r = residualData(res, states);
    div.push(rms(r, 2, 0));
    buoyancy.push(rms(r, 2, 1));
    // the size of the terms the transport residual balances: (b1 - b0) / dt
    let s = 0;
    for (let k = 0; k < 4 * ny * ny; k++) s += ((frames[1][4 * k] - frames[0][4 * k]) / dt) ** 2;
    scales.push(Math.sqrt(s / (4 * ny * ny)));
    t.ok(solver.kineticEnergy() > 1e-4, `N=${ny}: the flow is moving (KE ${solver.kineticEnergy().toExponential(2)})`);
    states.dispose();
  }
  t.comment(`divergence RMS ${fmt(div)}; orders ${fmtRates(rates(div))}`);
  t.comment(`buoyancy transport RMS ${fmt(buoyancy)}; orders ${fmtRates(rates(buoyancy))}; |db/dt| RMS ${fmt(scales)}`);
  for (const r of rates(div)) t.ok(r > 1.6 && r < 2.6, `divergence order ${r.toFixed(2)} in (1.6, 2.6)`);
  for (const r of rates(buoyancy)) t.ok(r > 1.6 && r < 2.6, `buoyancy order ${r.toFixed(2)} in (1.6, 2.6)`);
  t.ok(buoyancy[2] < 0.05 * scales[2], `buoyancy residual ${buoyancy[2].toExponential(2)} well below |db/dt| ${scales[2].toExponential(2)}`);
});

t.test('Rayleigh-Benard: noise raises the residual by more than an order of magnitude; gradients check out', async (t) => {
  const ny = 16;
  const dt = 2 / ny;
  const { frames } = rbPair(ny, 2, dt);
  const res = residualFor('rayleigh-benard', {
    channels: RAYLEIGH_BENARD_CHANNELS,
    coords: [Array.from({ length: 4 * ny }, (_, i) => (4 * i) / (4 * ny)), Array.from(chebyshevGaussNodes(ny), Math.fround)],
    dt,
    boundaries: ['PERIODIC', 'WALL'],
    parameters: { Rayleigh: 1e4, Prandtl: 1 },
  });
  const clean = pairTensor(frames[0], frames[1], 4 * ny, ny, 4);
  const noisy = tf.tidy(() => clean.add(tf.tensor(noise(clean.size, 12, 1e-3), clean.shape)));
  const m0 = tf.tidy(() => res.meanSquare(clean).dataSync()[0]);
  const m1 = tf.tidy(() => res.meanSquare(noisy).dataSync()[0]);
  const ratio = Math.sqrt(m1 / m0);
  t.comment(`RMS residual clean ${Math.sqrt(m0).toExponential(2)}, with 1e-3 noise ${Math.sqrt(m1).toExponential(2)} (x${ratio.toFixed(1)})`);
  t.ok(ratio > 10, `noise of 1e-3 raises the RMS residual ${ratio.toFixed(1)}x > 10x`);

  const small = new RayleighBenardResidual({ rayleigh: 1e4, prandtl: 1, dt: 0.1, dx: 0.25, y: chebyshevGaussNodes(4) });
  const pair = rbPair(4, 1, 0.1).frames;
  const states = tf.tidy(() => pairTensor(pair[0], pair[1], 16, 4, 4).add(tf.tensor(noise(2 * 16 * 4 * 4, 4, 1e-2), [1, 2, 16, 4, 4])));
  const entries = strongEntries(small, states, 8, 2);
  entries.push(16 * 4 * 4 + 4 * (5 * 4 + 0) + 3, 4 * (7 * 4 + 3)); // a wall-row velocity of the later frame, a top-row buoyancy
  for (const { analytic, numeric } of gradientErrors(small, states, entries, 1e-3)) {
    const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-12);
    t.ok(rel < 1e-2, `analytic ${analytic.toExponential(4)} vs central difference ${numeric.toExponential(4)} (rel ${rel.toExponential(1)})`);
  }
  tf.dispose([clean, noisy, states]);
});

// ---------------------------------------------------------------------------------------------- Darcy

/** Nodes, a, u and f = -div(a grad u) of a manufactured problem on the N x N interior grid. */
function manufactured(n: number, coefficient: 'flat' | 'sloped'): { a: Float64Array; u: Float64Array; f: Float64Array } {
  const a = new Float64Array(n * n);
  const u = new Float64Array(n * n);
  const f = new Float64Array(n * n);
  const pi = Math.PI;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const x = (i + 1) / (n + 1);
      const y = (j + 1) / (n + 1);
      const s = Math.sin(pi * x) * Math.sin(pi * y);
      const sx = pi * Math.cos(pi * x) * Math.sin(pi * y);
      const sy = pi * Math.sin(pi * x) * Math.cos(pi * y);
      // flat: a - 1 = O(distance^3) at the walls; sloped: a has a normal gradient there
      const [av, ax, ay] = coefficient === 'flat' ? [1 + 0.5 * s ** 3, 1.5 * s * s * sx, 1.5 * s * s * sy] : [1 + 0.5 * x + 0.25 * y * y, 0.5, 0.5 * y];
      const k = i * n + j;
      a[k] = av;
      u[k] = s;
      f[k] = -(ax * sx + ay * sy - 2 * pi * pi * s * av);
    }
  return { a, u, f };
}

/** The Float64 stencil on interior arrays (n x n): the solver's darcyResidualOnGrid over the padded node grid. */
function darcyResidual64(a: ArrayLike<number>, u: ArrayLike<number>, n: number, f: number | ArrayLike<number> = 1): Float64Array {
  const size = n + 2;
  const pad = (v: ArrayLike<number>) => {
    if (v.length !== n * n) throw new RangeError(`expected n * n = ${n * n} values, got ${v.length}`);
    const out = new Float64Array(size * size);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[(i + 1) * size + j + 1] = v[i * n + j]!;
    return out;
  };
  return darcyResidualOnGrid(pad(a), pad(u), size, typeof f === 'number' ? f : pad(f));
}

t.test('Darcy: a manufactured solution leaves an O(h^2) residual', async (t) => {
  const sizes = [15, 31, 63];
  const flat: number[] = [];
  const slopedInner: number[] = [];
  const slopedEdge: number[] = [];
  for (const n of sizes) {
    const m = manufactured(n, 'flat');
    flat.push(maxAbs(darcyResidual64(m.a, m.u, n, m.f)));
    const s = manufactured(n, 'sloped');
    const r = darcyResidual64(s.a, s.u, n, s.f);
    let inner = 0;
    let edge = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        const nextToWall = i === 0 || j === 0 || i === n - 1 || j === n - 1;
        if (nextToWall) edge = Math.max(edge, Math.abs(r[i * n + j]));
        else inner = Math.max(inner, Math.abs(r[i * n + j]));
      }
    slopedInner.push(inner);
    slopedEdge.push(edge);
  }
  t.comment(`a flat at the walls: max |R| ${fmt(flat)}; orders ${fmtRates(rates(flat))}`);
  t.comment(`a sloped at the walls: inner max |R| ${fmt(slopedInner)} (orders ${fmtRates(rates(slopedInner))}); next to the walls ${fmt(slopedEdge)} (orders ${fmtRates(rates(slopedEdge))})`);
  for (const r of rates(flat)) t.ok(r > 1.8 && r < 2.2, `max-norm order ${r.toFixed(2)} in (1.8, 2.2)`);
  for (const r of rates(slopedInner)) t.ok(r > 1.8 && r < 2.2, `inner order ${r.toFixed(2)} in (1.8, 2.2)`);
  // the boundary faces take a at the node, not the face: an O(1) consistency error next to the wall
  for (const r of rates(slopedEdge)) t.ok(Math.abs(r) < 0.3, `next-to-wall residual does not shrink (order ${r.toFixed(2)})`);

  // the tfjs residual is the same stencil (float32)
  const n = 15;
  const m = manufactured(n, 'flat');
  const res = darcyResidual({ n, source: m.f });
  const data = new Float32Array(2 * n * n);
  for (let k = 0; k < n * n; k++) data.set([m.a[k], m.u[k]], 2 * k);
  const states = tf.tensor(data, [1, n, n, 2]);
  const r32 = residualData(res, states);
  const r64 = darcyResidual64(Float32Array.from(m.a), Float32Array.from(m.u), n, Float32Array.from(m.f));
  let worst = 0;
  for (let k = 0; k < n * n; k++) worst = Math.max(worst, Math.abs(r32[k] - r64[k]));
  // terms of size |u| a / h^2 ~ 256 in float32
  t.ok(worst < 1e-3, `tfjs and Float64Array residuals agree (max difference ${worst.toExponential(2)})`);
  states.dispose();
});

t.test('Darcy: the default f = 1, noise and gradients', async (t) => {
  // the stencil by hand at an interior node and a corner, with the default f = 1
  const n = 7;
  const a = Float64Array.from({ length: n * n }, (_, k) => 1 + 0.1 * (k % 5));
  const u = Float64Array.from({ length: n * n }, (_, k) => 0.01 * Math.sin(k));
  const r = darcyResidual64(a, u, n);
  // hand-computed centre node (3, 3): neighbours k +- n, k +- 1
  const k = 3 * n + 3;
  const h2 = 1 / 64;
  const face = (m: number): number => 0.5 * (a[k] + a[m]) * (u[m] - u[k]);
  t.ok(Math.abs(r[k] - (-(face(k + n) + face(k - n) + face(k + 1) + face(k - 1)) / h2 - 1)) < 1e-12, 'interior stencil');
  // a corner: two boundary faces with the node's own a
  const c = -(0.5 * (a[0] + a[n]) * (u[n] - u[0]) + 0.5 * (a[0] + a[1]) * (u[1] - u[0]) - 2 * a[0] * u[0]) / h2 - 1;
  t.ok(Math.abs(r[0] - c) < 1e-12, 'corner stencil');
  t.throws(() => darcyResidual64(a, u, 6), /n \* n/);
  t.throws(() => darcyResidualOnGrid(a, u, 9), /darcyResidualOnGrid: a has 49 values, expected 9 x 9/);

  const m = manufactured(31, 'flat');
  const res = darcyResidual({ n: 31, source: m.f });
  const data = new Float32Array(2 * 31 * 31);
  for (let q = 0; q < 31 * 31; q++) data.set([m.a[q], m.u[q]], 2 * q);
  const clean = tf.tensor(data, [1, 31, 31, 2]);
  const noisy = tf.tidy(() => clean.add(tf.tensor(noise(clean.size, 9, 1e-3), clean.shape)));
  const ratio = Math.sqrt(tf.tidy(() => res.meanSquare(noisy).dataSync()[0] / res.meanSquare(clean).dataSync()[0]));
  t.comment(`Darcy N=31: noise of 1e-3 raises the RMS residual ${ratio.toFixed(1)}x`);
  t.ok(ratio > 10, `noise raises the residual ${ratio.toFixed(1)}x > 10x`);

  const small = darcyResidual({ n });
  const sdata = new Float32Array(2 * n * n);
  for (let q = 0; q < n * n; q++) sdata.set([a[q], u[q] + 0.05], 2 * q);
  const states = tf.tensor(sdata, [1, n, n, 2]);
  const entries = [...strongEntries(small, states, 6, 5), 2 * 0 + 0, 2 * (n * n - 1) + 1];
  for (const { analytic, numeric } of gradientErrors(small, states, entries, 1e-3)) {
    const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 1e-12);
    t.ok(rel < 1e-2, `analytic ${analytic.toExponential(4)} vs central difference ${numeric.toExponential(4)} (rel ${rel.toExponential(1)})`);
  }
  tf.dispose([clean, noisy, states]);
});

// ---------------------------------------------------------------------------------------------- factory

t.test('residualFor names what it does not know', async (t) => {
  const euler: ResidualDescription = {
    channels: EULER_CHANNELS,
    coords: [[0.125, 0.375, 0.625, 0.875], [0.125, 0.375, 0.625, 0.875]],
    dt: 0.015,
    boundaries: ['PERIODIC', 'PERIODIC'],
    parameters: { gamma: 1.4 },
  };
  t.ok(residualFor('euler', euler) instanceof EulerResidual);
  t.throws(() => residualFor('navier-stokes' as 'euler', euler), /unknown system "navier-stokes" \(known: euler, rayleigh-benard, darcy\)/);
  t.throws(() => residualFor('euler', { ...euler, channels: [...EULER_CHANNELS, 'tracer'] }), /unknown channel tracer/);
  t.throws(() => residualFor('euler', { ...euler, channels: ['energy', 'density', 'pressure'] }), /lack channels momentum_x, momentum_y/);
  t.throws(() => residualFor('euler', { ...euler, parameters: {} }), /needs the parameter gamma/);
  t.throws(() => residualFor('euler', { ...euler, coords: undefined }), /needs the x node coordinates/);
  t.throws(() => residualFor('euler', { ...euler, coords: [[0, 0.1, 0.5, 0.9], euler.coords![1]] }), /x grid is not uniform/);
  t.throws(() => residualFor('euler', { ...euler, boundaries: ['WALL', 'WALL'] }), /PERIODIC or OPEN/);
  t.throws(() => residualFor('euler', { ...euler, dt: undefined }), /needs dt/);
  const rb: ResidualDescription = {
    channels: RAYLEIGH_BENARD_CHANNELS,
    coords: [[0, 0.5, 1, 1.5], Array.from(chebyshevGaussNodes(4))],
    dt: 0.25,
    boundaries: ['PERIODIC', 'WALL'],
    parameters: { Rayleigh: 1e6, Prandtl: 1 },
  };
  const r = residualFor('rayleigh-benard', rb) as RayleighBenardResidual;
  t.equal(r.kappa, 1e-3);
  t.throws(() => residualFor('rayleigh-benard', { ...rb, parameters: { Rayleigh: 1e6 } }), /needs the parameter Prandtl/);
  t.throws(() => residualFor('rayleigh-benard', { ...rb, coords: [rb.coords![0], [0, 0.3, 0.6, 1]] }), /strictly inside the walls/);
  t.throws(() => residualFor('rayleigh-benard', { ...rb, channels: EULER_CHANNELS }), /unknown channels energy, density, momentum_x, momentum_y/);
  t.ok(residualFor('darcy', { channels: DARCY_CHANNELS, shape: [7, 7] }));
  t.throws(() => residualFor('darcy', { channels: DARCY_CHANNELS }), /needs the grid/);
  t.throws(() => residualFor('darcy', { channels: DARCY_CHANNELS, coords: [[0.1, 0.2, 0.3], [0.25, 0.5, 0.75]] }), /interior nodes/);
  // states of the wrong shape
  const res = residualFor('euler', euler);
  t.throws(() => res.residual(tf.zeros([1, 4, 4, 5])), /T >= 2/);
  t.throws(() => res.residual(tf.zeros([1, 2, 4, 4, 4])), /the states have 4 channels, expected 5/);
  t.throws(() => res.residual(tf.zeros([1, 4, 4, 5]), tf.zeros([1, 4, 5, 5])), /one shape/);

  // describeWellMeta: what a parsed Well file provides
  const meta = {
    layout: { names: [...EULER_CHANNELS], fields: [], components: [] },
    coords: [Float32Array.from(euler.coords![0]), Float32Array.from(euler.coords![1])],
    time: Float32Array.from([0, 0.015, 0.03]),
    boundaryTable: Float32Array.from([2, 2, 2, 2]),
    simulationParameters: { gamma: 1.4 },
    constantScalars: [],
    nSpatialDims: 2,
  } as unknown as WellMeta;
  const d = describeWellMeta(meta);
  t.same(d.boundaries, ['PERIODIC', 'PERIODIC']);
  t.ok(Math.abs(d.dt! - 0.015) < 1e-8);
  const fromMeta = residualFor('euler', d) as EulerResidual;
  t.equal(fromMeta.boundary, 'periodic');
  t.equal(fromMeta.gamma, 1.4);
});
