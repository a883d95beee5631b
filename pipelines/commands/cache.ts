/** `wellspring cache`: encodes a Well dataset into Arrow latent-cache files with a trained autoencoder. */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { cacheDefaults, cacheSettings, cacheLatents } from '../jobs/cache.js';
import { mergeLatentCacheShards } from '../../src/formats/latent-cache/index.js';
import { parseShard } from '../cli/shard.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring cache --ae AE_RUN --data ROOT --run DIR [--shard i/n] [--config FILE] [--set KEY=VALUE ...]
       wellspring cache --merge --run DIR

Encodes every trajectory of the dataset's splits with the autoencoder of AE_RUN (a train-ae run directory) and
writes DIR/cache/<split>/<file>.arrow: one Arrow IPC file per source file and split, one row per trajectory copy
(train copies augmented with symmetries: splits.train copies each). Files already written are kept, so a rerun
finishes an interrupted job.

Scaling out: --shard i/n takes every n-th trajectory (default: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when
set) and writes <file>.shard-i-of-n.arrow; then "wellspring cache --merge --run DIR" joins the shards.

Options:
  --ae DIR             train-ae run directory (sets autoencoder)
  --data ROOT          dataset root (sets data.root)
  --shard i/n          this process's share of the trajectories
  --merge              join shard files instead of encoding
${COMMON_OPTIONS_HELP}

Settings and defaults:
${settingsHelp(cacheDefaults, cacheSettings)}`;

export const command: Command = {
  name: 'cache',
  summary: 'Encode a dataset into Arrow latent-cache files (sharded, resumable)',
  help,
  async run(argv) {
    const { config, runDir, values } = await parsePipelineArgs(argv, cacheDefaults, {
      ae: { type: 'string' },
      data: { type: 'string' },
      shard: { type: 'string' },
      merge: { type: 'boolean' },
    });
    if (values.merge) {
      const merged = await mergeLatentCacheShards(`${runDir}/cache`);
      console.error(`merged ${merged.length} file(s): ${merged.join(', ')}`);
      return 0;
    }
    if (values.ae) config.autoencoder = values.ae as string;
    if (values.data) config.data.root = values.data as string;
    const shard = parseShard(values.shard as string | undefined);
    const run = await openPipelineRun(runDir, 'cache', config);
    const result = await withInterrupt((signal) => cacheLatents(config, run, shard, signal));
    for (const f of result.files) console.error(`${f.skipped ? 'kept   ' : 'written'} ${f.path} (${f.trajectories} trajectories)`);
    const rows = result.files.reduce((a, f) => a + f.trajectories, 0);
    console.log(`cache: ${rows} trajectory rows in ${result.files.length} file(s) (${result.files.filter((f) => !f.skipped).length} written now) under ${run.path('cache')}`);
    return 0;
  },
};
