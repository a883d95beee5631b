/**
 * Schedules, preconditioning and loss weights against the formulas (formulas.md), at several noise levels, and
 * the denoising loss against an independent float64 computation with a known backbone.
 */
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/models/backend/index.js';
import { Rng } from '../../src/streams/random.js';
import {
  denoisingLoss,
  poissonDraw,
  drawNoise,
  edmFormulation,
  formulation,
  logLinearSchedule,
  logLogitSchedule,
  preconditionedDenoiser,
  rectifiedFlowSchedule,
  type Backbone,
} from '../../src/models/diffusion/index.js';

await selectBackend({ prefer: 'wasm' });

const close = (a: number, b: number, rel = 1e-5) => Math.abs(a - b) <= rel * Math.max(1, Math.abs(b));
const times = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1];

t.test('schedules follow their formulas', async (t) => {
  const s = logLogitSchedule();
  const tMin = 1e-3 / (1 + 1e-3);
  const tMax = 1e3 / (1 + 1e3);
  for (const time of times) {
    const u = tMin + time * (tMax - tMin);
    t.ok(close(s.sigma(time), Math.exp(Math.log(u / (1 - u)))) && s.alpha(time) === 1, `log-logit at t=${time}`);
  }
  t.ok(close(s.sigma(0), 1e-3) && close(s.sigma(1), 1e3), 'log-logit spans [1e-3, 1e3]');
  const ll = logLinearSchedule();
  t.ok(close(ll.sigma(0.5), 1) && close(ll.sigma(0), 1e-3) && close(ll.sigma(1), 1e3), 'log-linear');
  const rf = rectifiedFlowSchedule();
  for (const time of times) {
    t.ok(close(rf.sigma(time) / rf.alpha(time), s.sigma(time), 1e-9), `rectified flow has the log-logit noise-to-signal ratio at t=${time}`);
    t.ok(close(rf.alpha(time) + rf.sigma(time), 1, 1e-12), 'alpha = 1 - t, sigma = t');
  }
  const tt = tf.tensor1d(times);
  for (const sched of [s, ll, rf]) {
    const [a, sg] = sched.alphaSigma(tt);
    const av = a.dataSync();
    const sv = sg.dataSync();
    times.forEach((time, i) => {
      if (!close(av[i], sched.alpha(time), 1e-5) || !close(sv[i], sched.sigma(time), 1e-4)) t.fail(`${sched.name} tensor form at ${time}`);
    });
    tf.dispose([a, sg]);
  }
  tt.dispose();
  t.throws(() => logLogitSchedule({ sigmaMin: 1, sigmaMax: 0.5 }), /sigmaMin < sigmaMax/);
  t.throws(() => rectifiedFlowSchedule({ tMax: 1.5 }), /tMax <= 1/);
  t.throws(() => formulation('nope' as 'flow'), /expected 'diffusion' or 'flow'/);
});

t.test('preconditioning and loss weights equal the formulas at several noise levels', async (t) => {
  for (const name of ['diffusion', 'flow'] as const) {
    const f = formulation(name);
    const tt = tf.tensor1d(times);
    const [a, s] = f.schedule.alphaSigma(tt);
    const p = f.precondition(a, s);
    const w = f.lossWeight(a, s);
    const [cIn, cOut, cSkip, cNoise, weight] = [p.cIn, p.cOut, p.cSkip, p.cNoise, w].map((x) => x.dataSync());
    times.forEach((time, i) => {
      const alpha = f.schedule.alpha(time);
      const sigma = f.schedule.sigma(time);
      const expected =
        name === 'diffusion'
          ? {
              cIn: 1 / Math.sqrt(alpha ** 2 + sigma ** 2),
              cOut: sigma / Math.sqrt(alpha ** 2 + sigma ** 2),
              cSkip: alpha / (alpha ** 2 + sigma ** 2),
              weight: (alpha ** 2 + sigma ** 2) / sigma ** 2, // 1 / v, v = sigma^2 / (1 + sigma^2)
            }
          : { cIn: 1 / Math.sqrt(alpha ** 2 + sigma ** 2), cOut: -sigma, cSkip: 1, weight: 1 / sigma ** 2 };
      const ok =
        close(cIn[i], expected.cIn, 1e-4) &&
        close(cOut[i], expected.cOut, 1e-4) &&
        close(cSkip[i], expected.cSkip, 1e-4) &&
        close(cNoise[i], 10 * Math.log(sigma / alpha), 1e-4) &&
        close(weight[i], expected.weight, 1e-3);
      t.ok(ok, `${name} at sigma=${sigma.toPrecision(3)}: c_in ${cIn[i].toPrecision(4)}, c_out ${cOut[i].toPrecision(4)}, c_skip ${cSkip[i].toPrecision(4)}, c_noise ${cNoise[i].toPrecision(4)}, w ${weight[i].toPrecision(4)}`);
      // c_out^2 w = 1: the loss is a plain MSE in the network's output space.
      t.ok(close(cOut[i] ** 2 * weight[i], 1, 1e-3), `${name}: c_out^2 w = 1 at t=${time}`);
    });
    tf.dispose([tt, a, s, p.cIn, p.cOut, p.cSkip, p.cNoise, w]);
  }
  // EDM with the reference schedule is the 'diffusion' formulation
  t.equal(edmFormulation().schedule.name, 'log-logit');
  // Karras et al.'s general form with sigma_data = 0.5 (alpha = 1)
  const k = edmFormulation(logLogitSchedule(), { sigmaData: 0.5 });
  const sigmas = [0.002, 0.1, 0.5, 2, 80];
  const [a, s] = [tf.ones([5]) as tf.Tensor1D, tf.tensor1d(sigmas)];
  const p = k.precondition(a, s);
  const w = k.lossWeight(a, s);
  const [cIn, cOut, cSkip, weight] = [p.cIn, p.cOut, p.cSkip, w].map((x) => x.dataSync());
  sigmas.forEach((sigma, i) => {
    const sd = 0.5;
    const ok =
      close(cSkip[i], sd ** 2 / (sigma ** 2 + sd ** 2), 1e-4) &&
      close(cOut[i], (sigma * sd) / Math.sqrt(sigma ** 2 + sd ** 2), 1e-4) &&
      close(cIn[i], 1 / Math.sqrt(sigma ** 2 + sd ** 2), 1e-4) &&
      close(weight[i], (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2, 1e-3);
    t.ok(ok, `EDM sigma_data 0.5 at sigma ${sigma}: Karras et al.'s coefficients`);
  });
  tf.dispose([a, s, p.cIn, p.cOut, p.cSkip, p.cNoise, w]);
  t.throws(() => edmFormulation(logLogitSchedule(), { sigmaData: 0 }), /sigmaData must be positive/);
});

t.test('denoiser and weighted loss match an independent float64 computation', async (t) => {
  // A backbone with a closed form: F(y) = 0.5 y + 0.01 c_noise (broadcast), ignoring the mask and labels.
  const backbone: Backbone = (x, _mask, cNoise) =>
    tf.tidy(() => tf.add(tf.mul(x, 0.5), tf.reshape(tf.mul(cNoise!, 0.01), [-1, 1, 1, 1, 1])) as tf.Tensor5D);
  const B = 6;
  const shape = [B, 3, 2, 1, 2] as const;
  const size = 3 * 2 * 1 * 2;
  const frame = 2 * 1 * 2;
  const rng = new Rng(3);
  const x = Float32Array.from({ length: B * size }, () => rng.normal());
  const maskValues = Float32Array.from({ length: B * 3 }, (_, i) => (i % 3 < Math.floor(i / 3) % 3 ? 1 : 0)); // 0, 1, 2, 0, 1, 2 observed
  for (const name of ['diffusion', 'flow'] as const) {
    const f = formulation(name);
    const noise = drawNoise(new Rng(9), shape);
    const tv = noise.t.dataSync();
    const ev = noise.eps.dataSync();
    const xs = tf.tensor5d(x, [...shape]);
    const mask = tf.tensor2d(maskValues, [B, 3]);
    const loss = denoisingLoss(backbone, f, { x: xs, mask, labels: null }, noise).dataSync()[0];
    const lossNoMask = denoisingLoss(backbone, f, { x: xs, mask: null, labels: null }, noise).dataSync()[0];
    let expected = 0;
    let expectedNoMask = 0;
    for (let b = 0; b < B; b++) {
      const alpha = f.schedule.alpha(tv[b]);
      const sigma = f.schedule.sigma(tv[b]);
      const n2 = alpha ** 2 + sigma ** 2;
      const [cIn, cOut, cSkip, w] =
        name === 'diffusion'
          ? [1 / Math.sqrt(n2), sigma / Math.sqrt(n2), alpha / n2, n2 / sigma ** 2]
          : [1 / Math.sqrt(n2), -sigma, 1, 1 / sigma ** 2];
      const cNoise = 10 * Math.log(sigma / alpha);
      for (let k = 0; k < size; k++) {
        const i = b * size + k;
        const observed = maskValues[b * 3 + Math.floor(k / frame)] === 1;
        const noisy = alpha * x[i] + sigma * ev[i];
        for (const withMask of [true, false]) {
          const xt = withMask && observed ? Math.sqrt(n2) * x[i] : noisy;
          const d = cSkip * xt + cOut * (0.5 * cIn * xt + 0.01 * cNoise);
          const err = withMask && observed ? 0 : w * (d - x[i]) ** 2;
          if (withMask) expected += err / (B * size);
          else expectedNoMask += err / (B * size);
        }
      }
    }
    t.ok(close(loss, expected, 2e-3), `${name}: masked loss ${loss} = ${expected}`);
    t.ok(close(lossNoMask, expectedNoMask, 2e-3), `${name}: unmasked loss ${lossNoMask} = ${expectedNoMask}`);
    // the denoiser itself at one noise level
    const D = preconditionedDenoiser(backbone, f);
    const out = D(xs, 0.5, null, null).dataSync();
    const alpha = f.schedule.alpha(0.5);
    const sigma = f.schedule.sigma(0.5);
    const n2 = alpha ** 2 + sigma ** 2;
    const [cIn, cOut, cSkip] = name === 'diffusion' ? [1 / Math.sqrt(n2), sigma / Math.sqrt(n2), alpha / n2] : [1 / Math.sqrt(n2), -sigma, 1];
    const want = cSkip * x[5] + cOut * (0.5 * cIn * x[5] + 0.1 * Math.log(sigma / alpha));
    t.ok(close(out[5], want, 1e-4), `${name}: D(x_t, 0.5) = ${out[5]} (expected ${want})`);
    tf.dispose([noise.t, noise.eps, xs, mask]);
  }
  t.throws(
    () => denoisingLoss(backbone, formulation('diffusion'), { x: tf.zeros([2, 3, 1, 1, 1]) as tf.Tensor5D, mask: tf.zeros([2, 4]) as tf.Tensor2D, labels: null }, new Rng(1)),
    /mask shape \[2,4\] does not match window/,
  );
});

t.test('Poisson draws have the right mean and variance', async (t) => {
  const rng = new Rng(42);
  const n = 20000;
  const draws = Array.from({ length: n }, () => poissonDraw(rng, 1.5));
  const mean = draws.reduce((a, b) => a + b) / n;
  const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  t.ok(Math.abs(mean - 1.5) < 0.04 && Math.abs(variance - 1.5) < 0.08, `Poisson(1.5): mean ${mean.toFixed(3)}, variance ${variance.toFixed(3)}`);
  t.throws(() => poissonDraw(rng, -1), /rate must be in/);
});
