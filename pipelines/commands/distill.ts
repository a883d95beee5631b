/** `wellspring distill`: distils a latent diffusion emulator into a one-step student (PIDDM). */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { distillDefaults, distillSettings, makePairs, trainStudent } from '../jobs/distill.js';
import { parseShard } from '../cli/shard.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring distill --teacher DIFFUSION_RUN --cache CACHE_RUN --run DIR [--shard i/n] [--pairs-only]
                         [--ae AE_RUN --data ROOT --set lambda=0.1] [--config FILE] [--set KEY=VALUE ...]

Physics-informed distillation of a trained latent diffusion emulator (the teacher) into a one-step student:
1. pairs: the teacher's deterministic sampler run from seeded noise on training windows of CACHE_RUN, written
   to DIR/pairs/train.arrow (kept on a rerun);
2. student: a copy of the teacher trained on the pairs with |d(eps) - x0|^2 + lambda |R(decode(d(eps)))|^2,
   R the PDE residual of the decoded states (lambda > 0 needs --ae and --data), saved as
   DIR/emulator.safetensors; "wellspring eval --student DIR" rolls it out beside the others.
Ctrl-C saves; rerunning resumes.

Scaling out: --shard i/n (default: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT) makes the i-th contiguous
range of the pair batches and stops (implies --pairs-only); a final run without --shard trains the student on
all the shard files.

Options:
  --teacher DIR        train-diffusion run directory (sets teacher)
  --cache DIR          cache run directory (sets cache)
  --ae DIR             train-ae run directory, for the residual penalty (sets autoencoder)
  --data ROOT          dataset root, for the residual's grid and parameters (sets data.root)
  --shard i/n          this process's range of the pair batches
  --pairs-only         make the pairs and stop
${COMMON_OPTIONS_HELP}

Settings and defaults:
${settingsHelp(distillDefaults, distillSettings)}`;

export const command: Command = {
  name: 'distill',
  summary: 'Distil the diffusion emulator into a one-step student (teacher pairs, PDE-residual penalty)',
  help,
  async run(argv) {
    const { config, runDir, values } = await parsePipelineArgs(argv, distillDefaults, {
      teacher: { type: 'string' },
      cache: { type: 'string' },
      ae: { type: 'string' },
      data: { type: 'string' },
      shard: { type: 'string' },
      'pairs-only': { type: 'boolean' },
    });
    if (values.teacher) config.teacher = values.teacher as string;
    if (values.cache) config.cache = values.cache as string;
    if (values.ae) config.autoencoder = values.ae as string;
    if (values.data) config.data.root = values.data as string;
    const shard = parseShard(values.shard as string | undefined);
    const run = await openPipelineRun(runDir, 'distill', config, ['train.steps', 'train.logEvery']);
    const path = await withInterrupt((signal) => makePairs(config, run, shard, signal));
    console.error(`pairs: ${path}`);
    if (values['pairs-only'] || shard.count > 1) return 0;
    const student = await withInterrupt((signal) => trainStudent(config, run, signal));
    console.error(`student written to ${run.path('emulator.safetensors')} (teacher ${config.teacher})`);
    student.dispose();
    return 0;
  },
};
