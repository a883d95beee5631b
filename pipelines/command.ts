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
