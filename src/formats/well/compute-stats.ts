/**
 * One streaming pass over a split that computes its stats.yaml: every field of every file is read in bounded
 * blocks of frames inside the HDF5 workers, moments are pooled per trajectory (float64, Chan's merge), and
 * the per-trajectory results are merged in file/trajectory order so the result does not depend on timing.
 */
import { openWell, type WellMeta } from './meta.js';
import { wellPool, type H5Pool } from './pool.js';
import { resolveWellFiles } from './dataset.js';
import { mergeMomentSets, type MomentSet } from './moments.js';
import { statsFromMoments, type WellStats } from './stats.js';
import type { MomentsPlan } from './raw.js';

export interface ComputeStatsOptions {
  /** Per-field transforms applied before the moments (use the same ones when normalising). */
  transforms?: Record<string, 'log1p'>;
  /** 'error' (default) fails on the first NaN/Inf naming file, dataset and frame; 'count' skips nothing but counts. */
  nonFinite?: 'error' | 'count';
  /** Called after each trajectory with trajectories done and total, and bytes read so far. */
  onProgress?: (done: number, total: number, bytes: number) => void;
  /** Values per read inside a worker (bounds worker memory; default 4M values = 16 MB of float32). */
  maxValuesPerRead?: number;
  /** Trajectory reads in flight (default 2 per pool worker). */
  concurrency?: number;
  pool?: H5Pool;
}

export interface ComputeStatsResult {
  stats: WellStats;
  moments: MomentSet;
  files: string[];
  nonFinite: number;
}

/** Computes stats.yaml contents for a split directory, a file or a list of files. */
export async function computeWellStats(source: string | string[], options: ComputeStatsOptions = {}): Promise<ComputeStatsResult> {
  const pool = options.pool ?? wellPool();
  const files = await resolveWellFiles(source);
  const metas: WellMeta[] = [];
  for (const f of files) metas.push(await openWell(f, pool));
  const first = metas[0]!;
  const orders: Record<string, number> = {};
  for (const m of metas) {
    if (m.nSpatialDims !== first.nSpatialDims) throw new Error(`${m.path}: ${m.nSpatialDims}-D, but ${first.path} is ${first.nSpatialDims}-D`);
    for (const f of [...m.fields, ...m.constantFields]) orders[f.name] = f.order;
  }
  const tasks: MomentsPlan[] = [];
  for (const m of metas) {
    const fields = [...m.fields, ...m.constantFields].map((f) => ({
      name: f.name,
      dataset: f.dataset,
      sampleVarying: f.sampleVarying,
      timeVarying: f.timeVarying,
      components: f.components,
      frameSize: f.components * m.spatialShape.reduce((a, n, i) => a * (f.storedAxes[i] ? n : 1), 1),
      ...(options.transforms?.[f.name] ? { transform: options.transforms[f.name]! } : {}),
    }));
    for (let b = 0; b < Math.max(1, m.nTrajectories); b++) {
      tasks.push({
        path: m.path,
        nTrajectories: m.nTrajectories,
        nSteps: m.nSteps,
        trajectories: [b, Math.min(b + 1, m.nTrajectories)],
        fields,
        maxValuesPerRead: options.maxValuesPerRead ?? 1 << 22,
        nonFinite: options.nonFinite ?? 'error',
      });
    }
  }
  const bytesOf = (t: MomentsPlan) =>
    t.fields.reduce((a, f) => a + 4 * f.frameSize * (f.timeVarying ? t.nSteps : 1) * (t.trajectories[1] - t.trajectories[0]), 0);
  const total = tasks.length;
  const concurrency = Math.max(1, options.concurrency ?? 2 * pool.size);
  const moments: MomentSet = { fields: {}, deltas: {} };
  let nonFinite = 0;
  let bytes = 0;
  const inFlight: Promise<{ moments: MomentSet; nonFinite: number }>[] = [];
  let next = 0;
  const launch = () => {
    while (inFlight.length < concurrency && next < total) {
      const t = tasks[next++]!;
      const p = pool.call(
        'moments',
        t,
        `computing statistics of trajectory ${t.trajectories[0]} of ${t.path}`,
      );
      p.catch(() => undefined);
      inFlight.push(p);
    }
  };
  launch();
  for (let done = 0; done < total; done++) {
    const r = await inFlight.shift()!;
    launch();
    mergeMomentSets(moments, r.moments);
    nonFinite += r.nonFinite;
    bytes += bytesOf(tasks[done]!);
    options.onProgress?.(done + 1, total, bytes);
  }
  return { stats: statsFromMoments(moments, orders, first.nSpatialDims), moments, files, nonFinite };
}
