/**
 * Machine conditions of a benchmark figure, so that a figure taken under load is visible as such.
 *
 * The rule (the README's figures follow it): a figure is quiet when
 *  - the 1-minute load average when the benchmarks started was at most 0.5 per core (`npm run bench` passes the
 *    value it saw before the first benchmark in BENCH_START_LOAD, so one benchmark's own load does not count
 *    against the next), and
 *  - while the figure was measured, processes other than this benchmark and its children (PyTorch) used at most
 *    0.25 of a core on average: the machine's busy CPU time (/proc/stat) minus this process's CPU time (all its
 *    threads, `process.cpuUsage`) and its finished children's (`/proc/self/stat` cutime + cstime), per second of
 *    wall time.
 * Otherwise the figure carries `underLoad: true` with the numbers that decided it. Load averages alone cannot
 * tell other jobs from the benchmark's own threads (a 2-thread PyTorch run raises them by 2), hence the CPU-time
 * measure. Where /proc is missing (not Linux), `underLoad` is undefined: conditions unknown.
 */
import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/stat and /proc/<pid>/stat (USER_HZ; 100 on Linux). */
const TICKS = 100;
/** The rule's two thresholds (see the module comment). */
export const LOAD_PER_CORE_LIMIT = 0.5;
export const OTHER_CORES_LIMIT = 0.25;

const startLoad = Number(process.env.BENCH_START_LOAD ?? loadavg()[0]);
const cores = cpus().length;

/** Busy CPU seconds of the whole machine since boot, or undefined without /proc. */
function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - ticks[3] - ticks[4]) / TICKS; // minus idle and iowait
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process (every thread) and of its finished children. */
function ownSeconds(): number {
  const { user, system } = process.cpuUsage();
  let children = 0;
  try {
    // Fields after the ')' of the command name: state is field 3; cutime and cstime are fields 16 and 17.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    children = (Number(fields[13]) + Number(fields[14])) / TICKS;
  } catch {
    children = 0;
  }
  return (user + system) / 1e6 + children;
}

export interface Conditions {
  /** 1-, 5- and 15-minute load averages now. */
  loadAverage: number[];
  /** The 1-minute load average when the benchmarks started (BENCH_START_LOAD, else when this process started). */
  loadAtStart: number;
  cores: number;
}

/** The load averages now and at the start of the process. */
export function conditions(): Conditions {
  return { loadAverage: loadavg().map((v) => Number(v.toFixed(2))), loadAtStart: Number(startLoad.toFixed(2)), cores };
}

export interface IntervalConditions {
  /** Load averages when the interval started and when it ended. */
  loadBefore: number[];
  loadAfter: number[];
  wallSeconds: number;
  /** Cores used on average by this benchmark (and its children) and by every other process, over the interval. */
  ownCores: number | undefined;
  otherCores: number | undefined;
  /** The rule's verdict; undefined where /proc is missing. */
  underLoad: boolean | undefined;
}

/** Starts measuring an interval; the returned function ends it and gives its conditions. */
export function startInterval(): () => IntervalConditions {
  const loadBefore = loadavg().map((v) => Number(v.toFixed(2)));
  const t0 = performance.now();
  const busy0 = machineBusySeconds();
  const own0 = ownSeconds();
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const busy1 = machineBusySeconds();
    const own = ownSeconds() - own0;
    const otherCores = busy0 === undefined || busy1 === undefined ? undefined : Math.max(0, (busy1 - busy0 - own) / wall);
    return {
      loadBefore,
      loadAfter: loadavg().map((v) => Number(v.toFixed(2))),
      wallSeconds: Number(wall.toFixed(2)),
      ownCores: Number((own / wall).toFixed(2)),
      otherCores: otherCores === undefined ? undefined : Number(otherCores.toFixed(2)),
      underLoad: otherCores === undefined ? undefined : otherCores > OTHER_CORES_LIMIT || startLoad > LOAD_PER_CORE_LIMIT * cores,
    };
  };
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const s = [...values].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
