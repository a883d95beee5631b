import { parseArgs, type ParseArgsConfig } from 'node:util';
/**
 * The shape of a CLI subcommand. Each file in `pipelines/commands/` exports one `command`; the CLI finds them
 * by listing that folder, so adding a subcommand is adding a file.
 */
export interface Command {
  /** The word typed after `wellspring`. */
  name: string;
  /** One line for `wellspring --help`. */
  summary: string;
  /** The full `--help` text of the subcommand: usage line, options with defaults, an example. */
  help: string;
  /** Runs the subcommand with the arguments after its name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** A user-facing error: the CLI prints its message without a stack trace and exits with code 2. */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}

/**
 * `node:util` parseArgs in strict mode with positionals, its errors turned into UsageErrors (so the CLI prints
 * them with the command's help). Typed by the options given.
 */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O }>> {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}
