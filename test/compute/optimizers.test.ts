/**
 * The preconditioned optimisers on wasm: the dense linear-algebra helpers against their defining identities; SOAP
 * and PSGD-Kron against AdamW on an ill-conditioned, rotated Kronecker quadratic; SOAP's bases diagonalising their
 * accumulated factors; PSGD-Kron's Q whitening gradients of a known Gaussian; exact resume from checkpoints; a
 * checkpoint of one optimiser refused by another; and the trainer's non-finite guard leaving their state alone.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectBackend } from '../../src/models/backend/select.js';
import { pipe } from '../../src/streams/core.js';
import {
  PsgdKron,
  Rng,
  Soap,
  Trainer,
  cosineSchedule,
  createOptimizer,
  invertUpperTriangular,
  orthonormalize,
  symmetricEigen,
  type NamedParameters,
  type Optimizer,
  type OptimizerConfig,
} from '../../src/models/train/index.js';

let dir = '';
t.before(async () => {
  await selectBackend({ prefer: 'wasm' });
  dir = await mkdtemp(join(tmpdir(), 'wellspring-optim-'));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------------
// Dense helpers in doubles

function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number, ta = false, tb = false): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += (ta ? a[k * n + i]! : a[i * n + k]!) * (tb ? b[j * n + k]! : b[k * n + j]!);
      out[i * n + j] = s;
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const eye = (n: number) => Float64Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 1 : 0));

/** A random orthogonal n x n matrix (QR of a Gaussian matrix). */
function randomOrthogonal(n: number, rng: Rng): Float64Array {
  return orthonormalize(Float64Array.from(rng.normalArray(n * n)), n);
}

/** U diag(values) U^T. */
function fromSpectrum(u: Float64Array, values: number[], n: number): Float64Array {
  const scaled = Float64Array.from(u, (x, k) => x * values[k % n]!);
  return matmul(scaled, u, n, false, true);
}

t.test('dense helpers: eigen-decomposition, QR factor, triangular inverse', async (t) => {
  const rng = new Rng(7);
  const n = 12;
  const g = Float64Array.from(rng.normalArray(n * n));
  const sym = Float64Array.from({ length: n * n }, (_, k) => g[k]! + g[(k % n) * n + Math.floor(k / n)]!);
  const { values, vectors } = symmetricEigen(sym, n);
  const av = matmul(sym, vectors, n);
  const vl = Float64Array.from(vectors, (x, k) => x * values[k % n]!);
  t.ok(maxAbsDiff(av, vl) < 1e-10, `A V = V diag(w) (largest error ${maxAbsDiff(av, vl).toExponential(1)})`);
  t.ok(maxAbsDiff(matmul(vectors, vectors, n, true), eye(n)) < 1e-12, 'V^T V = I');
  t.ok(values.every((w, k) => k === 0 || w <= values[k - 1]!), 'eigenvalues decreasing');
  let trace = 0;
  for (let i = 0; i < n; i++) trace += sym[i * n + i]!;
  t.ok(Math.abs(values.reduce((a, b) => a + b, 0) - trace) < 1e-10, 'their sum is the trace');

  const q = orthonormalize(g, n);
  t.ok(maxAbsDiff(matmul(q, q, n, true), eye(n)) < 1e-12, 'Q^T Q = I');
  const r = matmul(q, g, n, true); // R = Q^T A
  let below = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) below = Math.max(below, Math.abs(r[i * n + j]!));
  t.ok(below < 1e-12, `Q^T A is upper triangular (largest entry below the diagonal ${below.toExponential(1)})`);
  t.ok(Array.from({ length: n }, (_, i) => r[i * n + i]!).every((d) => d >= 0), 'with a non-negative diagonal');
  const deficient = Float64Array.from(g);
  for (let i = 0; i < n; i++) deficient[i * n + 3] = 2 * deficient[i * n + 1]!; // column 3 = 2 column 1
  const qd = orthonormalize(deficient, n);
  t.ok(maxAbsDiff(matmul(qd, qd, n, true), eye(n)) < 1e-12, 'a rank-deficient matrix still gives an orthogonal Q');

  const u = Float64Array.from(g, (x, k) => (k % n >= Math.floor(k / n) ? x + (k % (n + 1) === 0 ? 4 : 0) : 0));
  const inv = invertUpperTriangular(u, n);
  t.ok(maxAbsDiff(matmul(u, inv, n), eye(n)) < 1e-10, 'U U^-1 = I');
  t.throws(() => invertUpperTriangular(new Float64Array(4), 2), /pivot 0 is 0/);
  t.throws(() => symmetricEigen(new Float64Array(5), 2), /expected an 2 x 2 matrix \(4 values\), got 5/);
});

// ---------------------------------------------------------------------------------------------------------
// An ill-conditioned quadratic with Kronecker-factored, rotated curvature

/**
 * f(W) = 0.5 ||L W R||_F^2 for W of shape [m, n]: Hessian (L^T L) (x) (R R^T), condition number 1e4, with
 * eigenvectors rotated away from the axes (so a diagonal preconditioner cannot undo it). Minimum 0 at W = 0.
 */
function quadratic(m: number, n: number, seed: number) {
  const rng = new Rng(seed);
  const spectrum = (k: number) => Array.from({ length: k }, (_, i) => 10 ** (-i / (k - 1))); // 1 .. 0.1
  const l = fromSpectrum(randomOrthogonal(m, rng), spectrum(m), m);
  const r = fromSpectrum(randomOrthogonal(n, rng), spectrum(n), n);
  const lt = tf.tensor2d(Float32Array.from(l), [m, m]);
  const rt = tf.tensor2d(Float32Array.from(r), [n, n]);
  const w0 = Float32Array.from(rng.normalArray(m * n));
  const loss = (w: tf.Tensor) => tf.tidy(() => lt.matMul(w as tf.Tensor2D).matMul(rt).square().sum().mul(0.5) as tf.Scalar);
  return { w0, loss, dispose: () => tf.dispose([lt, rt]) };
}

/** Runs `steps` full-gradient updates (cosine schedule from `lr`) and returns the final loss. */
async function minimise(config: OptimizerConfig, q: ReturnType<typeof quadratic>, shape: [number, number], steps: number): Promise<number> {
  const w = tf.variable(tf.tensor2d(q.w0, shape));
  const params: NamedParameters = new Map([['w', w]]);
  const optimizer = createOptimizer(config);
  const lr = cosineSchedule({ lr: config.lr!, total: steps });
  for (let s = 0; s < steps; s++) {
    const { grads } = tf.variableGrads(() => q.loss(w), [w]);
    await optimizer.apply(params, new Map([['w', grads[w.name]!]]), lr(s));
    tf.dispose(Object.values(grads));
  }
  const final = q.loss(w);
  const value = (await final.data())[0]!;
  tf.dispose([final, w]);
  optimizer.dispose();
  return value;
}

t.test('SOAP and PSGD-Kron beat AdamW on an ill-conditioned rotated quadratic', async (t) => {
  const shape: [number, number] = [12, 8];
  const q = quadratic(...shape, 3);
  const start = tf.tidy(() => q.loss(tf.tensor2d(q.w0, shape)).dataSync()[0]!);
  const steps = 150;
  const best = async (make: (lr: number) => OptimizerConfig) => {
    const losses = [];
    for (const lr of [0.3, 0.1, 0.03]) losses.push(await minimise(make(lr), q, shape, steps));
    return Math.min(...losses);
  };
  const adamw = await best((lr) => ({ name: 'adamw', lr, betas: [0.9, 0.99] }));
  const soap = await best((lr) => ({ name: 'soap', lr, frequency: 4 }));
  const psgd = await best((lr) => ({ name: 'psgd-kron', lr }));
  t.comment(`loss ${start.toExponential(2)} -> after ${steps} steps (best of lr 0.3, 0.1, 0.03): AdamW ${adamw.toExponential(2)}, SOAP ${soap.toExponential(2)}, PSGD-Kron ${psgd.toExponential(2)}`);
  t.ok(soap < adamw / 10, `SOAP at least 10x below AdamW (${(adamw / soap).toFixed(1)}x)`);
  t.ok(psgd < adamw / 10, `PSGD-Kron at least 10x below AdamW (${(adamw / psgd).toFixed(1)}x)`);
  q.dispose();
});

// ---------------------------------------------------------------------------------------------------------
// The preconditioners' defining properties

/**
 * Gaussian gradients with covariance S1 (x) S2 (x) I for a [m, n, r] parameter (r = 0: [m, n], no third factor):
 * G = Z x_1 C1 x_2 C2, with C_i C_i^T = S_i.
 */
function kroneckerGaussian(m: number, n: number, seed: number, r = 0) {
  const rng = new Rng(seed);
  const c1 = fromSpectrum(randomOrthogonal(m, rng), Array.from({ length: m }, (_, i) => 10 ** (-i / (m - 1))), m); // S1 = C1^2
  const c2 = fromSpectrum(randomOrthogonal(n, rng), Array.from({ length: n }, (_, i) => 3 * 10 ** (-0.5 * i / (n - 1))), n);
  const c1t = tf.tensor2d(Float32Array.from(c1), [m, m]);
  const c2t = tf.tensor2d(Float32Array.from(c2), [n, n]);
  const k3 = Math.max(r, 1);
  return {
    s1: matmul(c1, c1, m),
    s2: matmul(c2, c2, n),
    sample: (k: number) =>
      tf.tidy(() => {
        const z = tf.tensor2d(new Rng(1e6 + k).normalArray(m * n * k3), [m, n * k3]);
        const y = c1t.matMul(z).reshape([m, n, k3]).transpose([1, 0, 2]).reshape([n, m * k3]); // C1 along dim 0
        const g = c2t.matMul(y).reshape([n, m, k3]).transpose([1, 0, 2]); // C2 along dim 1
        return r > 0 ? g : g.reshape([m, n]);
      }),
    dispose: () => tf.dispose([c1t, c2t]),
  };
}

/** Largest off-diagonal entry of B^T S B relative to its largest diagonal entry. */
function offDiagonal(basis: ArrayLike<number>, s: ArrayLike<number>, n: number): number {
  const d = matmul(basis, matmul(s, basis, n), n, true);
  let off = 0;
  let diag = 0;
  for (let i = 0; i < n; i++) {
    diag = Math.max(diag, Math.abs(d[i * n + i]!));
    for (let j = 0; j < n; j++) if (i !== j) off = Math.max(off, Math.abs(d[i * n + j]!));
  }
  return off / diag;
}

t.test("SOAP's bases diagonalise their accumulated Kronecker factors", async (t) => {
  const [m, n] = [10, 6];
  const gauss = kroneckerGaussian(m, n, 11);
  const w = tf.variable(tf.zeros([m, n]));
  const params: NamedParameters = new Map([['w', w]]);
  const soap = new Soap({ lr: 0, frequency: 1, shampooBeta: 0.95 });
  const factors = async () => {
    const state = soap.stateTensors();
    return Promise.all([[0, m], [1, n]].map(async ([i, d]) => ({
      i: i!, d: d!, l: await state.get(`soap_gg${i}/w`)!.data(), q: await state.get(`soap_q${i}/w`)!.data(),
    })));
  };
  const step = async (g: tf.Tensor) => {
    await soap.apply(params, new Map([['w', g]]));
    g.dispose();
  };
  await step(gauss.sample(0));
  for (const { i, d, l, q } of await factors()) {
    const off = offDiagonal(q, l, d);
    t.ok(off < 1e-5, `on the first gradient, Q${i} = eigenvectors of L${i} = G_(${i}) G_(${i})^T (off-diagonal/diagonal ${off.toExponential(1)})`);
  }
  for (let k = 1; k < 200; k++) await step(gauss.sample(k));
  // Zero gradients: L only shrinks, so the power iterations converge to its eigenbasis
  for (let k = 0; k < 200; k++) await step(tf.zeros([m, n]));
  for (const { i, d, l, q } of await factors()) {
    const before = offDiagonal(eye(d), l, d);
    const after = offDiagonal(q, l, d);
    t.ok(after < 1e-3 && before > 0.05, `after 200 gradients and 200 refreshes, Q${i}^T L${i} Q${i} is diagonal: off-diagonal/diagonal ${after.toExponential(1)} (${before.toFixed(2)} in the parameter basis)`);
    t.ok(maxAbsDiff(matmul(q, q, d, true), eye(d)) < 1e-5, `Q${i} is orthogonal`);
  }
  t.same(await w.data(), new Float32Array(m * n), 'lr 0 leaves the parameter alone');
  tf.dispose(w);
  soap.dispose();
  gauss.dispose();
});

t.test("PSGD-Kron's Q whitens gradients of a known Gaussian: P S P = I", async (t) => {
  // a third, independent dimension of 48 (above maxDim: a diagonal factor) averages each fit over more samples
  const [m, n, r] = [6, 4, 48];
  const gauss = kroneckerGaussian(m, n, 5, r);
  const w = tf.variable(tf.zeros([m, n, r]));
  const params: NamedParameters = new Map([['w', w]]);
  // beta 0: the fit sees each gradient itself; frequency 1: a refit at every update
  const psgd = new PsgdKron({ lr: 0, beta: 0, frequency: 1, precondLr: 0.05, maxDim: 32, seed: 3 });
  for (let k = 0; k < 2000; k++) {
    const g = gauss.sample(k);
    await psgd.apply(params, new Map([['w', g]]));
    g.dispose();
  }
  const state = psgd.stateTensors();
  const q1 = await state.get('psgd_q0/w')!.data();
  const q2 = await state.get('psgd_q1/w')!.data();
  const q3 = await state.get('psgd_q2/w')!.data();
  t.same(state.get('psgd_q2/w')!.shape, [r], 'the dimension above maxDim has a diagonal factor');
  const p1 = matmul(q1, q1, m, true);
  const p2 = matmul(q2, q2, n, true);
  // P S P = (P1 S1 P1) (x) (P2 S2 P2) (x) diag(q3^4): each factor a multiple of I, the multiples' product 1
  const w1 = matmul(p1, matmul(gauss.s1, p1, m), m);
  const w2 = matmul(p2, matmul(gauss.s2, p2, n), n);
  const w3 = Array.from(q3, (x) => x ** 4);
  const mean1 = Array.from({ length: m }, (_, i) => w1[i * m + i]!).reduce((a, b) => a + b) / m;
  const mean2 = Array.from({ length: n }, (_, i) => w2[i * n + i]!).reduce((a, b) => a + b) / n;
  const mean3 = w3.reduce((a, b) => a + b) / r;
  const err1 = maxAbsDiff(w1.map((x) => x / mean1), eye(m));
  const err2 = maxAbsDiff(w2.map((x) => x / mean2), eye(n));
  // the diagonal factor's entries each fit on 24 samples per probe: their root-mean-square deviation
  const err3 = Math.sqrt(w3.reduce((a, x) => a + (x / mean3 - 1) ** 2, 0) / r);
  const unwhitened = maxAbsDiff(gauss.s1.map((x) => x / gauss.s1[0]!), eye(m));
  const worst = Math.max(err1, err2, err3);
  t.ok(worst < 0.15, `P_i S_i P_i proportional to I within ${worst.toFixed(3)} (${[err1, err2, err3].map((e) => e.toFixed(3)).join(', ')}; S1 itself: ${unwhitened.toFixed(2)})`);
  t.ok(Math.abs(mean1 * mean2 * mean3 - 1) < 0.1, `and their scales multiply to 1 (${(mean1 * mean2 * mean3).toFixed(3)})`);
  let upper = true;
  for (let i = 0; i < m; i++) for (let j = 0; j < i; j++) upper &&= q1[i * m + j] === 0;
  t.ok(upper, 'Q stays upper triangular');
  tf.dispose(w);
  psgd.dispose();
  gauss.dispose();
});

// ---------------------------------------------------------------------------------------------------------
// Through the trainer: checkpoints and the non-finite guard

function tinyNet(seed: number): NamedParameters {
  const rng = new Rng(seed);
  const v = (shape: number[], scale: number) =>
    tf.variable(tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1)).map((x) => x * scale), shape));
  return new Map([
    ['conv.weight', v([3, 3, 2, 4], 0.3)],
    ['conv.bias', v([4], 0.1)],
    ['head.weight', v([4, 3], 0.5)],
  ]);
}

interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor2D;
}

function tinyLoss(batch: Batch, { params }: { params: NamedParameters }): tf.Scalar {
  const p = (n: string) => params.get(n)!;
  const h = tf.conv2d(batch.x, p('conv.weight') as tf.Tensor4D, 1, 'same').add(p('conv.bias')).tanh();
  return h.mean([1, 2]).matMul(p('head.weight')).sub(batch.y).square().mean() as tf.Scalar;
}

async function* batches(from: number, to: number, poisoned = -1): AsyncGenerator<Batch> {
  for (let i = from; i < to; i++) {
    const rng = new Rng(500 + i);
    const x = rng.normalArray(2 * 5 * 5 * 2);
    if (i === poisoned) x[0] = NaN;
    yield { x: tf.tensor4d(x, [2, 5, 5, 2]), y: tf.tensor2d(rng.normalArray(6), [2, 3]) };
  }
}

async function losses(trainer: Trainer<Batch>, from: number, to: number, poisoned = -1): Promise<number[]> {
  const out: number[] = [];
  for await (const r of pipe(batches(from, to, poisoned), trainer.stage())) out.push(r.loss);
  return out;
}

async function stateValues(optimizer: Optimizer): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [k, x] of await optimizer.stateData()) out.set(k, Array.from(x.data));
  return out;
}

for (const config of [
  { name: 'soap', lr: 0.05, frequency: 3, weightDecay: 0.01 },
  { name: 'psgd-kron', lr: 0.05, frequency: 2, decay: 0.9, weightDecay: 0.01, seed: 5 },
] as const) {
  t.test(`${config.name}: a resumed run reproduces the uninterrupted one exactly`, async (t) => {
    const options = (params: NamedParameters) => ({
      params,
      loss: tinyLoss,
      optimizer: { ...config },
      schedule: cosineSchedule({ lr: config.lr, warmup: 2, total: 12 }),
      clipNorm: 0.5,
      seed: 42,
    });
    const full = new Trainer<Batch>(options(tinyNet(3)));
    const uninterrupted = await losses(full, 0, 12);
    const first = new Trainer<Batch>(options(tinyNet(3)));
    const head = await losses(first, 0, 7);
    const path = join(dir, `${config.name}.safetensors`);
    await first.save(path);
    const resumed = new Trainer<Batch>(options(tinyNet(99)));
    await resumed.restore(path);
    const tail = await losses(resumed, 7, 12);
    t.same([...head, ...tail], uninterrupted, 'identical losses, bit for bit');
    t.same(await stateValues(resumed.optimizer), await stateValues(full.optimizer), 'identical optimiser state');
    t.ok(uninterrupted[11]! < uninterrupted[0]!, `the loss fell (${uninterrupted[0]!.toFixed(3)} -> ${uninterrupted[11]!.toFixed(3)})`);

    const adamw = new Trainer<Batch>({ params: tinyNet(1), loss: tinyLoss, optimizer: { lr: 0.01 } });
    await t.rejects(adamw.restore(path), new RegExp(`holds ${config.name === 'soap' ? 'SOAP' : 'PSGD-Kron'} state, but this run trains with AdamW \\(train.optimizer\\)`));
    const adamPath = join(dir, `adamw-${config.name}.safetensors`);
    await losses(adamw, 0, 2);
    await adamw.save(adamPath);
    const other = new Trainer<Batch>(options(tinyNet(1)));
    await t.rejects(other.restore(adamPath), /holds AdamW state, but this run trains with/);
    for (const tr of [full, first, resumed, adamw, other]) {
      tr.dispose();
      for (const v of tr.params.values()) v.dispose();
    }
  });

  t.test(`${config.name}: a non-finite step is skipped without touching the state; tensor count stays flat`, async (t) => {
    const trainer = new Trainer<Batch>({ params: tinyNet(2), loss: tinyLoss, optimizer: { ...config }, clipNorm: 1 });
    await losses(trainer, 0, 4);
    const before = await stateValues(trainer.optimizer);
    const count = tf.memory().numTensors;
    const poisoned = await losses(trainer, 4, 5, 4);
    t.ok(Number.isNaN(poisoned[0]), 'the poisoned batch has a NaN loss');
    t.equal(trainer.skipped, 1, 'its update was skipped');
    t.same(await stateValues(trainer.optimizer), before, 'state untouched');
    await losses(trainer, 5, 25);
    t.equal(tf.memory().numTensors, count, `tensor count flat over 20 more steps (${count})`);
    trainer.dispose();
    for (const v of trainer.params.values()) v.dispose();
  });
}

t.test('unknown optimiser names and bad hyper-parameters are refused', async (t) => {
  t.throws(() => createOptimizer({ name: 'lion' } as unknown as OptimizerConfig), /unknown optimiser "lion" \(known: adamw, soap, psgd-kron\)/);
  t.throws(() => new Soap({ frequency: 0 }), /SOAP: frequency must be a positive integer, got 0/);
  t.throws(() => new PsgdKron({ precondLr: -1 }), /PSGD-Kron: precondLr must be positive, got -1/);
});
