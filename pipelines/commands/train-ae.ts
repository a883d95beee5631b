/** `wellspring train-ae`: trains the autoencoder on a Well dataset. */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { trainAeDefaults, trainAeSettings, trainAutoencoder } from '../jobs/train-ae.js';
import { TRAIN_RUN_OPTIONS } from '../jobs/training.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring train-ae --data ROOT --run DIR [--config FILE] [--set KEY=VALUE ...]

Trains the DCAE autoencoder on the train split of a Well dataset root (ROOT/data/train), with statistics of the
log1p-transformed fields computed on that split. Writes DIR/autoencoder.safetensors, DIR/normalization.json,
DIR/metrics.json (validation reconstruction VRMSE against the mean-field baseline) and checkpoints. Ctrl-C saves
a checkpoint; rerunning the same command resumes (train.steps may be raised to train longer).

Options:
  --data ROOT          dataset root (sets data.root)
${COMMON_OPTIONS_HELP}

Settings and defaults:
${settingsHelp(trainAeDefaults, trainAeSettings)}`;

export const command: Command = {
  name: 'train-ae',
  summary: 'Train the autoencoder (DCAE) on a Well dataset',
  help,
  async run(argv) {
    const { config, runDir, values } = await parsePipelineArgs(argv, trainAeDefaults, { data: { type: 'string' } });
    if (values.data) config.data.root = values.data as string;
    const run = await openPipelineRun(runDir, 'train-ae', config, TRAIN_RUN_OPTIONS);
    const ae = await withInterrupt((signal) => trainAutoencoder(config, run, signal));
    console.error(`autoencoder ${ae.id} written to ${run.path('autoencoder.safetensors')}`);
    const m = ae.validation;
    console.log(`train-ae: validation VRMSE ${m.vrmseMean.toPrecision(3)} against ${m.baselineVrmseMean.toPrecision(3)} for the mean-field baseline (${m.frames} frames)`);
    ae.dcae.dispose();
    return 0;
  },
};
