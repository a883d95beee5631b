/**
 * Test helper: a Gaussian target N(mu, Sigma) in D dimensions, whose optimal denoiser is known in closed form,
 * laid out as windows (B, 1, 1, 1, D).
 */
import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule } from '../../src/models/diffusion/index.js';

export interface Gaussian {
  mu: number[];
  /** Covariance, row-major D x D. */
  cov: number[][];
}

/** Symmetric eigen-decomposition by Jacobi rotations (float64), for small matrices. */
export function eigh(a: number[][]): { values: number[]; vectors: number[][] } {
  const n = a.length;
  const m = a.map((r) => r.slice());
  const v = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += m[i][j] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(m[p][q]) < 1e-300) continue;
        const theta = (m[q][q] - m[p][p]) / (2 * m[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k][p];
          const mkq = m[k][q];
          m[k][p] = c * mkp - s * mkq;
          m[k][q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p][k];
          const mqk = m[q][k];
          m[p][k] = c * mpk - s * mqk;
          m[q][k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: m.map((r, i) => r[i]), vectors: v };
}

/**
 * The exact denoiser E[x | x_t] = mu + Sigma alpha (alpha^2 Sigma + sigma^2 I)^-1 (x_t - alpha mu) for windows
 * (B, 1, 1, 1, D), computed with the eigenvectors of Sigma.
 */
export function gaussianDenoiser(target: Gaussian, schedule: NoiseSchedule) {
  const D = target.mu.length;
  const { values, vectors } = eigh(target.cov);
  const q = tf.tensor2d(vectors.flat(), [D, D]);
  const mu = tf.tensor1d(target.mu);
  const denoise = (xt: tf.Tensor5D, t: number): tf.Tensor5D =>
    tf.tidy(() => {
      const a = schedule.alpha(t);
      const s = schedule.sigma(t);
      const gains = tf.tensor1d(values.map((l) => (a * l) / (a * a * l + s * s)));
      const flat = tf.sub(tf.reshape(xt, [-1, D]), tf.mul(mu, a));
      const inEigen = tf.matMul(flat, q);
      const back = tf.matMul(tf.mul(inEigen, gains), q, false, true);
      return tf.reshape(tf.add(back, mu), xt.shape) as tf.Tensor5D;
    });
  return { denoise, dispose: () => tf.dispose([q, mu]) };
}

/** Sample mean and covariance (float64) of rows of a (N, D) array. */
export function moments(data: Float32Array, D: number): { mean: number[]; cov: number[][] } {
  const n = data.length / D;
  const mean = new Array<number>(D).fill(0);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mean[d] += data[i * D + d] / n;
  const cov = Array.from({ length: D }, () => new Array<number>(D).fill(0));
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < D; a++) {
      for (let b = 0; b < D; b++) cov[a][b] += ((data[i * D + a] - mean[a]) * (data[i * D + b] - mean[b])) / (n - 1);
    }
  }
  return { mean, cov };
}

/** max(|mean - mu|) + max(|cov - Sigma|) relative to the largest variance: one number for "how far". */
export function momentError(m: { mean: number[]; cov: number[][] }, target: Gaussian): number {
  const scale = Math.max(...target.cov.map((r, i) => r[i]));
  let em = 0;
  let ec = 0;
  for (let a = 0; a < target.mu.length; a++) {
    em = Math.max(em, Math.abs(m.mean[a] - target.mu[a]) / Math.sqrt(scale));
    for (let b = 0; b < target.mu.length; b++) ec = Math.max(ec, Math.abs(m.cov[a][b] - target.cov[a][b]) / scale);
  }
  return Math.max(em, ec);
}
