/**
 * `wellspring stats <split dir>`: computes a dataset's stats.yaml (mean, std, rms and their one-step-delta
 * versions per field) in one streaming pass over a split, with progress on stderr.
 */
import { UsageError, parseCommandArgs, type Command } from '../cli/command.js';
import { computeWellStats, formatStatsYaml } from '../../src/formats/well/index.js';
import { formatProgress } from '../../src/streams/progress.js';
import { writeFileAtomic } from '../../src/streams/atomic.js';

const help = `Usage: wellspring stats <split dir | file.hdf5 ...> [--out stats.yaml] [options]

Reads every field of every file once, in bounded blocks inside worker threads, and pools moments per field
component (float64, numerically stable). Prints the YAML (The Well's layout: keys sorted, %.4E numbers) or
writes it to --out (atomically).

Options:
  --out FILE           write the YAML here instead of stdout
  --log1p LIST         comma-separated fields to transform with log1p before the moments
  --non-finite MODE    error (default): stop at the first NaN/Inf naming file, dataset and frame;
                       count: report how many were met
  --quiet              no progress on stderr
  -h, --help           this help

Example:
  wellspring stats datasets/rayleigh_benard/data/train --out datasets/rayleigh_benard/stats.yaml`;

export const command: Command = {
  name: 'stats',
  summary: 'Compute stats.yaml of a Well split in one streaming pass',
  help,
  async run(argv) {
    const parsed = parseCommandArgs(argv, {
      out: { type: 'string' },
      log1p: { type: 'string' },
      'non-finite': { type: 'string' },
      quiet: { type: 'boolean' },
    });
    if (parsed.positionals.length === 0) throw new UsageError('expected a split directory or HDF5 files');
    const nonFinite = parsed.values['non-finite'] ?? 'error';
    if (nonFinite !== 'error' && nonFinite !== 'count') throw new UsageError(`--non-finite must be error or count, got "${nonFinite}"`);
    const transforms = Object.fromEntries(
      (parsed.values.log1p ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((f) => [f, 'log1p' as const]),
    );
    const start = performance.now();
    let last = 0;
    const tty = process.stderr.isTTY === true;
    // idle HDF5 workers are unref'd: they never hold the process open, so they are not closed here
    const result = await computeWellStats(parsed.positionals, {
      transforms,
      nonFinite,
      onProgress: (done, total, bytes) => {
        const now = performance.now();
        if (parsed.values.quiet || (now - last < 1000 && done < total)) return;
        last = now;
        const elapsed = (now - start) / 1000;
        const rate = done / Math.max(elapsed, 1e-9);
        const line = `${formatProgress({ label: 'trajectories', count: done, total, elapsed, rate, eta: (total - done) / Math.max(rate, 1e-9), done: done === total })} ${(bytes / 1e6 / Math.max(elapsed, 1e-9)).toFixed(1)} MB/s`;
        process.stderr.write(tty ? `\r\x1b[K${line}${done === total ? '\n' : ''}` : `${line}\n`);
      },
    });
    const yaml = formatStatsYaml(result.stats);
    if (nonFinite === 'count') console.error(`non-finite values met: ${result.nonFinite}`);
    if (parsed.values.out) {
      await writeFileAtomic(parsed.values.out, yaml);
      if (!parsed.values.quiet) console.error(`wrote ${parsed.values.out} (${result.files.length} file(s))`);
    } else process.stdout.write(yaml);
    return 0;
  },
};
