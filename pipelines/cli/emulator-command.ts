/** The CLI of the two emulator-training subcommands, which differ only in the emulator kind. */
import { stringify } from 'yaml';
import type { Command } from './command.js';
import { trainEmulator, trainEmulatorDefaults, type EmulatorKind } from '../jobs/train-emulator.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from './pipeline-command.js';

export function emulatorCommand(kind: EmulatorKind): Command {
  const name = `train-${kind}`;
  const what =
    kind === 'surrogate'
      ? 'the deterministic latent surrogate (ViT, MSE loss)'
      : 'the latent diffusion emulator (ViT denoiser; formulation "diffusion" or "flow")';
  const help = `Usage: wellspring ${name} --cache CACHE_RUN --run DIR [--config FILE] [--set KEY=VALUE ...]

Trains ${what} on windows of cached latent states (CACHE_RUN/cache/train/*.arrow) with a random number of
observed leading frames, and scores it on the valid split. Writes DIR/emulator.safetensors, DIR/metrics.json and
checkpoints; Ctrl-C saves a checkpoint and rerunning resumes (train.steps may be raised).

Options:
  --cache DIR          cache run directory (sets cache)
${COMMON_OPTIONS_HELP}

Settings and defaults:
${stringify(trainEmulatorDefaults).trimEnd().replace(/^/gm, '  ')}`;
  return {
    name,
    summary: kind === 'surrogate' ? 'Train the deterministic latent surrogate' : 'Train the latent diffusion emulator',
    help,
    async run(argv) {
      const { config, runDir, values } = await parsePipelineArgs(argv, trainEmulatorDefaults, { cache: { type: 'string' } });
      if (values.cache) config.cache = values.cache as string;
      const run = await openPipelineRun(runDir, name, config, ['train.steps']);
      const loaded = await withInterrupt((signal) => trainEmulator(kind, config, run, signal));
      console.error(`${kind} emulator written to ${run.path('emulator.safetensors')}`);
      loaded.vit.dispose();
      return 0;
    },
  };
}
