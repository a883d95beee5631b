/** `wellspring piddm-darcy`: PIDDM's Darcy experiment in pixel space (teacher, student, refinement, problems). */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { checkPiddmDarcyConfig, formatPiddmDarcy, piddmDarcy, piddmDarcyDefaults, piddmDarcySettings } from '../jobs/piddm-darcy.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring piddm-darcy --run DIR [--data ROOT] [--config FILE] [--set KEY=VALUE ...]

Physics-informed distillation (PIDDM) on steady Darcy flow, -div(a grad u) = 1, in pixel space:
1. data: ROOT (a "wellspring generate darcy" dataset) or, without --data, one generated into DIR/data;
2. teacher: an unconditional diffusion model of the joint (a, u) states on the interior nodes (DIR/teacher.safetensors);
3. student: a copy of the teacher trained in one step on the teacher's (noise, ODE sample) pairs with
   |d(eps) - x0|^2 + lambda |R(d(eps))|^2, R the Darcy residual (DIR/student.safetensors);
4. one table of the teacher, the student and the refined student (gradient steps on eps reducing R) from
   common noise: PDE error (mean square residual) and Wasserstein-1 of a and u to held-out data;
5. forward (u given a) and inverse (a given u) problems by masked refinement of the student, with and without
   the residual term, and their errors against the solver's pairs.
Writes DIR/results/piddm-darcy.{json,md} and prints the tables. A rerun skips the phases whose weights exist.

Options:
  --data ROOT          dataset root of "generate darcy" (sets data.root)
${COMMON_OPTIONS_HELP}

Settings and defaults:
${settingsHelp(piddmDarcyDefaults, piddmDarcySettings)}`;

export const command: Command = {
  name: 'piddm-darcy',
  summary: 'PIDDM on Darcy flow in pixel space: teacher, one-step student, refinement, forward and inverse problems',
  help,
  async run(argv) {
    const { config, runDir, values } = await parsePipelineArgs(argv, piddmDarcyDefaults, { data: { type: 'string' } });
    if (values.data) config.data.root = values.data as string;
    checkPiddmDarcyConfig(config);
    const run = await openPipelineRun(runDir, 'piddm-darcy', config, []);
    const result = await withInterrupt((signal) => piddmDarcy(config, run, signal));
    process.stdout.write(formatPiddmDarcy(result));
    console.error(`results in ${run.path('results')}`);
    return 0;
  },
};
