/**
 * Every metric against the reference values in test/fixtures/metrics/the_well_metrics.json (computed by The
 * Well 1.2.1 and lola's fourier.py on float64 inputs), within 1e-6 relative.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { METRICS, scoreFrame } from '../../src/sinks/metrics/frame.js';
import {
  isotropicBinning,
  isotropicCrossCorrelation,
  isotropicPowerSpectrum,
} from '../../src/sinks/metrics/spectra.js';

interface Arr {
  shape: number[];
  values: number[];
}
interface Case {
  name: string;
  x: Arr;
  y: Arr;
  the_well: Record<string, Arr | Record<string, Arr>>;
  lola_fourier: Record<string, Arr | string>;
}
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/metrics/the_well_metrics.json', import.meta.url), 'utf8'),
) as { cases: Case[] };

/** Channel c of frame (b, t) of a (B, T, H, W, C) array, as a row-major (H, W) Float64Array. */
function frame(a: Arr, b: number, tt: number, c: number): Float64Array {
  const [, T, H, W, C] = a.shape as [number, number, number, number, number];
  const out = new Float64Array(H * W);
  const base = (b * T + tt) * H * W * C;
  for (let p = 0; p < H * W; p++) out[p] = a.values[base + p * C + c]!;
  return out;
}

function close(t: Test, actual: number, expected: number, what: string, rel = 1e-6): void {
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
  if (!(err <= rel)) t.fail(`${what}: got ${actual}, expected ${expected} (relative error ${err})`);
  else t.pass(what);
}

const wellNames: Record<string, (typeof METRICS)[number]> = {
  MSE: 'mse',
  RMSE: 'rmse',
  NRMSE: 'nrmse',
  VRMSE: 'vrmse',
  LInfinity: 'linf',
  PearsonR: 'pearson_r',
};

for (const c of fixture.cases) {
  t.test(c.name, async (t) => {
    const [B, T, H, W, C] = c.x.shape as [number, number, number, number, number];
    const shape = [H, W];
    const lola = c.lola_fourier as Record<string, Arr>;
    const binning = isotropicBinning(shape);
    t.same([...binning.counts], lola.binning_counts!.values, 'lola bin counts');
    binning.edges.forEach((e, i) => close(t, e, lola.binning_edges!.values[i]!, `lola edge ${i}`, 1e-7));
    for (let b = 0; b < B; b++) {
      for (let tt = 0; tt < T; tt++) {
        for (let ch = 0; ch < C; ch++) {
          const x = frame(c.x, b, tt, ch);
          const y = frame(c.y, b, tt, ch);
          const at = ((b * T + tt) * C + ch);
          const where = `[b=${b}, t=${tt}, c=${ch}]`;
          const scores = scoreFrame(y, [x], shape);
          for (const [name, ours] of Object.entries(wellNames)) {
            const ref = (c.the_well[name] as Arr).values[at]!;
            close(t, scores.values[METRICS.indexOf(ours)]!, ref, `${name} ${where}`);
          }
          const spectral = c.the_well.binned_spectral_mse as Record<string, Arr>;
          for (let bin = 0; bin < 3; bin++) {
            const mse = spectral[`spectral_error_mse_per_bin_${bin}`]!.values[at]!;
            const nmse = spectral[`spectral_error_nmse_per_bin_${bin}`]!.values[at]!;
            close(t, scores.values[METRICS.indexOf(`spectral_mse_${bin}` as never)]!, mse, `mse bin ${bin} ${where}`);
            close(t, scores.values[METRICS.indexOf(`spectral_nmse_${bin}` as never)]!, nmse, `nmse bin ${bin} ${where}`);
          }
          const K = lola.frequencies!.shape[0]!;
          const px = isotropicPowerSpectrum(x, shape);
          const py = isotropicPowerSpectrum(y, shape);
          const cxy = isotropicCrossCorrelation(x, y, shape);
          for (let k = 0; k < K; k++) {
            close(t, px.power[k]!, lola.isotropic_power_spectrum_x!.values[at * K + k]!, `P_x bin ${k} ${where}`);
            close(t, py.power[k]!, lola.isotropic_power_spectrum_y!.values[at * K + k]!, `P_y bin ${k} ${where}`);
            close(t, cxy.cross[k]!, lola.isotropic_cross_correlation_xy!.values[at * K + k]!, `C_xy bin ${k} ${where}`);
            close(t, px.frequencies[k]!, lola.frequencies!.values[k]!, `frequency ${k}`, 1e-7);
          }
          // The frame's spectra are the same functions (truth = y, single member = x).
          close(t, scores.truthPower[0]!, py.power[0]!, `frame truth power ${where}`, 1e-12);
          close(t, scores.predictionPower[0]!, px.power[0]!, `frame prediction power ${where}`, 1e-12);
        }
      }
    }
  });
}
