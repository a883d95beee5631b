/**
 * Well data-layer benchmark. Writes two Well files with `writeWell` into a temporary directory (a small one and
 * one of 64 trajectories x 100 steps x 64x64 x 5 channels, Euler-like fields), computes their statistics in one
 * streaming pass, then reads the same seeded-random n_in=4, n_out=1 windows, z-scored, with wellspring (one
 * child process per file size, so the peak RSS of each is its own) and with plain h5py (bench/well_h5py.py,
 * when python3 with h5py and numpy is present). Figures: write MB/s, stats MB/s, windows/s and MB/s of both
 * readers and their ratio, and the peak RSS for the two file sizes (it must not grow with the file).
 *
 * `node dist/bench/well.bench.js [--trajectories 64] [--steps 100] [--windows 1500] [--rounds 3] [--keep]`
 * Reader runs are interleaved `rounds` times (h5py, 1 worker, 2 workers) and medians reported: the machine is shared.
 */
import { seededPermutation } from '../src/streams/random.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeWell, type WellFileSpec, type WellTrajectory } from '../src/formats/well/index.js';
import {
  closeWellPool,
  computeWellStats,
  flatStat,
  formatStatsYaml,
  H5Pool,
  openWellDataset,
  readStats,
  WellNormalizer,
  type WellSample,
} from '../src/formats/well/index.js';

const { values } = parseArgs({
  options: {
    trajectories: { type: 'string', default: '64' },
    steps: { type: 'string', default: '100' },
    windows: { type: 'string', default: '1500' },
    keep: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
    file: { type: 'string' },
    stats: { type: 'string' },
    workers: { type: 'string', default: '2' },
    seed: { type: 'string', default: '7' },
    mode: { type: 'string', default: 'read-time' },
    rounds: { type: 'string', default: '3' },
  },
});

const N_IN = 4;
const N_OUT = 1;
const RES = 64;
const context = { machine: 'shared 2-core machine, other engineers running: figures are noisy' };
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify({ bench: 'well', ...line, ...context }));

/** The first `count` indices of a seeded permutation of the dataset's windows. */
function windowIndices(length: number, count: number, seed: number): number[] {
  return Array.from(seededPermutation(length, seed).subarray(0, Math.min(count, length)));
}

if (values.child) {
  // child: read the windows of one file, z-scored, and report rate and peak RSS
  const workers = Number(values.workers);
  const pool = new H5Pool(workers);
  const normalizer = new WellNormalizer(await readStats(values.stats!), { kind: 'zscore' });
  // read-time: z-scored inside the workers; stage: z-scored on the main thread by the normaliser
  const readTime = values.mode === 'read-time';
  const ds = await openWellDataset(values.file!, { nIn: N_IN, nOut: N_OUT, pool, ...(readTime ? { normalize: normalizer } : {}) });
  const indices = windowIndices(ds.length, Number(values.windows), Number(values.seed));
  const norm = (s: WellSample) => (readTime ? s : normalizer.normalizeSample(s));
  // warm-up (workers start, files open) is excluded from the timing
  for await (const s of ds.windows({ indices: indices.slice(0, 8) })) norm(s);
  const start = performance.now();
  let bytes = 0;
  let checksum = 0;
  for await (const s of ds.windows({ indices })) {
    const n = norm(s);
    bytes += (n.inputFields.data.length + n.outputFields.data.length) * 4;
    checksum += n.inputFields.data[0]!;
  }
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  console.log(
    JSON.stringify({
      windows: indices.length,
      seconds,
      windows_per_s: indices.length / seconds,
      MB_per_s: bytes / 1e6 / seconds,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      checksum,
    }),
  );
  process.exit(0);
}

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'wellspring-bench-well-'));
const steps = Number(values.steps);
const bigTrajectories = Number(values.trajectories);
const smallTrajectories = Math.max(4, Math.floor(bigTrajectories / 8));

function spec(): WellFileSpec {
  const axis = Array.from({ length: RES }, (_, i) => (i + 0.5) / RES);
  return {
    datasetName: 'euler_multi_quadrants_periodicBC',
    spatialDims: ['x', 'y'],
    coords: { x: axis, y: axis },
    time: Array.from({ length: steps }, (_, i) => i * 0.015),
    fields: [
      { name: 'energy', order: 0 },
      { name: 'density', order: 0 },
      { name: 'pressure', order: 0 },
      { name: 'momentum', order: 1 },
    ],
    scalars: [{ name: 'gamma', value: 1.4 }],
    boundaryConditions: [
      { dim: 'x', bcType: 'PERIODIC' },
      { dim: 'y', bcType: 'PERIODIC' },
    ],
  };
}

/** Smooth travelling patterns plus hash noise: cheap to make, not compressible to nothing. */
function trajectories(count: number): Iterable<WellTrajectory> {
  const S = RES * RES;
  return (function* () {
    for (let b = 0; b < count; b++) {
      yield {
        frames: (function* () {
          for (let t = 0; t < steps; t++) {
            const make = (k: number, offset: number, amp: number) => {
              const a = new Float32Array(S * k);
              let h = (b * 7919 + t * 104729 + offset * 31) >>> 0;
              for (let i = 0; i < a.length; i++) {
                h = (Math.imul(h, 1664525) + 1013904223) >>> 0;
                const s = (i / k) | 0;
                a[i] = offset + amp * Math.sin(0.1 * (s % RES) + 0.05 * t + b) + 0.01 * (h / 4294967296 - 0.5);
              }
              return a;
            };
            yield { fields: { energy: make(1, 2.5, 0.4), density: make(1, 0.9, 0.2), pressure: make(1, 1, 0.16), momentum: make(2, 0, 0.15) } };
          }
        })(),
      };
    }
  })();
}

try {
  const files: { label: string; path: string; trajectories: number; bytes: number }[] = [];
  for (const [label, count] of [
    ['small', smallTrajectories],
    ['large', bigTrajectories],
  ] as const) {
    const path = join(dir, `${label}.hdf5`);
    const start = performance.now();
    const r = await writeWell(trajectories(count), path, spec());
    const seconds = (performance.now() - start) / 1000;
    const dataBytes = count * steps * RES * RES * 5 * 4;
    emit({ figure: `write ${label} file`, value: dataBytes / 1e6 / seconds, unit: 'MB/s', trajectories: count, steps, grid: `${RES}x${RES}`, channels: 5, file_MB: r.bytes / 1e6, seconds });
    files.push({ label, path, trajectories: count, bytes: r.bytes });
  }

  const statsPath = join(dir, 'stats.yaml');
  {
    const large = files[1]!;
    const start = performance.now();
    const { stats } = await computeWellStats(large.path);
    const seconds = (performance.now() - start) / 1000;
    writeFileSync(statsPath, formatStatsYaml(stats));
    emit({ figure: 'stats pass (large file)', value: large.bytes / 1e6 / seconds, unit: 'MB/s', seconds });
  }
  await closeWellPool();

  type ReadResult = { windows_per_s: number; MB_per_s: number; peak_rss_mb: number; windows: number; bytes_per_window?: number };
  const runChild = (file: string, workers: number, mode = 'read-time'): ReadResult => {
    const run = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), '--child', '--file', file, '--stats', statsPath, '--windows', values.windows!, '--workers', String(workers), '--seed', values.seed!, '--mode', mode],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (run.status !== 0) throw new Error(`reader child failed: ${run.stderr}`);
    return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const plural = (w: number) => `${w} worker${w > 1 ? 's' : ''}`;

  // the h5py plan: the same windows of the large file, the same statistics
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import h5py, numpy'], { stdio: 'ignore' }).status === 0);
  const large = files[1]!;
  const planPath = join(dir, 'plan.json');
  if (python) {
    const ds = await openWellDataset(large.path, { nIn: N_IN, nOut: N_OUT });
    const stats = await readStats(statsPath);
    const layout = ds.layout;
    const plan = {
      n_frames: N_IN + N_OUT,
      windows: windowIndices(ds.length, Number(values.windows), Number(values.seed)).map((i) => {
        const l = ds.locate(i);
        return [l.trajectory, l.t0];
      }),
      fields: ds.files[0]!.fields.map((f) => [f.dataset, f.components]),
      mean: layout.fields.map((f, i) => flatStat(stats.mean[f]!)[layout.components[i]!]!),
      std: layout.fields.map((f, i) => flatStat(stats.std[f]!)[layout.components[i]!]!),
    };
    writeFileSync(planPath, JSON.stringify(plan));
    await closeWellPool();
  }
  const runPython = (): ReadResult | string => {
    const run = spawnSync(python!, [join(here, '../../bench/well_h5py.py'), large.path, planPath], { encoding: 'utf8' });
    if (run.status !== 0) return `well_h5py.py failed: ${run.stderr.slice(-500)}`;
    return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  };

  // The machine is shared: runs of the two readers are interleaved, `rounds` times, and medians compared.
  const rounds = Number(values.rounds);
  const ours: Record<number, ReadResult[]> = { 1: [], 2: [] };
  const theirs: ReadResult[] = [];
  let pythonError: string | null = python ? null : 'python3 with h5py and numpy not found (apt install python3-h5py)';
  for (let r = 0; r < rounds; r++) {
    if (python && !pythonError) {
      const p = runPython();
      if (typeof p === 'string') pythonError = p;
      else theirs.push(p);
    }
    for (const w of [1, 2]) ours[w]!.push(runChild(large.path, w));
  }
  for (const w of [1, 2]) {
    const rs = ours[w]!;
    emit({
      figure: `wellspring windows (large file, ${plural(w)})`,
      value: median(rs.map((x) => x.windows_per_s)),
      unit: 'windows/s',
      MB_per_s: median(rs.map((x) => x.MB_per_s)),
      runs: rs.map((x) => Math.round(x.windows_per_s)),
      windows: rs[0]!.windows,
      n_in: N_IN,
      n_out: N_OUT,
      normalization: 'zscore in the workers',
    });
  }
  {
    const r = runChild(large.path, 2, 'stage');
    emit({ figure: 'wellspring windows (large file, 2 workers, z-score as a main-thread stage)', value: r.windows_per_s, unit: 'windows/s', MB_per_s: r.MB_per_s, windows: r.windows });
  }
  if (pythonError) emit({ figure: 'h5py windows (large file)', skipped: pythonError });
  else {
    const h = median(theirs.map((x) => x.windows_per_s));
    emit({
      figure: 'h5py windows (large file)',
      value: h,
      unit: 'windows/s',
      MB_per_s: (h * theirs[0]!.bytes_per_window!) / 1e6,
      runs: theirs.map((x) => Math.round(x.windows_per_s)),
      peak_rss_mb: median(theirs.map((x) => x.peak_rss_mb)),
      python,
    });
    for (const w of [1, 2]) {
      emit({ figure: `wellspring / h5py windows/s (${plural(w)}, medians)`, value: median(ours[w]!.map((x) => x.windows_per_s)) / h, unit: 'ratio' });
    }
  }

  // peak RSS: small file vs large file, each reader in its own process
  for (const w of [1, 2]) {
    const small = runChild(files[0]!.path, w);
    const big = median(ours[w]!.map((x) => x.peak_rss_mb));
    emit({ figure: `peak RSS reading small file (${plural(w)})`, value: small.peak_rss_mb, unit: 'MB', file_MB: files[0]!.bytes / 1e6 });
    emit({ figure: `peak RSS reading large file (${plural(w)})`, value: big, unit: 'MB', file_MB: large.bytes / 1e6 });
    emit({
      figure: `peak RSS large / small file (${plural(w)})`,
      value: big / small.peak_rss_mb,
      unit: 'ratio',
      file_size_ratio: large.bytes / files[0]!.bytes,
      note: 'the small growth is attributed to HDF5 caches (metadata cache with a fixed maximum per open file and worker), not to data',
    });
  }
} finally {
  await closeWellPool();
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
  else console.error(`kept ${dir}`);
}
