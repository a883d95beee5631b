// Steady Darcy flow (src/physics/darcy.ts) and its Well dataset (`generate darcy`): second-order convergence
// on a manufactured solution, the exact discrete eigenfunction of the constant-coefficient stencil, PCG to its
// tolerance on the true residual, the random coefficient (its cosine sum against a direct evaluation, two values,
// balance, smoothness, reproducibility), and the dataset written by the compiled CLI read back by the Well
// reader and accepted by `inspect`.
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  darcyCoefficient,
  darcyResidualOnGrid,
  darcySample,
  gaussianRandomField,
  modeOrder,
  solveDarcy,
  thresholdCoefficient,
} from '../../src/physics/darcy.js';
import { createRng, trajectorySeed } from '../../src/streams/random.js';
import { runTask, simulationTasks, taskSpec } from '../../src/physics/simulate/index.js';
import { generateDataset, parameterSets } from '../../pipelines/jobs/generate.js';
import { command } from '../../pipelines/commands/generate.js';
import { UsageError } from '../../pipelines/cli/command.js';
import { parseStatsYaml } from '../../src/formats/well/stats.js';
import { closeWellPool, openWellDataset, wellSplitDir } from '../../src/formats/well/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

const dir = await mkdtemp(join(tmpdir(), 'wellspring-darcy-'));
t.teardown(async () => {
  await closeWellPool();
  await rm(dir, { recursive: true, force: true });
});

const norm2 = (v: ArrayLike<number>): number => {
  let s = 0;
  for (let k = 0; k < v.length; k++) s += v[k]! * v[k]!;
  return Math.sqrt(s);
};

/** Values of `fn(x, y)` on the size x size nodes of [0,1]^2, x-major. */
function onGrid(size: number, fn: (x: number, y: number) => number): Float64Array {
  const out = new Float64Array(size * size);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) out[i * size + j] = fn(i / (size - 1), j / (size - 1));
  return out;
}

t.test('manufactured solution: second-order convergence with a smooth coefficient', async (t) => {
  const { sin, cos, PI } = Math;
  const uExact = (x: number, y: number) => sin(PI * x) * sin(PI * y);
  const a = (x: number, y: number) => 2 + sin(2 * PI * x + 0.3) * cos(PI * y);
  const ax = (x: number, y: number) => 2 * PI * cos(2 * PI * x + 0.3) * cos(PI * y);
  const ay = (x: number, y: number) => -PI * sin(2 * PI * x + 0.3) * sin(PI * y);
  // f = -div(a grad u) = -(a_x u_x + a_y u_y) + 2 pi^2 a u
  const f = (x: number, y: number) =>
    -(ax(x, y) * PI * cos(PI * x) * sin(PI * y) + ay(x, y) * PI * sin(PI * x) * cos(PI * y)) + 2 * PI * PI * a(x, y) * uExact(x, y);
  const sizes = [17, 33, 65, 129]; // h = 1/16 .. 1/128
  const errors: number[] = [];
  for (const size of sizes) {
    const sol = solveDarcy(onGrid(size, a), size, { f: onGrid(size, f), tolerance: 1e-11 });
    const exact = onGrid(size, uExact);
    let err = 0;
    for (let k = 0; k < exact.length; k++) err = Math.max(err, Math.abs(sol.u[k]! - exact[k]!));
    errors.push(err);
  }
  const orders = errors.slice(1).map((e, k) => Math.log2(errors[k]! / e));
  t.comment(`max errors ${errors.map((e) => e.toExponential(3)).join(', ')}; observed orders ${orders.map((p) => p.toFixed(3)).join(', ')}`);
  // The faces next to the boundary take the node's own a (first-order there), which adds an O(h^3) term to the
  // O(h^2) error: the observed order approaches 2 from below, its deficit roughly halving with each refinement.
  for (const [k, p] of orders.entries()) t.ok(p > 1.7 && p < 2.1, `order ${p.toFixed(3)} between h = 1/${sizes[k]! - 1} and 1/${sizes[k + 1]! - 1} is in [1.7, 2.1]`);
  t.ok(orders.at(-1)! > 1.93 && orders.at(-1)! < 2.05, `finest order ${orders.at(-1)!.toFixed(3)} is 2 within [-0.07, +0.05]`);
  for (let k = 1; k < orders.length; k++) {
    t.ok(Math.abs(2 - orders[k]!) < 0.7 * Math.abs(2 - orders[k - 1]!), 'the order approaches 2 as h shrinks');
  }
  t.ok(errors.at(-1)! < 1e-3 && errors.at(-1)! > 1e-7, `error at h = 1/128 is small but not round-off (${errors.at(-1)!.toExponential(3)})`);
});

t.test('constant coefficient: sin(pi x) sin(pi y) is an exact discrete eigenfunction', async (t) => {
  // -Lap_h s = (8 / h^2) sin^2(pi h / 2) s, so with f = 2 pi^2 a s the discrete solution is s * pi^2 h^2 / (4 sin^2(pi h / 2))
  for (const size of [9, 20]) {
    const h = 1 / (size - 1);
    const s = onGrid(size, (x, y) => Math.sin(Math.PI * x) * Math.sin(Math.PI * y));
    const a = new Float64Array(size * size).fill(3);
    const f = s.map((v) => 2 * Math.PI * Math.PI * 3 * v);
    const scale = (Math.PI * Math.PI * h * h) / (4 * Math.sin((Math.PI * h) / 2) ** 2);
    const { u } = solveDarcy(a, size, { f, tolerance: 1e-12 });
    let err = 0;
    for (let k = 0; k < u.length; k++) err = Math.max(err, Math.abs(u[k]! - scale * s[k]!));
    t.ok(err < 1e-9, `size ${size}: discrete solution matches the eigenfunction to ${err.toExponential(2)}`);
  }
});

t.test('PCG reaches its tolerance on the true residual; both preconditioners agree', async (t) => {
  const size = 65;
  const N = size - 2;
  const a = darcyCoefficient(size, 7);
  for (const tolerance of [1e-6, 1e-10]) {
    const ic = solveDarcy(a, size, { tolerance });
    const R = darcyResidualOnGrid(a, ic.u, size, 1);
    const relative = norm2(R) / Math.sqrt(N * N); // ||f||_2 with f = 1 on the interior
    t.ok(relative <= tolerance * 1.001, `tolerance ${tolerance}: ||R|| / ||f|| = ${relative.toExponential(3)} (${ic.iterations} IC(0) iterations)`);
    t.ok(Math.abs(relative - ic.relativeResidual) <= 1e-3 * relative + 1e-15, 'the reported residual is the discrete residual');
    if (tolerance === 1e-10) {
      const jac = solveDarcy(a, size, { tolerance, preconditioner: 'jacobi' });
      t.ok(norm2(darcyResidualOnGrid(a, jac.u, size)) / N <= tolerance * 1.001, `Jacobi-PCG converges too (${jac.iterations} iterations)`);
      t.ok(ic.iterations < jac.iterations, `IC(0) takes fewer iterations than Jacobi (${ic.iterations} < ${jac.iterations})`);
      let diff = 0;
      let top = 0;
      for (let k = 0; k < ic.u.length; k++) {
        diff = Math.max(diff, Math.abs(ic.u[k]! - jac.u[k]!));
        top = Math.max(top, Math.abs(ic.u[k]!));
      }
      t.ok(diff < 1e-8 * top, `same solution (max difference ${diff.toExponential(2)} of ${top.toFixed(4)})`);
      // u = 0 on the boundary, positive inside (f > 0: maximum principle)
      let boundary = 0;
      let minInterior = Infinity;
      for (let i = 0; i < size; i++)
        for (let j = 0; j < size; j++) {
          const v = ic.u[i * size + j]!;
          if (i === 0 || j === 0 || i === size - 1 || j === size - 1) boundary = Math.max(boundary, Math.abs(v));
          else minInterior = Math.min(minInterior, v);
        }
      t.equal(boundary, 0, 'zero Dirichlet boundary');
      t.ok(minInterior > 0, 'positive inside');
      // the residual sees a wrong solution
      const wrong = Float64Array.from(ic.u);
      const mid = (size >> 1) * size + (size >> 1);
      wrong[mid] = wrong[mid]! * 1.01;
      t.ok(norm2(darcyResidualOnGrid(a, wrong, size)) / N > 1e-4, 'a 1% change at one node shows in the residual');
    }
  }
  t.throws(() => solveDarcy(a, size, { maxIterations: 3 }), /did not converge.*after 3 iterations/);
  t.throws(() => solveDarcy(new Float64Array(size * size), size), /not a positive finite number/);
  t.throws(() => solveDarcy(a, size - 1), /expected 64 x 64/);
  t.throws(() => solveDarcy(a, size, { preconditioner: 'multigrid' as 'ic0' }), /preconditioner/);
  const zero = solveDarcy(a, size, { f: 0 });
  t.equal(zero.iterations, 0);
  t.equal(norm2(zero.u), 0, 'f = 0 gives u = 0');
});

t.test('Gaussian random field: the cosine sum, evaluated with the FFT, matches a direct sum', async (t) => {
  for (const [size, seed] of [[7, 1], [9, 2], [10, trajectorySeed(5, 3)]] as const) {
    const alpha = 2;
    const tau = 3;
    const rng = createRng(seed);
    const coef = new Float64Array(size * size);
    const order = [...modeOrder(size)];
    t.equal(new Set(order.map(([k1, k2]) => k1 * size + k2)).size, size * size, 'modeOrder visits every mode once');
    for (const [k1, k2] of order) {
      const xi = rng.normal();
      if (k1 === 0 && k2 === 0) continue;
      const norm = (k1 ? Math.SQRT2 : 1) * (k2 ? Math.SQRT2 : 1);
      coef[k1 * size + k2] = xi * norm * (Math.PI ** 2 * (k1 * k1 + k2 * k2) + tau * tau) ** (-alpha / 2);
    }
    const direct = onGrid(size, (x, y) => {
      let s = 0;
      for (let k1 = 0; k1 < size; k1++)
        for (let k2 = 0; k2 < size; k2++) s += coef[k1 * size + k2]! * Math.cos(Math.PI * k1 * x) * Math.cos(Math.PI * k2 * y);
      return s;
    });
    const g = gaussianRandomField(size, seed, { alpha, tau });
    let err = 0;
    let mean = 0;
    for (let k = 0; k < g.length; k++) err = Math.max(err, Math.abs(g[k]! - direct[k]!));
    t.ok(err < 1e-13, `size ${size}: FFT and direct cosine sums agree to ${err.toExponential(2)}`);
    // trapezoidal mean of a cosine series without the constant mode is exactly zero
    for (let i = 0; i < size; i++)
      for (let j = 0; j < size; j++) mean += g[i * size + j]! * (i % (size - 1) ? 1 : 0.5) * (j % (size - 1) ? 1 : 0.5);
    t.ok(Math.abs(mean) < 1e-12, 'zero (trapezoidal) mean');
  }
});

t.test('thresholded coefficient: two values, balanced, smooth, reproducible per seed', async (t) => {
  const size = 33;
  const seeds = Array.from({ length: 64 }, (_, i) => trajectorySeed(11, i));
  const fractions: number[] = [];
  const values = new Set<number>();
  let samePairs = 0;
  let pairs = 0;
  for (const seed of seeds) {
    const a = darcyCoefficient(size, seed);
    let high = 0;
    for (let k = 0; k < a.length; k++) {
      values.add(a[k]!);
      if (a[k] === 12) high++;
    }
    fractions.push(high / a.length);
    for (let i = 0; i < size; i++)
      for (let j = 0; j < size; j++) {
        for (const next of [i + 1 < size ? (i + 1) * size + j : -1, j + 1 < size ? i * size + j + 1 : -1]) {
          if (next < 0) continue;
          pairs++;
          if (a[i * size + j] === a[next]) samePairs++;
        }
      }
  }
  t.same([...values].sort((x, y) => x - y), [3, 12], 'exactly the values 3 and 12');
  const mean = fractions.reduce((s, f) => s + f, 0) / fractions.length;
  const sd = Math.sqrt(fractions.reduce((s, f) => s + (f - mean) ** 2, 0) / (fractions.length - 1));
  t.comment(`fraction of a = 12 over ${seeds.length} seeds: mean ${mean.toFixed(3)}, sd ${sd.toFixed(3)}; equal neighbours ${(samePairs / pairs).toFixed(3)}`);
  t.ok(mean > 0.42 && mean < 0.58, `balanced on average (${mean.toFixed(3)})`);
  t.ok(sd > 0.02 && sd < 0.35, `fractions vary from sample to sample (sd ${sd.toFixed(3)})`);
  t.ok(samePairs / pairs > 0.8 && samePairs / pairs < 0.995, 'a smooth field: most neighbouring nodes share a value, not all');
  // reproducible, and different across seeds
  t.same(darcyCoefficient(size, seeds[3]!), darcyCoefficient(size, seeds[3]!), 'same seed, same field');
  t.same(gaussianRandomField(size, seeds[3]!), gaussianRandomField(size, createRng(seeds[3]!)), 'a seed or its generator');
  const x = darcyCoefficient(size, seeds[3]!);
  const y = darcyCoefficient(size, seeds[4]!);
  let differ = 0;
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) differ++;
  t.ok(differ > 0.1 * x.length, `different seeds give different fields (${differ} of ${x.length} nodes differ)`);
  t.same(Array.from(thresholdCoefficient([-1e-9, 0, 2], 5, 1)), [1, 5, 5], 'threshold at >= 0');
  // one seed, every resolution: the 33-node field is the 65-node one without its modes >= 33
  let tail = 0;
  let top = 0;
  let agree = 0;
  let diff2 = 0;
  let field2 = 0;
  for (const seed of seeds.slice(0, 8)) {
    const coarse = gaussianRandomField(33, seed);
    const fine = gaussianRandomField(65, seed);
    for (let i = 0; i < 33; i++)
      for (let j = 0; j < 33; j++) {
        const c = coarse[i * 33 + j]!;
        const f = fine[2 * i * 65 + 2 * j]!;
        tail = Math.max(tail, Math.abs(c - f));
        top = Math.max(top, Math.abs(f));
        diff2 += (c - f) ** 2;
        field2 += f * f;
        if (c >= 0 === f >= 0) agree++;
      }
  }
  const rms = Math.sqrt(diff2 / field2);
  t.comment(`33 vs 65 nodes: max difference ${tail.toExponential(2)} of max |g| ${top.toExponential(2)}, rms ratio ${rms.toExponential(2)}; threshold agrees at ${agree} of ${8 * 33 * 33}`);
  t.ok(tail < 0.06 * top && rms < 0.05, 'the coarse field is the fine one up to its small high-mode tail');
  t.ok(agree > 0.98 * 8 * 33 * 33, 'and the coefficient agrees at nearly every shared node (unrelated fields: about half)');
  // one sample end to end
  const sample = darcySample({ size: 17, seed: 4 });
  t.same(sample.a, darcyCoefficient(17, 4));
  t.ok(sample.relativeResidual <= 1e-10 && sample.iterations > 0);
});

t.test('darcy tasks and parameter sets', async (t) => {
  const [template] = parameterSets({ system: 'darcy', out: dir, resolution: 12, trajectories: 2 });
  t.same(template, { system: 'darcy', resolution: 12, alpha: 2, tau: 3, snapshots: 1 });
  const tasks = simulationTasks(template!, 2, 0);
  const spec = taskSpec(tasks[0]!);
  t.equal(spec.datasetName, 'darcy_flow');
  t.same(spec.fields, [{ name: 'a', order: 0 }, { name: 'u', order: 0 }]);
  t.same(Array.from(spec.time), [0]);
  t.equal(spec.coords.x![0], 0);
  t.equal(spec.coords.x![11], 1);
  t.same(spec.boundaryConditions!.map((b) => b.bcType), ['WALL', 'WALL']);
  const fields = runTask(tasks[1]!);
  const direct = darcySample({ size: 12, seed: tasks[1]!.seed });
  t.same(fields.a, Float32Array.from(direct.a));
  t.same(fields.u, Float32Array.from(direct.u));
  t.equal(parameterSets({ system: 'darcy', out: dir, resolution: 8, trajectories: 1, alphas: [1.5, 2], taus: [3] }).length, 2);
  t.throws(() => parameterSets({ system: 'darcy', out: dir, resolution: 8, trajectories: 1, dt: 0.1 }), /steady/);
  t.throws(() => parameterSets({ system: 'darcy', out: dir, resolution: 2, trajectories: 1 }), />= 3 nodes/);
  for (const [argv, message] of [
    [['darcy', '--out', join(dir, 'bad'), '--dt', '0.1'], /--dt does not apply to darcy/],
    [['euler', '--out', join(dir, 'bad'), '--alpha', '2'], /darcy only/],
    [['darcy', '--out', join(dir, 'bad'), '--gamma', '1.4'], /euler only/],
    [['darcy', '--out', join(dir, 'bad'), '--tau', '0'], /--tau: "0"/],
  ] as [string[], RegExp][]) {
    const err = await command.run(argv).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof UsageError, `${argv.join(' ')}: a UsageError`);
    t.match((err as Error).message, message);
  }
});

t.test('generate darcy with --steps 2: window readers pair the state with itself', async (t) => {
  const out = join(dir, 'darcy-2');
  const result = await generateDataset({ system: 'darcy', out, resolution: 8, trajectories: 3, steps: 2, seed: 1, threads: 1, progress: false });
  t.same(result.generated, ['darcy_flow_alpha_2_tau_3']);
  const ds = await openWellDataset(wellSplitDir(out, 'train'), { nIn: 1, nOut: 1 });
  t.equal(ds.length, ds.files[0]!.nTrajectories, 'one window per trajectory');
  const s = await ds.sample(0);
  t.same(s.inputFields.data, s.outputFields.data, 'input and output are the same steady state');
});

t.test('generate darcy through the compiled CLI: read back and inspected', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const out = join(dir, 'darcy');
  const size = 16;
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const gen = run(['generate', 'darcy', '--out', out, '--resolution', String(size), '--trajectories', '6', '--threads', '2']);
  t.equal(gen.status, 0, `generate exits 0${gen.status ? `: ${gen.stderr.slice(-800)}` : ''}`);
  const stem = 'darcy_flow_alpha_2_tau_3';
  let total = 0;
  for (const split of ['train', 'valid', 'test'] as const) {
    const file = join(out, 'data', split, `${stem}.hdf5`);
    const inspected = run(['inspect', file, '--json']);
    t.equal(inspected.status, 0, `inspect accepts the ${split} file${inspected.status ? `: ${inspected.stderr.slice(-800)}` : ''}`);
    const meta = JSON.parse(inspected.stdout) as {
      datasetName: string;
      nSteps: number;
      nTrajectories: number;
      spatialShape: number[];
      channels: string[];
      coords: Record<string, { first: number; last: number; count: number }>;
      boundaryTable: { dim: string; low: string | number; high: string | number }[];
      boundaryConditions: { name: string; bcType: string }[];
    };
    t.equal(meta.datasetName, 'darcy_flow');
    t.equal(meta.nSteps, 1, 'one time step');
    t.same(meta.spatialShape, [size, size]);
    t.same(meta.channels, ['a', 'u']);
    t.same(meta.coords.x, { first: 0, last: 1, count: size });
    t.same(meta.boundaryConditions.map((b) => [b.name, b.bcType]), [['x_wall_dirichlet', 'WALL'], ['y_wall_dirichlet', 'WALL']]);
    total += meta.nTrajectories;
  }
  t.equal(total, 6, 'six trajectories over the three splits');

  // the Well reader: no (nIn = 1, nOut = 1) windows in a one-step file, but the trajectories read back
  const ds = await openWellDataset(wellSplitDir(out, 'train'), { nIn: 1, nOut: 1 });
  t.same(ds.layout.names, ['a', 'u']);
  t.equal(ds.length, 0, 'a one-step file has no input/output windows');
  const tasks = simulationTasks(parameterSets({ system: 'darcy', out, resolution: size, trajectories: 6 })[0]!, 6, 0);
  let n = 0;
  for await (const traj of ds.trajectories()) {
    t.equal(traj.nFrames, 1);
    for await (const frame of traj.frames) {
      const a = new Float64Array(size * size);
      const u = new Float64Array(size * size);
      for (let k = 0; k < size * size; k++) {
        a[k] = frame.channels[2 * k]!;
        u[k] = frame.channels[2 * k + 1]!;
      }
      t.ok(a.every((v) => v === 3 || v === 12), 'a takes the values 3 and 12');
      // the stored (float32) u solves the stored problem up to float32 rounding
      const relative = norm2(darcyResidualOnGrid(a, u, size)) / (size - 2);
      t.ok(relative < 1e-4, `trajectory ${traj.origin.trajectory}: relative residual of the stored pair ${relative.toExponential(2)}`);
      if (traj.origin.trajectory === 0) {
        const direct = runTask(tasks[0]!); // trajectory 0 is dealt to train first
        t.same(Float32Array.from(a), direct.a, 'the file holds the task simulated in-process');
        t.same(Float32Array.from(u), direct.u);
      }
    }
    n++;
  }
  t.equal(n, ds.files[0]!.nTrajectories);
  const stats = parseStatsYaml(await readFile(join(out, 'stats.yaml'), 'utf8'));
  t.ok((stats.mean.a as number) > 3 && (stats.mean.a as number) < 12, 'stats.yaml: mean a between the two values');
  t.ok((stats.mean.u as number) > 0 && (stats.std.u as number) > 0, 'stats.yaml: u positive on average and varying');
  t.same(stats.mean_delta, {}, 'no time differences in a one-step dataset');
});
