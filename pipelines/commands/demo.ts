/** `wellspring demo` (`npm run demo`): the whole workflow end to end on a small built-in Euler dataset. */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { demoDefaults, demoSettings, formatSummary, runDemo } from '../jobs/demo.js';
import { parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring demo [--out DIR] [--config FILE] [--set KEY=VALUE ...]

Runs the reference study's workflow end to end with no download: simulates a small Euler multi-quadrants
dataset, trains the autoencoder, caches latents, trains the deterministic surrogate and the diffusion emulator,
evaluates both on the test split and writes the report. Each step has its own run directory under DIR (default
runs/demo); rerunning resumes an interrupted demo. Prints the figures and where the report is.

Options:
  --out DIR            where everything goes (default runs/demo; sets out)
  --config FILE        YAML or JSON file of settings over the defaults
  --set KEY=VALUE      override one setting, e.g. --set autoencoder.steps=1000
  -h, --help           this help

Settings and defaults:
${settingsHelp(demoDefaults, demoSettings)}`;

export const command: Command = {
  name: 'demo',
  summary: 'Run the whole workflow end to end on a small built-in Euler dataset',
  help,
  async run(argv) {
    // The demo has no run directory of its own (each step has one under --out).
    const { config, values } = await parsePipelineArgs(argv, demoDefaults, { out: { type: 'string' } }, 'unused');
    if (values.out) config.out = values.out as string;
    const t0 = performance.now();
    const summary = await withInterrupt((signal) => runDemo(config, signal));
    console.log(`\n${formatSummary(summary)}\nTotal ${((performance.now() - t0) / 60_000).toFixed(1)} min`);
    return 0;
  },
};
