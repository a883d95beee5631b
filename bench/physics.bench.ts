/**
 * Physics benchmarks (one JSON line per figure):
 * - Euler solver throughput: cell updates per second on one core (MUSCL-Hancock + HLLC, one trajectory of a
 *   random quadrant problem at 64x64 and 128x128, to t = 0.3);
 * - Rayleigh-Benard solver throughput: cell updates per second on one core (128 x 32, Ra 1e6);
 * - the wall time to generate the 64x64 Euler dataset of 48 trajectories x 101 snapshots with two worker
 *   threads (the target: under 2 minutes on 2 cores), with the CPU time it used.
 * The machine is shared (2 cores, several engineers at once): wall times are noisy and the load average is
 * printed with each figure; CPU seconds are the steadier measure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EulerSolver } from '../src/physics/euler.js';
import { quadrantState, randomQuadrants } from '../src/physics/quadrants.js';
import { createRng } from '../src/streams/random.js';
import { RayleighBenardSolver } from '../src/physics/rayleigh-benard.js';
import { generateDataset } from '../pipelines/jobs/generate.js';

const bench = 'physics';
const emit = (figure: string, value: number, unit: string, context: Record<string, unknown> = {}): void =>
  console.log(
    JSON.stringify({ bench, figure, value: Number(value.toPrecision(4)), unit, load_avg_1m: Number(loadavg()[0].toFixed(2)), ...context }),
  );

function eulerThroughput(n: number): void {
  const solver = new EulerSolver({ nx: n, ny: n, gamma: 1.4, boundary: 'periodic' });
  solver.setPrimitive(quadrantState(randomQuadrants(createRng(11))));
  solver.advanceTo(0.02); // warm-up (JIT)
  const steps0 = solver.steps;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  solver.advanceTo(0.3);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const updates = (solver.steps - steps0) * n * n;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  emit('euler_cell_updates_per_s_per_core', updates / seconds, 'cell-updates/s', {
    grid: `${n}x${n}`,
    steps: solver.steps - steps0,
    cpu_share: Number((cpuSeconds / seconds).toFixed(2)),
  });
  // the same per second of CPU actually received: steadier on a shared machine
  emit('euler_cell_updates_per_cpu_s', updates / cpuSeconds, 'cell-updates/cpu-s', { grid: `${n}x${n}` });
}

function rayleighBenardThroughput(): void {
  const solver = new RayleighBenardSolver({ nx: 128, ny: 32, rayleigh: 1e6, prandtl: 1 });
  solver.setInitialState(1);
  solver.advanceTo(1);
  const steps0 = solver.steps;
  const t0 = performance.now();
  solver.advanceTo(6);
  const seconds = (performance.now() - t0) / 1000;
  emit('rayleigh_benard_cell_updates_per_s_per_core', ((solver.steps - steps0) * 128 * 32) / seconds, 'cell-updates/s', {
    grid: '128x32',
    steps: solver.steps - steps0,
  });
}

async function generation(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-bench-physics-'));
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const result = await generateDataset({
      system: 'euler',
      out: dir,
      resolution: 64,
      trajectories: 48,
      steps: 101,
      seed: 0,
      threads: 2,
      progress: false,
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    emit('generate_euler_64x64_48x101_wall', seconds, 's', {
      threads: 2,
      cpu_seconds: Number(cpuSeconds.toFixed(1)),
      trajectories: result.simulated,
      target_s: 120,
    });
    // what two otherwise idle cores would take: the CPU time split over two threads
    emit('generate_euler_64x64_48x101_cpu_over_2_cores', cpuSeconds / 2, 's', { target_s: 120 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

eulerThroughput(64);
eulerThroughput(128);
rayleighBenardThroughput();
await generation();
