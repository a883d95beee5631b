/** `wellspring study`: autoencoders at three compression rates, a surrogate and a diffusion emulator for each, several seeds, one table. */
import { stringify } from 'yaml';
import type { Command } from '../cli/command.js';
import { UsageError } from '../cli/command.js';
import { parseShard } from '../cli/shard.js';
import { parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';
import { runStudy, STUDY_PRESETS, STUDY_STAGES, studyDefaults, type StudyStage } from '../jobs/study.js';

const help = `Usage: wellspring study [--run DIR] [--preset default|tiny] [--system euler|rayleigh-benard]
                       [--shard i/n] [--stage STAGE] [--config FILE] [--set KEY=VALUE ...]

The shape of the reference study's main table on built-in data: simulates a dataset, trains one autoencoder per
latent channel count (three compression rates by default), caches each one's latents, trains a deterministic
surrogate and a diffusion emulator per compression and seed, evaluates each with the baselines (persistence,
spatial mean), and prints and writes the table: VRMSE by lead band, mean +- std over seeds, per compression and
model, then spread/skill. Writes DIR/results/ (table.md, table.json, report.html with VRMSE against compression
and spread/skill plots); each step has its own run directory under DIR, and rerunning resumes (finished steps are
skipped, an interrupted one resumes from its checkpoint).

The default preset takes about an hour on 2 cores (60 minutes on the development machine); --preset tiny runs
in about a minute and only checks that everything fits together.

Scaling out: stages data, ae, cache, emulators, eval, table run in that order. --shard i/n deals each stage's
steps round-robin (default: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set); a task waits for the steps
of earlier stages that other tasks run. --stage STAGE runs one stage only (its earlier stages must be finished),
for arrays chained with --dependency=afterok.

Options:
  --run DIR            the study's directory (default runs/study)
  --preset NAME        default or tiny: the settings the file and --set apply over
  --system NAME        euler (default) or rayleigh-benard (sets system)
  --shard i/n          this process's share of each stage's steps
  --stage STAGE        one of ${STUDY_STAGES.join(', ')}
  --config FILE        YAML or JSON file of settings over the preset
  --set KEY=VALUE      override one setting, e.g. --set seeds=[0,1]
  -h, --help           this help

Settings and defaults (preset default):
${stringify(studyDefaults).trimEnd().replace(/^/gm, '  ')}`;

/** The value of `--preset` (as `--preset NAME` or `--preset=NAME`), before the full parse. */
function presetName(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--preset') return argv[i + 1] ?? '';
    if (argv[i]!.startsWith('--preset=')) return argv[i]!.slice('--preset='.length);
  }
  return 'default';
}

export const command: Command = {
  name: 'study',
  summary: 'Compression rates x seeds x {surrogate, diffusion}, evaluated with baselines, as the paper\'s table',
  help,
  async run(argv) {
    const name = presetName(argv);
    const preset = STUDY_PRESETS[name];
    if (!preset) throw new UsageError(`--preset ${name}: expected one of ${Object.keys(STUDY_PRESETS).join(', ')}`);
    const { config, runDir, values } = await parsePipelineArgs(
      argv,
      preset,
      { preset: { type: 'string' }, system: { type: 'string' }, shard: { type: 'string' }, stage: { type: 'string' } },
      'runs/study',
    );
    if (values.system !== undefined) config.system = values.system as string;
    const stage = values.stage as string | undefined;
    if (stage !== undefined && !(STUDY_STAGES as readonly string[]).includes(stage)) throw new UsageError(`--stage ${stage}: expected one of ${STUDY_STAGES.join(', ')}`);
    const shard = parseShard(values.shard as string | undefined);
    const t0 = performance.now();
    const result = await withInterrupt((signal) => runStudy(config, runDir, { shard, stage: stage as StudyStage | undefined, signal }));
    if (result.table) console.log(`\n${result.table}\nResults: ${result.results} (report.html)`);
    else console.error(`study: this shard ran ${result.ran.length} step(s) (${result.ran.join(', ') || 'none'}), ${result.skipped.length} already finished; the table is written by shard 0`);
    console.error(`Total ${((performance.now() - t0) / 60_000).toFixed(1)} min`);
    return 0;
  },
};
