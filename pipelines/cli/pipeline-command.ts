/**
 * What every pipeline subcommand shares: `--config FILE`, repeated `--set key=value`, `--run DIR`, and Ctrl-C
 * handling (the first SIGINT asks the pipeline to stop at a safe point and save; a second one exits at once).
 */
import type { ParseArgsConfig } from 'node:util';
import { resolveConfig, type ConfigObject } from './config.js';
import { openRunDir, type OpenRunDirOptions, type RunDir } from './run-dir.js';
import { UsageError, parseCommandArgs } from './command.js';

export const COMMON_OPTIONS_HELP = `  --run DIR            run directory (resolved config, log.jsonl, checkpoints, outputs); rerun to resume
  --config FILE        YAML or JSON file of settings over the defaults
  --set KEY=VALUE      override one setting (repeatable), e.g. --set train.steps=500
  -h, --help           this help`;

type ExtraOptions = NonNullable<ParseArgsConfig['options']>;

export interface ParsedPipelineArgs<T extends ConfigObject> {
  config: T;
  runDir: string;
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Parses the common options plus `extra`, and resolves the configuration over `defaults`. */
export async function parsePipelineArgs<T extends ConfigObject>(
  argv: string[],
  defaults: T,
  extra: ExtraOptions = {},
  defaultRun?: string,
): Promise<ParsedPipelineArgs<T>> {
  const parsed = parseCommandArgs(argv, { run: { type: 'string' }, config: { type: 'string' }, set: { type: 'string', multiple: true }, ...extra });
  const values = parsed.values as ParsedPipelineArgs<T>['values'];
  const runDir = (values.run as string | undefined) ?? defaultRun;
  if (!runDir) throw new UsageError('--run DIR is required');
  const config = await resolveConfig(defaults, values.config as string | undefined, (values.set as string[] | undefined) ?? []);
  return { config, runDir, values, positionals: parsed.positionals };
}

/** A run stopped by SIGINT or SIGTERM after saving: the CLI exits with 128 + the signal number (130, 143). */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(
    readonly signal: NodeJS.Signals,
    readonly exitCode: number,
  ) {
    super(`interrupted by ${signal}; progress saved, rerun the same command to resume`);
  }
}

const SIGNAL_CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Runs `body` with an AbortSignal tied to SIGINT/SIGTERM: the first signal aborts (the pipeline finishes the
 * step in flight, saves and stops, and this rejects with `InterruptedError`), a second exits at once (130/143).
 */
export async function withInterrupt<R>(body: (signal: AbortSignal) => Promise<R>): Promise<R> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals) => {
    if (received === undefined) {
      received = name;
      console.error(`\n${name}: stopping at the next safe point and saving (again to exit at once)`);
      controller.abort(new Error(`interrupted by ${name}`));
    } else process.exit(SIGNAL_CODES[name] ?? 1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } catch (err) {
    if (received !== undefined) throw new InterruptedError(received, SIGNAL_CODES[received] ?? 1);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Opens the run directory for a pipeline kind with its resolved config (`mutable` keys, or run-dir options). */
export function openPipelineRun(runDir: string, kind: string, config: ConfigObject, options: string[] | OpenRunDirOptions = []): Promise<RunDir> {
  return openRunDir(runDir, kind, config, Array.isArray(options) ? { mutable: options } : options);
}
