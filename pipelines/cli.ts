#!/usr/bin/env node
/**
 * The `wellspring` command line. Subcommands live one per file in `pipelines/commands/`; this file lists them,
 * prints help, and turns errors into readable messages and exit codes.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join, extname } from 'node:path';
import { UsageError, type Command } from './cli/command.js';
import { InterruptedError } from './cli/pipeline-command.js';
import { packageInfo } from '../src/sinks/provenance.js';

const here = dirname(fileURLToPath(import.meta.url));

export async function loadCommands(): Promise<Map<string, Command>> {
  const ext = extname(fileURLToPath(import.meta.url));
  const dir = join(here, 'commands');
  const files = (await readdir(dir)).filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts')).sort();
  const commands = new Map<string, Command>();
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { command?: Command };
    if (mod.command) commands.set(mod.command.name, mod.command);
  }
  return commands;
}

function overview(commands: Map<string, Command>): string {
  const width = Math.max(...[...commands.keys()].map((k) => k.length), 4);
  const rows = [...commands.values()].map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'wellspring: latent diffusion emulators of physical systems',
    '',
    'Usage: wellspring <command> [options]     (wellspring <command> --help for its options)',
    '       wellspring --version',
    '',
    'Commands:',
    ...rows,
    '',
    'Environment: WELLSPRING_BACKEND=tensorflow|wasm|cpu picks the compute backend.',
    '',
    'Exit codes: 0 done; 1 failed (the message names the file / run and what was wrong); 2 bad command line or',
    'settings (nothing was run); 130 / 143 stopped by Ctrl-C / SIGTERM after saving (rerun to resume).',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(packageInfo().version);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview(commands));
    return 0;
  }
  const command = commands.get(name);
  if (!command) {
    console.error(`wellspring: unknown command "${name}"\n\n${overview(commands)}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`wellspring ${name}: ${err.message}\n\n${command.help}`);
      return 2;
    }
    if (err instanceof InterruptedError) {
      console.error(`wellspring ${name}: ${err.message}`);
      return err.exitCode;
    }
    console.error(`wellspring ${name}: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.WELLSPRING_DEBUG && err instanceof Error) console.error(err.stack);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
  // A failed command may leave worker threads or file handles behind; do not let them keep the process alive.
  setTimeout(() => process.exit(), 2000).unref();
}
