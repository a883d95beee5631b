/**
 * A run directory holds everything one pipeline run produces: `run.json` (what ran, with the resolved
 * configuration and its provenance: software version and commit, backend, configuration hash, data identity,
 * start time and one entry per resumption; see src/sinks/provenance.ts), `config.yaml` (the same, for people), `log.jsonl` (one event per line), `checkpoints/`, and the
 * pipeline's outputs. Re-running into the same directory resumes; a different pipeline or configuration there is
 * refused before any work.
 *
 * One process at a time: opening a run directory takes its lock (`.lock`, see `lockDirectory`), and leftover
 * temporaries of killed runs (`*.tmp-<pid>-*`) are removed then. Nothing is written until the job logs its first
 * event, which it does once its settings and inputs are validated: a refused command leaves the directory as it
 * was.
 */
import { existsSync, readdirSync, rmSync, rmdirSync, readFileSync, unlinkSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { tap, type Stage } from '../../src/streams/index.js';
import { appendJsonLine } from '../../src/sinks/files.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import {
  RUN_RECORD_FILE,
  buildProvenance,
  checkProvenance,
  resumeProvenance,
  type BackendIdentity,
  type DataIdentity,
  type Provenance,
} from '../../src/sinks/provenance.js';
import type { ConfigObject, ConfigValue } from './config.js';
import { ConfigError } from './config.js';

export interface RunDir {
  dir: string;
  kind: string;
  config: ConfigObject;
  /** True when the directory already held a run of this kind and configuration. */
  resumed: boolean;
  /** Appends `{time, event, ...fields}` to log.jsonl. */
  log(event: string, fields?: Record<string, unknown>): Promise<void>;
  /** A path inside the run directory. */
  path(...parts: string[]): string;
  /** Releases the directory's lock (also done when the process exits). */
  release(): void;
  /**
   * The run's provenance as it stands: the start's record, with this session's resumption appended when
   * resumed (written to run.json with the first logged event).
   */
  provenance(): Provenance;
  /**
   * Records the backend and the data identity once the job knows them (in the start's record for a new run,
   * in this session's resumption entry for a resumed one) and rewrites run.json.
   */
  describe(parts: { backend?: BackendIdentity; data?: DataIdentity }): Promise<void>;
}

interface RunRecord {
  kind: string;
  config: ConfigObject;
  provenance: Provenance;
}

/** Lists the keys whose values differ between two configurations (`a.b: 1 -> 2`). */
export function configDifferences(before: ConfigValue, after: ConfigValue, path = ''): string[] {
  const isObj = (v: ConfigValue): v is ConfigObject => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((k) => configDifferences(before[k] ?? null, after[k] ?? null, path ? `${path}.${k}` : k));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [`${path}: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`];
}

export interface OpenRunDirOptions {
  /** Keys that may change between a run and its resumption (e.g. `train.steps` to train longer). */
  mutable?: string[];
  /**
   * Settings the job gained after runs were recorded, by dotted key, at the values that reproduce those runs: a
   * run recorded without such a key resumes when the key has that value now (another value is still refused).
   */
  added?: Record<string, ConfigValue>;
}

/** `config` with each `added` key it lacks set to the given value (a copy; `config` is not changed). */
function withAdded(config: ConfigObject, added: Record<string, ConfigValue>): ConfigObject {
  const out = structuredClone(config);
  for (const [key, value] of Object.entries(added)) {
    const parts = key.split('.');
    let node: ConfigObject = out;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (next === undefined) node[part] = {};
      else if (next === null || typeof next !== 'object' || Array.isArray(next)) break;
      node = node[part] as ConfigObject;
    }
    const last = parts[parts.length - 1]!;
    if (!(last in node)) node[last] = structuredClone(value);
  }
  return out;
}

/** What a lock file holds. */
interface LockRecord {
  pid: number;
  host: string;
  what: string;
  started: string;
}

const held = new Map<string, { path: string; created: boolean }>();
let exitHook = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock of `dir` for this process (`<dir>/.lock`, created exclusively, holding pid, host, what and when),
 * creating the directory if needed. A second process is refused with an error naming the holder; a lock left by a
 * process of this host that no longer exists is taken over (renamed away first, so two takers cannot both win).
 * Re-entrant within one process. Released by `releaseDirectory` or when the process exits; a directory this call
 * created is removed again if it is still empty then.
 */
export function lockDirectory(dir: string, what: string): void {
  const path = join(dir, '.lock');
  if (held.has(path)) return;
  const created = !existsSync(dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new Error(`${dir}: cannot create the directory (${(err as Error).message})`);
  }
  const record: LockRecord = { pid: process.pid, host: hostname(), what, started: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(record)}\n`, { flag: 'wx' });
      held.set(path, { path, created });
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const lock of held.values()) releaseLock(lock);
        });
      }
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new Error(`${path}: cannot create the lock file (${(err as Error).message})`);
    }
    let holder: LockRecord | undefined;
    try {
      holder = JSON.parse(readFileSync(path, 'utf8')) as LockRecord;
    } catch {
      holder = undefined; // being written, or torn by a crash: treat as stale only if still unreadable below
    }
    if (holder && (holder.host !== record.host || alive(holder.pid))) {
      throw new Error(
        `${dir} is in use by ${holder.what} (pid ${holder.pid} on ${holder.host}, since ${holder.started}); ` +
          `wait for it to finish, or remove ${path} if that process is gone`,
      );
    }
    // Stale: the holder died. Move its lock aside (atomic: only one taker succeeds), then try again.
    try {
      renameSync(path, `${path}.stale-${process.pid}`);
      rmSync(`${path}.stale-${process.pid}`, { force: true });
    } catch {
      /* another process took it over first; the next attempt reads its lock */
    }
  }
  throw new Error(`${path}: could not take the lock (another process keeps taking it)`);
}

function releaseLock(lock: { path: string; created: boolean }): void {
  try {
    const holder = JSON.parse(readFileSync(lock.path, 'utf8')) as LockRecord;
    if (holder.pid === process.pid) unlinkSync(lock.path);
  } catch {
    /* already gone */
  }
  held.delete(lock.path);
  if (lock.created) {
    const dir = join(lock.path, '..');
    try {
      if (readdirSync(dir).length === 0) rmdirSync(dir);
    } catch {
      /* not empty or gone */
    }
  }
}

/** Releases the lock `lockDirectory` took on `dir` (no-op when this process holds none). */
export function releaseDirectory(dir: string): void {
  const lock = held.get(join(dir, '.lock'));
  if (lock) releaseLock(lock);
}

/**
 * Removes temporaries of the project's own naming (`<name>.tmp-<pid>-<random>`) that processes other than this
 * one left under `dir` (call with the directory's lock held: no other process is writing there). Returns them.
 */
export function removeStaleTemporaries(dir: string, depth = 3): string[] {
  const removed: string[] = [];
  const walk = (d: string, level: number) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      const m = /\.tmp-(\d+)-/.exec(e.name);
      if (m && Number(m[1]) !== process.pid) {
        rmSync(p, { recursive: true, force: true });
        removed.push(p);
      } else if (e.isDirectory() && level < depth) walk(p, level + 1);
    }
  };
  walk(dir, 0);
  return removed;
}

/**
 * Opens a run directory for `kind` with `config`: refuses another kind or configuration there, takes the
 * directory's lock and removes stale temporaries. `run.json` and `config.yaml` are written with the first logged
 * event, so a job that validates before logging leaves a refused run's directory untouched.
 */
export async function openRunDir(dir: string, kind: string, config: ConfigObject, options: OpenRunDirOptions = {}): Promise<RunDir> {
  const recordPath = join(dir, RUN_RECORD_FILE);
  let resumed = false;
  let provenance: Provenance = buildProvenance({ config });
  if (existsSync(recordPath)) {
    // `created` at the top level: a run directory written before provenance records.
    let previous: RunRecord & { created?: string };
    try {
      previous = JSON.parse(await readFile(recordPath, 'utf8')) as RunRecord & { created?: string };
    } catch (err) {
      throw new ConfigError(`${recordPath}: unreadable run record (${(err as Error).message}); use another run directory`);
    }
    if (previous.kind !== kind) {
      throw new ConfigError(`${dir} holds a "${previous.kind}" run, not "${kind}": choose another run directory`);
    }
    const recorded = options.added ? withAdded(previous.config, options.added) : previous.config;
    const changed = configDifferences(recorded, config).filter((d) => !(options.mutable ?? []).some((m) => d.startsWith(`${m}:`)));
    if (changed.length > 0) {
      throw new ConfigError(`${dir} was made with another configuration (${changed.join('; ')}): choose another run directory to start afresh`);
    }
    resumed = true;
    const before =
      previous.provenance !== undefined
        ? checkProvenance(previous.provenance, `${recordPath}: provenance`)
        : { ...buildProvenance({ config: previous.config }), created: previous.created ?? 'unknown' };
    provenance = resumeProvenance(before, { config });
  }
  lockDirectory(dir, `wellspring ${kind}`);
  const stale = removeStaleTemporaries(dir);
  let started: Promise<void> | undefined;
  const logPath = join(dir, 'log.jsonl');
  const append = (event: string, fields: Record<string, unknown>) => appendJsonLine(logPath, { time: new Date().toISOString(), event, ...fields });
  const writeRecord = () => {
    const record: RunRecord = { kind, config, provenance };
    return writeFileAtomic(recordPath, `${JSON.stringify(record, null, 2)}\n`);
  };
  const start = () =>
    (started ??= (async () => {
      await writeRecord();
      await writeFileAtomic(join(dir, 'config.yaml'), `# ${kind} run, resolved configuration\n${toYaml(config)}`);
      await append(resumed ? 'resume' : 'start', { kind, ...(stale.length > 0 ? { removedTemporaries: stale.length } : {}) });
    })());
  return {
    dir,
    kind,
    config,
    resumed,
    log: async (event, fields = {}) => {
      await start();
      await append(event, fields);
    },
    path: (...parts) => join(dir, ...parts),
    release: () => releaseDirectory(dir),
    provenance: () => provenance,
    describe: async ({ backend, data }) => {
      const session = { backend: backend ? { name: backend.name, gpu: backend.gpu, provider: backend.provider } : undefined };
      if (!resumed) {
        provenance = { ...provenance, ...(session.backend ? { backend: session.backend } : {}), ...(data ? { data } : {}) };
      } else {
        const resumes = [...provenance.resumes];
        const last = { ...resumes[resumes.length - 1]! };
        if (session.backend) last.backend = session.backend;
        if (data && data.id !== provenance.data?.id) last.dataId = data.id;
        resumes[resumes.length - 1] = last;
        provenance = { ...provenance, resumes };
      }
      await start();
      await writeRecord();
    },
  };
}

/** Stage: logs every item (or the fields `select` picks from it) to the run's log.jsonl as `event`, passing it on. */
export function logTo<A>(run: RunDir, event: string, select: (item: A) => Record<string, unknown> = (item) => ({ ...(item as object) })): Stage<A, A> {
  return tap((item: A) => run.log(event, select(item)), `log ${event}`);
}
