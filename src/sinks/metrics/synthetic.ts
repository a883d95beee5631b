/**
 * Synthetic rollouts with known structure, for tests, benchmarks and demos of the metric and report sinks (not a
 * physical model): each field is a sum of random travelling Fourier modes; each ensemble member follows the same
 * modes with phase errors that grow with lead time and high-frequency damping (mimicking an over-smoothing
 * emulator), so errors grow, the spread tracks them, and predicted spectra fall below the truth at high k.
 */
import type { RolloutChunk } from './reducer.js';
import { Rng, memberSeed } from '../../streams/random.js';

export interface SyntheticOptions {
  model?: string;
  trajectories: number;
  leads: number;
  members: number;
  height: number;
  width: number;
  fields?: readonly string[];
  /** Lead times per chunk (default: the whole rollout in one chunk). */
  chunk?: number;
  seed?: number;
  /** Phase-error growth per lead time (radians); default 0.02. */
  drift?: number;
  /** Standard deviation of white noise added to truth and (independently) to each member; default 0.02. */
  noise?: number;
  /** Use Float64Array instead of Float32Array. */
  float64?: boolean;
}

/** A uniform [0, 1) source from the project's shared generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform();
}

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

interface Mode {
  kx: number;
  ky: number;
  amp: number;
  phase: number;
  omega: number;
}

/** Yields rollout chunks, trajectory by trajectory, each trajectory's leads in order. */
export async function* syntheticRollouts(options: SyntheticOptions): AsyncGenerator<RolloutChunk> {
  const { trajectories, leads, members, height: h, width: w } = options;
  const fields = options.fields ?? ['density', 'pressure'];
  const chunk = options.chunk ?? leads;
  const drift = options.drift ?? 0.02;
  const noise = options.noise ?? 0.02;
  // Separate streams for the truth and the members: the same seed gives the same truth whatever the ensemble.
  const next = rng(options.seed ?? 1);
  const memberNext = rng(memberSeed(options.seed ?? 1));
  const c = fields.length;
  const Arr = options.float64 ? Float64Array : Float32Array;
  for (let traj = 0; traj < trajectories; traj++) {
    const modes: Mode[][] = fields.map(() =>
      Array.from({ length: 12 }, () => {
        const kx = Math.floor(next() * 9) - 4;
        const ky = Math.floor(next() * 9) - 4;
        const k = Math.hypot(kx, ky) || 1;
        return { kx, ky, amp: (1 + next()) / k, phase: 2 * Math.PI * next(), omega: 0.2 * gaussian(next) };
      }),
    );
    const offsets = fields.map((_, i) => 1 + i);
    // Per member and mode, a random walk of phase errors.
    const phaseError = Array.from({ length: members }, () => fields.map((_, f) => modes[f]!.map(() => 0)));
    for (let start = 1; start <= leads; start += chunk) {
      const steps = Math.min(chunk, leads - start + 1);
      const truth = new Arr(steps * h * w * c);
      const ensemble = Array.from({ length: members }, () => new Arr(steps * h * w * c));
      for (let s = 0; s < steps; s++) {
        const lead = start + s;
        for (let m = 0; m < members; m++) {
          for (let f = 0; f < c; f++) {
            phaseError[m]![f] = phaseError[m]![f]!.map((e) => e + drift * gaussian(memberNext));
          }
        }
        for (let f = 0; f < c; f++) {
          modes[f]!.forEach((mode, mi) => {
            const k = Math.hypot(mode.kx, mode.ky);
            const damping = Math.exp((-0.002 * lead * k * k) / 4);
            for (let y = 0; y < h; y++) {
              for (let x = 0; x < w; x++) {
                const arg = 2 * Math.PI * ((mode.kx * x) / w + (mode.ky * y) / h) + mode.phase + mode.omega * lead;
                const p = ((s * h + y) * w + x) * c + f;
                truth[p]! += mode.amp * Math.sin(arg);
                for (let m = 0; m < members; m++) {
                  ensemble[m]![p]! += damping * mode.amp * Math.sin(arg + phaseError[m]![f]![mi]!);
                }
              }
            }
          });
          for (let y = 0; y < h * w; y++) {
            const p = (s * h * w + y) * c + f;
            truth[p]! += offsets[f]! + noise * gaussian(next);
            for (let m = 0; m < members; m++) ensemble[m]![p]! += offsets[f]! + noise * gaussian(memberNext);
          }
        }
      }
      yield {
        model: options.model,
        trajectory: traj,
        fields,
        spatialShape: [h, w],
        lead: start,
        truth,
        ensemble,
      };
    }
  }
}
