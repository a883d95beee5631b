/** Shared helpers for the network tests: backend choice, seeded data, finite-difference gradient checks. */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { SeededRandom } from '../../src/streams/random.js';

/**
 * Selects the project backend (wasm here). Training needs Conv2DBackpropFilter, which stock tfjs-backend-wasm
 * lacks; until the project's kernels register it, tests that need conv gradients fall back to the cpu backend.
 */
export async function useBackend(needs: { convGradients?: boolean } = {}): Promise<string> {
  const info = await selectBackend();
  if (needs.convGradients && info.name === 'wasm' && !tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    await tf.setBackend('cpu');
    return 'cpu (wasm lacks Conv2DBackpropFilter)';
  }
  if (tf.getBackend() !== info.name) await tf.setBackend(info.name);
  return info.name;
}

/** A tensor of seeded standard normals (independent of the backend's RNG). */
export function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  const random = new SeededRandom(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = random.normal() * scale;
  return tf.tensor(values, shape);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sub(a, b).abs().max().dataSync()[0]);
}

export interface GradientCheck {
  name: string;
  analytic: number;
  numeric: number;
}

/**
 * Directional finite-difference check: for every variable v, a seeded random direction d (scaled to v's
 * typical magnitude), compares <grad L, d> with (L(v + eps d) - L(v - eps d)) / (2 eps). Restores the values.
 * Returns one row per variable.
 */
export function directionalGradients(
  loss: () => tf.Scalar,
  variables: Map<string, tf.Variable>,
  eps = 1e-2,
  seed = 7,
): GradientCheck[] {
  const list = [...variables.entries()];
  const { grads } = tf.variableGrads(loss, list.map(([, v]) => v));
  const rows: GradientCheck[] = [];
  let k = seed;
  for (const [name, v] of list) {
    const scale = tf.tidy(() => Math.max(v.abs().mean().dataSync()[0], 1e-2));
    const direction = randn(v.shape, k++, scale);
    const original = v.clone();
    const analytic = tf.tidy(() => grads[v.name].mul(direction).sum().dataSync()[0]);
    const at = (sign: number) => {
      v.assign(tf.tidy(() => original.add(direction.mul(sign * eps))));
      return tf.tidy(() => loss().dataSync()[0]);
    };
    const numeric = (at(1) - at(-1)) / (2 * eps);
    v.assign(original);
    original.dispose();
    direction.dispose();
    rows.push({ name, analytic, numeric });
  }
  for (const g of Object.values(grads)) g.dispose();
  return rows;
}

/** True when a row agrees within `rtol` relative to its size plus `atol`. */
export function agrees(row: GradientCheck, rtol = 2e-2, atol = 1e-4): boolean {
  return Math.abs(row.analytic - row.numeric) <= rtol * Math.max(Math.abs(row.analytic), Math.abs(row.numeric)) + atol;
}

/** Reference roll: y[i] = x[(i - shift) mod n] along `axis`, by index arithmetic on plain arrays. */
export function roll(x: tf.Tensor, shift: number, axis: number): tf.Tensor {
  const shape = x.shape;
  const src = x.dataSync();
  const out = new Float32Array(src.length);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const n = shape[axis];
  for (let flat = 0; flat < src.length; flat++) {
    const idx = Math.floor(flat / strides[axis]) % n;
    const target = (((idx + shift) % n) + n) % n;
    out[flat + (target - idx) * strides[axis]] = src[flat];
  }
  return tf.tensor(out, shape);
}

