/**
 * Helpers shared by the compute tests: seeded random shapes and arrays, running one computation on a named
 * backend, and the relative error used to compare two backends.
 */
import type { Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/streams/random.js';

/** Seeded draws for random test cases (all from one generator, so a seed fixes every case). */
export interface RandomCases {
  rng: Rng;
  /** One element of `xs`, uniformly. */
  pick<T>(xs: readonly T[]): T;
  /** A uniform integer in [lo, hi] (both ends included). */
  randInt(lo: number, hi: number): number;
  /** Standard normal values filling `shape`. */
  randn(shape: readonly number[]): Float32Array;
}

export function randomCases(seed: number): RandomCases {
  const rng = new Rng(seed);
  return {
    rng,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)],
    randInt: (lo, hi) => lo + Math.floor(rng.uniform() * (hi - lo + 1)),
    randn: (shape) => rng.normalArray(shape.reduce((a, b) => a * b, 1)),
  };
}

/** Runs `f` on a backend and returns its outputs as plain arrays (tensors disposed). */
export async function on(backend: string, f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(f);
  const data = await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return data;
}

/** max |a - b| / max |b|: the error of `a` relative to the scale of the reference `b`. */
export function maxRelErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let err = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

/** Central difference of `f` along a random direction vs the directional derivative from `tf.grad` (on wasm). */
export async function finiteDifference(
  t: Test,
  randn: RandomCases['randn'],
  label: string,
  shape: number[],
  f: (x: tf.Tensor) => tf.Scalar,
): Promise<void> {
  await tf.setBackend('wasm');
  const size = shape.reduce((a, b) => a * b, 1);
  const x0 = randn(shape);
  const v = randn(shape);
  const eps = 1e-2;
  const at = (s: number) =>
    tf.tidy(() => f(tf.tensor(x0.map((x, i) => x + s * v[i]), shape)).dataSync()[0]);
  const numeric = (at(eps) - at(-eps)) / (2 * eps);
  const g = tf.tidy(() => tf.grad(f)(tf.tensor(x0, shape)));
  const gv = (await g.data()).reduce((acc, gi, i) => acc + gi * v[i], 0);
  g.dispose();
  const rel = Math.abs(numeric - gv) / Math.max(1e-3, Math.abs(gv));
  t.ok(rel < 2e-2, `${label}: finite difference ${numeric.toFixed(5)} vs gradient ${gv.toFixed(5)} (size ${size})`);
}
