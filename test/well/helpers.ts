/** Shared helpers for the Well tests: fixture paths, a tolerance checker, and a small synthetic spec. */
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WellFileSpec, WellTrajectory } from '../../src/formats/well/index.js';

export const fixtures = fileURLToPath(new URL('../fixtures/well/', import.meta.url));

/**
 * Largest violation ratio of |a - b| <= atol + rtol * |b| over paired values (<= 1 passes), with the worst
 * position, so a failing test says where.
 */
export function worst(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
): { ratio: number; at: number; actual: number; expected: number } {
  let best = { ratio: 0, at: -1, actual: NaN, expected: NaN };
  if (actual.length !== expected.length) return { ratio: Infinity, at: -1, actual: actual.length, expected: expected.length };
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const ratio = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(ratio <= best.ratio)) best = { ratio: Number.isNaN(ratio) ? Infinity : ratio, at: i, actual: a, expected: e };
  }
  return best;
}

export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'wellspring-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic pseudo-random float32 values. */
export function randomArray(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = offset + scale * (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5);
  }
  return out;
}

/** A 2-D spec with scalar, vector, tensor and constant fields, and mixed boundary conditions. */
export function demoSpec(X = 6, Y = 5, T = 4): WellFileSpec {
  return {
    datasetName: 'demo',
    spatialDims: ['x', 'y'],
    coords: { x: Array.from({ length: X }, (_, i) => (i + 0.5) / X), y: Array.from({ length: Y }, (_, i) => i * 0.25) },
    time: Array.from({ length: T }, (_, i) => 0.5 + i * 0.125),
    fields: [
      { name: 'density', order: 0 },
      { name: 'pressure', order: 0 },
      { name: 'velocity', order: 1 },
      { name: 'stress', order: 2, symmetric: true },
      { name: 'obstacle', order: 0, timeVarying: false },
    ],
    scalars: [
      { name: 'gamma', value: 1.4 },
      { name: 'Reynolds', value: 1000 },
    ],
    boundaryConditions: [
      { dim: 'x', bcType: 'PERIODIC' },
      { dim: 'y', bcType: 'WALL', name: 'y_wall_dirichlet' },
    ],
  };
}

/** Trajectories of random data for `demoSpec`, produced lazily frame by frame. */
export function demoTrajectories(spec: WellFileSpec, n: number, seed = 1): WellTrajectory[] {
  const X = spec.coords.x!.length;
  const Y = spec.coords.y!.length;
  const T = spec.time.length;
  return Array.from({ length: n }, (_, b) => ({
    constantFields: { obstacle: randomArray(X * Y, seed * 1000 + b, 1, 0.5) },
    frames: (function* () {
      for (let t = 0; t < T; t++) {
        const s = seed * 100000 + b * 100 + t;
        yield {
          fields: {
            density: randomArray(X * Y, s, 0.2, 1),
            pressure: randomArray(X * Y, s + 7, 2, 3),
            velocity: randomArray(X * Y * 2, s + 13, 1, 0),
            stress: randomArray(X * Y * 4, s + 17, 0.5, -0.1),
          },
        };
      }
    })(),
  }));
}
