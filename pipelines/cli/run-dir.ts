/**
 * A run directory holds everything one pipeline run produces: `run.json` (what ran, with the resolved
 * configuration), `config.yaml` (the same, for people), `log.jsonl` (one event per line), `checkpoints/`, and the
 * pipeline's outputs. Re-running into the same directory resumes; a different pipeline or configuration there is
 * refused before any work.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { tap, type Stage } from '../../src/streams/index.js';
import { appendJsonLine, writeFileAtomic } from '../../src/sinks/files.js';
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
}

interface RunRecord {
  kind: string;
  created: string;
  config: ConfigObject;
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
}

/** Creates or reopens a run directory for `kind` with `config`. */
export async function openRunDir(dir: string, kind: string, config: ConfigObject, options: OpenRunDirOptions = {}): Promise<RunDir> {
  const recordPath = join(dir, 'run.json');
  let resumed = false;
  if (existsSync(recordPath)) {
    let previous: RunRecord;
    try {
      previous = JSON.parse(await readFile(recordPath, 'utf8')) as RunRecord;
    } catch (err) {
      throw new ConfigError(`${recordPath}: unreadable run record (${(err as Error).message}); use another run directory`);
    }
    if (previous.kind !== kind) {
      throw new ConfigError(`${dir} holds a "${previous.kind}" run, not "${kind}": choose another run directory`);
    }
    const changed = configDifferences(previous.config, config).filter((d) => !(options.mutable ?? []).some((m) => d.startsWith(`${m}:`)));
    if (changed.length > 0) {
      throw new ConfigError(`${dir} was made with another configuration (${changed.join('; ')}): choose another run directory to start afresh`);
    }
    resumed = true;
  }
  const record: RunRecord = { kind, created: new Date().toISOString(), config };
  await writeFileAtomic(recordPath, `${JSON.stringify(record, null, 2)}\n`);
  await writeFileAtomic(join(dir, 'config.yaml'), `# ${kind} run, resolved configuration\n${toYaml(config)}`);
  const run: RunDir = {
    dir,
    kind,
    config,
    resumed,
    log: (event, fields = {}) => appendJsonLine(join(dir, 'log.jsonl'), { time: new Date().toISOString(), event, ...fields }),
    path: (...parts) => join(dir, ...parts),
  };
  await run.log(resumed ? 'resume' : 'start', { kind });
  return run;
}

/** Stage: logs every item (or the fields `select` picks from it) to the run's log.jsonl as `event`, passing it on. */
export function logTo<A>(run: RunDir, event: string, select: (item: A) => Record<string, unknown> = (item) => ({ ...(item as object) })): Stage<A, A> {
  return tap((item: A) => run.log(event, select(item)), `log ${event}`);
}
