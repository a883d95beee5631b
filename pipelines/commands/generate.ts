/**
 * `wellspring generate euler|rayleigh-benard|darcy`: simulates a dataset with the built-in solvers and writes it in
 * The Well's layout (`<out>/data/{train,valid,test}/*.hdf5`, `<out>/stats.yaml`).
 */
import { lockDirectory } from '../cli/run-dir.js';
import { withInterrupt } from '../cli/pipeline-command.js';
import { UsageError, parseCommandArgs, type Command } from '../cli/command.js';
import { ALL_GAMMAS, generateDataset, parameterSets, type GenerateDatasetOptions } from '../jobs/generate.js';
import { EULER_GAMMA_PRESETS } from '../../src/physics/quadrants.js';

const help = `Usage: wellspring generate euler|rayleigh-benard|darcy --out DIR [options]

Simulates trajectories with the built-in solvers (one trajectory per worker thread task) and writes them as a
Well dataset: DIR/data/{train,valid,test}/<file>.hdf5 (one file per parameter set, named as in The Well,
trajectories dealt 0.8/0.1/0.1) and DIR/stats.yaml. Deterministic for a seed; re-running the same command
keeps completed files and finishes an interrupted run, re-using the trajectories it had already simulated
(cached in DIR/.wellspring/ until their files are complete). Progress goes to stderr; Ctrl-C stops cleanly.

Options:
  --out DIR            dataset root (required)
  --resolution N       euler: N x N cells (default 64); rayleigh-benard: N cells across the layer and 4N
                       along it, N a power of two (default 32; The Well: 128); darcy: N x N nodes of
                       [0,1]^2, boundary nodes included (default 64)
  --trajectories N     trajectories per parameter set (default 10)
  --steps N            snapshots per trajectory including t=0 (default: euler 101, rayleigh-benard 200;
                       darcy 1: the problem is steady, more steps store copies of the one state)
  --dt T               time between snapshots (default: euler 0.015, rayleigh-benard 0.25; not darcy)
  --seed S             global seed (default 0)
  --threads N          worker threads (default: number of cores)
  --compression L      gzip level 1-9 for the HDF5 datasets (default: none)
 euler:
  --gamma LIST         comma-separated gammas, or "all" for The Well's ten (default 1.4); presets:
                       ${EULER_GAMMA_PRESETS.map((p) => p.gamma).join(', ')}
  --bc periodic|open   boundary condition (default periodic)
 rayleigh-benard:
  --rayleigh LIST      comma-separated Rayleigh numbers (default 1e6)
  --prandtl LIST       comma-separated Prandtl numbers (default 1); one file per (Rayleigh, Prandtl) pair
 darcy (-div(a grad u) = 1 on [0,1]^2, u = 0 on the boundary; a = 12 where a Gaussian random field with
 covariance (-Laplacian + tau^2)^(-alpha) is >= 0, else 3; fields a and u, one time step):
  --alpha LIST         comma-separated covariance exponents (default 2)
  --tau LIST           comma-separated covariance shifts (default 3); one file per (alpha, tau) pair
  -h, --help           this help

Examples:
  wellspring generate euler --out data/euler --resolution 64 --trajectories 48 --steps 101 --seed 0
  wellspring generate rayleigh-benard --out data/rb --resolution 32 --trajectories 8 --rayleigh 1e6,1e7 --prandtl 1
  wellspring generate darcy --out data/darcy --resolution 64 --trajectories 1000 --seed 0`;

function positiveInt(text: string | undefined, option: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${option} must be a positive integer, got "${text}"`);
  return n;
}

function numberList(text: string | undefined, option: string): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((s) => s.trim());
  return values.map((s) => {
    const n = Number(s);
    if (s === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${option}: "${s}" is not a positive number`);
    return n;
  });
}

export const command: Command = {
  name: 'generate',
  summary: 'Simulate an Euler multi-quadrants, Rayleigh-Benard or Darcy flow dataset in The Well format',
  help,
  async run(argv) {
    const parsed = parseCommandArgs(argv, {
      out: { type: 'string' },
      resolution: { type: 'string' },
      trajectories: { type: 'string' },
      steps: { type: 'string' },
      dt: { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      compression: { type: 'string' },
      gamma: { type: 'string' },
      bc: { type: 'string' },
      rayleigh: { type: 'string' },
      prandtl: { type: 'string' },
      alpha: { type: 'string' },
      tau: { type: 'string' },
    });
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError('expected one system: euler, rayleigh-benard or darcy');
    const system = positionals[0];
    if (system !== 'euler' && system !== 'rayleigh-benard' && system !== 'darcy')
      throw new UsageError(`unknown system "${system}": expected euler, rayleigh-benard or darcy`);
    if (!values.out) throw new UsageError('--out DIR is required');
    if (system !== 'rayleigh-benard' && (values.rayleigh || values.prandtl))
      throw new UsageError('--rayleigh and --prandtl apply to rayleigh-benard only');
    if (system !== 'euler' && (values.gamma || values.bc))
      throw new UsageError('--gamma and --bc apply to euler only');
    if (system !== 'darcy' && (values.alpha || values.tau)) throw new UsageError('--alpha and --tau apply to darcy only');
    if (system === 'darcy' && values.dt !== undefined) throw new UsageError('--dt does not apply to darcy (a steady problem)');
    if (values.bc !== undefined && values.bc !== 'periodic' && values.bc !== 'open')
      throw new UsageError(`--bc must be periodic or open, got "${values.bc}"`);
    const seed = values.seed === undefined ? 0 : Number(values.seed);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got "${values.seed}"`);
    const dt = values.dt === undefined ? undefined : Number(values.dt);
    if (dt !== undefined && !(dt > 0)) throw new UsageError(`--dt must be a positive number, got "${values.dt}"`);
    const compression = values.compression === undefined ? undefined : Number(values.compression);
    if (compression !== undefined && !(Number.isInteger(compression) && compression >= 1 && compression <= 9))
      throw new UsageError(`--compression must be an integer 1-9, got "${values.compression}"`);
    const options: GenerateDatasetOptions = {
      system,
      out: values.out,
      resolution: positiveInt(values.resolution, '--resolution', system === 'rayleigh-benard' ? 32 : 64),
      trajectories: positiveInt(values.trajectories, '--trajectories', 10),
      steps: values.steps === undefined ? undefined : positiveInt(values.steps, '--steps', 1),
      dt,
      seed,
      threads: values.threads === undefined ? undefined : positiveInt(values.threads, '--threads', 1),
      compression,
      gammas: values.gamma === 'all' ? [...ALL_GAMMAS] : numberList(values.gamma, '--gamma'),
      boundary: values.bc as 'periodic' | 'open' | undefined,
      rayleighs: numberList(values.rayleigh, '--rayleigh'),
      prandtls: numberList(values.prandtl, '--prandtl'),
      alphas: numberList(values.alpha, '--alpha'),
      taus: numberList(values.tau, '--tau'),
    };
    try {
      parameterSets(options);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    lockDirectory(options.out, 'wellspring generate');
    const result = await withInterrupt((signal) => generateDataset({ ...options, signal }));
    const parts = [
      `${result.generated.length} file set(s) written`,
      result.kept.length ? `${result.kept.length} kept from an earlier run` : '',
      result.fromCache ? `${result.fromCache} trajectories read from the cache of an interrupted run` : '',
      `${result.simulated} trajectories simulated in ${result.seconds.toFixed(1)} s`,
    ].filter(Boolean);
    console.error(`wellspring generate: ${parts.join(', ')} -> ${result.root}`);
    return 0;
  },
};
