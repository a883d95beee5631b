/** The CLI of the two emulator-training subcommands, which differ only in the emulator kind. */
import type { Command } from './command.js';
import { omitSettings, settingsHelp, type ConfigObject } from './config.js';
import { DIFFUSION_ONLY_SETTINGS, TRAIN_EMULATOR_RUN_OPTIONS, trainEmulator, trainEmulatorDefaults, trainEmulatorSettings, type EmulatorKind } from '../jobs/train-emulator.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from './pipeline-command.js';

export function emulatorCommand(kind: EmulatorKind): Command {
  const name = `train-${kind}`;
  // The surrogate's command lists and accepts only its own settings; the job gets them over the shared defaults
  // (and the run directory records the full configuration, as before).
  const surrogateDefaults = omitSettings(trainEmulatorDefaults, DIFFUSION_ONLY_SETTINGS);
  const defaults: ConfigObject = kind === 'surrogate' ? surrogateDefaults : trainEmulatorDefaults;
  const settings = kind === 'surrogate' ? settingsHelp(surrogateDefaults, trainEmulatorSettings) : settingsHelp(trainEmulatorDefaults, trainEmulatorSettings);
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
${settings}`;
  return {
    name,
    summary: kind === 'surrogate' ? 'Train the deterministic latent surrogate' : 'Train the latent diffusion emulator',
    help,
    async run(argv) {
      const parsed = await parsePipelineArgs(argv, defaults, { cache: { type: 'string' } });
      const config = { ...trainEmulatorDefaults, ...parsed.config } as typeof trainEmulatorDefaults;
      if (parsed.values.cache) config.cache = parsed.values.cache as string;
      const run = await openPipelineRun(parsed.runDir, name, config, TRAIN_EMULATOR_RUN_OPTIONS);
      const loaded = await withInterrupt((signal) => trainEmulator(kind, config, run, signal));
      console.error(`${kind} emulator written to ${run.path('emulator.safetensors')}`);
      console.log(`${name}: validation loss ${loaded.validLoss.toPrecision(4)} after ${loaded.steps} steps`);
      loaded.vit.dispose();
      return 0;
    },
  };
}
