/**
 * Provenance: what produced a run, a results file or a report, so that others can tell what they are reading.
 * One record (`Provenance`, schema `wellspring-provenance/1`), built here for the CLI's run directories
 * (`run.json`) and for library users writing their own pipelines:
 *
 * - software: package name and version, the git commit of the package's own checkout when there is one (with
 *   whether it had uncommitted changes; null when not run from a git checkout or git is missing), Node version
 *   and platform;
 * - backend: the tfjs backend, whether on GPU, and the package that provided it (see `selectBackend`);
 * - configHash: SHA-256 of the resolved configuration as canonical JSON (keys sorted at every level);
 * - data: the inputs' identity: every data file under a root with its size, the SHA-256 of the statistics file,
 *   and one id hashing them all (sizes, not contents: hashing terabytes of HDF5 at every start is not affordable);
 * - created: when the run started; resumes: one entry per later resumption (time, software, backend, and the
 *   config hash / data id when they differ from the start's), so `created` is never rewritten.
 *
 * `readRunProvenance(dir)` reads the record of a run directory back; `readTrainingCurve(dir)` the training
 * scalars its `log.jsonl` holds (see the CLI's training loop), for reports.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { platform, arch } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROVENANCE_SCHEMA = 'wellspring-provenance/1';
/** The file of a run directory holding its kind, configuration and provenance. */
export const RUN_RECORD_FILE = 'run.json';

export interface SoftwareIdentity {
  /** npm package name and version (package.json of the installed library). */
  name: string;
  version: string;
  /** `git rev-parse HEAD` of the package's own checkout; null when it is not one (an npm install) or git is missing. */
  commit: string | null;
  /** True when that checkout had uncommitted changes to tracked files; null without a commit. */
  dirty: boolean | null;
  /** `process.version`, and `<platform>-<arch>`. */
  node: string;
  platform: string;
}

/** The compute backend, as `selectBackend` reports it (a BackendInfo fits). */
export interface BackendIdentity {
  name: string;
  gpu: boolean;
  provider: string;
}

export interface DataFile {
  /** Path relative to the data root, with forward slashes. */
  path: string;
  bytes: number;
}

export interface DataIdentity {
  root: string;
  files: DataFile[];
  /** Sum of the files' sizes. */
  bytes: number;
  /** The statistics / normalisation file and its SHA-256, when there is one. */
  stats: { path: string; sha256: string } | null;
  /** First 16 hex digits of the SHA-256 of the file list (paths, sizes) and the stats hash. */
  id: string;
}

export interface ResumeRecord {
  time: string;
  software: SoftwareIdentity;
  backend: BackendIdentity | null;
  /** Present when the resumed run's configuration hash differs from the start's (a raised step budget). */
  configHash?: string;
  /** Present when the resumed run's data id differs from the start's. */
  dataId?: string;
}

export interface Provenance {
  schema: typeof PROVENANCE_SCHEMA;
  software: SoftwareIdentity;
  backend: BackendIdentity | null;
  configHash: string | null;
  data: DataIdentity | null;
  /** When the run started (ISO 8601); never changed by a resumption. */
  created: string;
  resumes: ResumeRecord[];
}

let packageCache: { name: string; version: string; dir: string } | undefined;

/** The library's package.json (name, version) and folder, found by walking up from this module. */
export function packageInfo(): { name: string; version: string; dir: string } {
  if (packageCache) return packageCache;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(dir, 'package.json');
    if (existsSync(path)) {
      const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'wellspring-latent') return (packageCache = { name: pkg.name, version: pkg.version ?? '0.0.0', dir });
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`provenance: no package.json of wellspring-latent above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

function git(args: string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
  } catch {
    return null; // no git, or not a repository
  }
}

let softwareCache: SoftwareIdentity | undefined;

/**
 * The software identity (cached per process). The commit is that of the package's own folder when it is the top
 * of a git checkout: a library installed under some other project's repository reports null, not that project.
 */
export function softwareIdentity(): SoftwareIdentity {
  if (softwareCache) return softwareCache;
  const pkg = packageInfo();
  const top = git(['rev-parse', '--show-toplevel'], pkg.dir);
  const own = top !== null && sameDir(top, pkg.dir);
  const commit = own ? git(['rev-parse', 'HEAD'], pkg.dir) : null;
  const status = commit ? git(['status', '--porcelain', '--untracked-files=no'], pkg.dir) : null;
  softwareCache = {
    name: pkg.name,
    version: pkg.version,
    commit,
    dirty: commit && status !== null ? status.length > 0 : null,
    node: process.version,
    platform: `${platform()}-${arch()}`,
  };
  return softwareCache;
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return a.replace(/[\\/]+$/, '') === b.replace(/[\\/]+$/, '');
  }
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** JSON with the keys of every object sorted (undefined-valued keys dropped, like JSON.stringify). */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): Json => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      const out: { [key: string]: Json } = {};
      for (const k of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) out[k] = sort(x);
      }
      return out;
    }
    return v as Json;
  };
  return JSON.stringify(sort(value));
}

/** SHA-256 (hex) of a configuration's canonical JSON: equal for equal settings, whatever the key order. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

const DATA_EXTENSIONS = ['.hdf5', '.h5', '.arrow'];

/**
 * The identity of the data under `root`: every file ending in one of `extensions` (default .hdf5, .h5, .arrow),
 * found recursively (shard files and temporaries excluded), with its size, and the SHA-256 of `stats` (default
 * `<root>/stats.yaml` when it exists). Throws, naming the root, when it is missing.
 */
export async function dataIdentity(root: string, options: { extensions?: readonly string[]; stats?: string | null } = {}): Promise<DataIdentity> {
  const extensions = options.extensions ?? DATA_EXTENSIONS;
  if (!existsSync(root)) throw new Error(`provenance: data root ${root} does not exist`);
  const files: DataFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (extensions.some((x) => e.name.endsWith(x)) && !/\.tmp-\d+-/.test(e.name)) {
        files.push({ path: relative(root, p).split(/[\\/]/).join('/'), bytes: (await stat(p)).size });
      }
    }
  };
  const rootStat = await stat(root);
  if (rootStat.isDirectory()) await walk(root);
  else files.push({ path: root.split(/[\\/]/).pop()!, bytes: rootStat.size });
  const statsPath = options.stats === undefined ? (existsSync(join(root, 'stats.yaml')) ? join(root, 'stats.yaml') : null) : options.stats;
  const stats = statsPath ? { path: statsPath, sha256: createHash('sha256').update(await readFile(statsPath)).digest('hex') } : null;
  const id = createHash('sha256').update(canonicalJson({ files, stats: stats?.sha256 ?? null })).digest('hex').slice(0, 16);
  return { root, files, bytes: files.reduce((a, f) => a + f.bytes, 0), stats, id };
}

/** The backend fields of a provenance record, from `selectBackend`'s info (or anything with those fields). */
export function backendIdentity(info: BackendIdentity): BackendIdentity {
  return { name: info.name, gpu: info.gpu, provider: info.provider };
}

/** A new provenance record for a run starting now (or at `created`). */
export function buildProvenance(
  options: { config?: unknown; backend?: BackendIdentity | null; data?: DataIdentity | null; created?: string } = {},
): Provenance {
  return {
    schema: PROVENANCE_SCHEMA,
    software: softwareIdentity(),
    backend: options.backend ? backendIdentity(options.backend) : null,
    configHash: options.config === undefined ? null : configHash(options.config),
    data: options.data ?? null,
    created: options.created ?? new Date().toISOString(),
    resumes: [],
  };
}

/**
 * The record of a resumption of `previous` now: appended to its `resumes`, with what differs from the start.
 * Returns a new record; the start's fields are left as they were.
 */
export function resumeProvenance(
  previous: Provenance,
  now: { config?: unknown; backend?: BackendIdentity | null; data?: DataIdentity | null; time?: string } = {},
): Provenance {
  const entry: ResumeRecord = { time: now.time ?? new Date().toISOString(), software: softwareIdentity(), backend: now.backend ? backendIdentity(now.backend) : null };
  if (now.config !== undefined) {
    const hash = configHash(now.config);
    if (hash !== previous.configHash) entry.configHash = hash;
  }
  if (now.data && now.data.id !== previous.data?.id) entry.dataId = now.data.id;
  return { ...previous, resumes: [...previous.resumes, entry] };
}

/** Checks the shape of a provenance record read from `where`; returns it typed. */
export function checkProvenance(value: unknown, where: string): Provenance {
  const v = value as Partial<Provenance> | null;
  const ok =
    v !== null &&
    typeof v === 'object' &&
    v.schema === PROVENANCE_SCHEMA &&
    typeof v.created === 'string' &&
    Array.isArray(v.resumes) &&
    typeof v.software === 'object' &&
    v.software !== null &&
    typeof v.software.version === 'string';
  if (!ok) throw new Error(`${where}: expected a provenance record (schema "${PROVENANCE_SCHEMA}" with software, created, resumes)`);
  return v as Provenance;
}

/**
 * The provenance of a run directory (its run.json), or null when the directory has no run.json or the run
 * predates provenance records. A run.json that is not JSON is an error naming it.
 */
export async function readRunProvenance(dir: string): Promise<Provenance | null> {
  const path = join(dir, RUN_RECORD_FILE);
  if (!existsSync(path)) return null;
  let doc: { provenance?: unknown };
  try {
    doc = JSON.parse(await readFile(path, 'utf8')) as { provenance?: unknown };
  } catch (err) {
    throw new Error(`${path}: unreadable run record (${(err as Error).message})`);
  }
  return doc.provenance === undefined ? null : checkProvenance(doc.provenance, `${path}: provenance`);
}

/** Training scalars of a run, one entry per logged step. */
export interface TrainingCurve {
  /** Which run (a name chosen by the caller, e.g. the model it trained). */
  run: string;
  step: number[];
  loss: number[];
  gradNorm: number[];
  lr: number[];
}

/**
 * The training curve of a run directory: the `step` events of its `log.jsonl` (fields step, loss, gradNorm, lr),
 * in step order, the last one kept when a resumed run logged a step again. Null when the run has no log or no
 * step event. A line that is not JSON is an error naming the file and line.
 */
export async function readTrainingCurve(dir: string, run: string): Promise<TrainingCurve | null> {
  const path = join(dir, 'log.jsonl');
  if (!existsSync(path)) return null;
  const byStep = new Map<number, { loss: number; gradNorm: number; lr: number }>();
  const lines = (await readFile(path, 'utf8')).split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      // The last line of a killed run may be torn; any other bad line is an error.
      if (i >= lines.length - 2) return;
      throw new Error(`${path}: line ${i + 1} is not JSON (${(err as Error).message})`);
    }
    if (e.event !== 'step' || typeof e.step !== 'number') return;
    const num = (x: unknown) => (typeof x === 'number' ? x : Number.NaN);
    byStep.set(e.step, { loss: num(e.loss), gradNorm: num(e.gradNorm), lr: num(e.lr) });
  });
  if (byStep.size === 0) return null;
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return {
    run,
    step: steps,
    loss: steps.map((s) => byStep.get(s)!.loss),
    gradNorm: steps.map((s) => byStep.get(s)!.gradNorm),
    lr: steps.map((s) => byStep.get(s)!.lr),
  };
}
