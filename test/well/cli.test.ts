/** The `inspect` and `stats` subcommands, run in-process on the fixtures. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { command as inspect } from '../../pipelines/commands/inspect.js';
import { command as stats } from '../../pipelines/commands/stats.js';
import { UsageError } from '../../pipelines/cli/command.js';
import { parseStatsYaml, flatStat, formatSci } from '../../src/formats/well/index.js';
import { fixtures, tempDir } from './helpers.js';

const rbDir = join(fixtures, 'rayleigh_benard');
const rbFile = join(rbDir, 'data/train/rayleigh_benard_Rayleigh_1e6_Prandtl_1_mini.hdf5');

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const original = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await fn(), out };
  } finally {
    process.stdout.write = original;
  }
}

t.test('inspect: readable summary and --json', async (t) => {
  const text = await capture(() => inspect.run([rbFile]));
  t.equal(text.code, 0);
  t.match(text.out, /dataset\s+rayleigh_benard/);
  t.match(text.out, /channels\s+4: buoyancy, pressure, velocity_x, velocity_y/);
  t.match(text.out, /table y: low WALL, high WALL/);
  const json = await capture(() => inspect.run([rbFile, '--json']));
  const meta = JSON.parse(json.out);
  t.same(meta.spatialShape, [32, 16]);
  t.same(meta.channels, ['buoyancy', 'pressure', 'velocity_x', 'velocity_y']);
  t.same(meta.boundaryTable, [{ dim: 'x', low: 2, high: 2 }, { dim: 'y', low: 0, high: 0 }]);
  await t.rejects(inspect.run([]), UsageError);
  await t.rejects(inspect.run([rbFile, '--nope']), UsageError);
  await t.rejects(inspect.run(['/no/such.hdf5']), /\/no\/such\.hdf5: no such file/);
});

t.test('stats: writes stats.yaml matching the fixture', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'stats.yaml');
  t.equal(await stats.run([join(rbDir, 'data/train'), '--out', out, '--quiet']), 0);
  const got = parseStatsYaml(readFileSync(out, 'utf8'));
  const want = parseStatsYaml(readFileSync(join(rbDir, 'stats.yaml'), 'utf8'));
  for (const [field, v] of Object.entries(want.std)) {
    t.same(flatStat(got.std[field]!).map(formatSci), flatStat(v).map(formatSci), `std.${field}`);
  }
  await t.rejects(stats.run([]), UsageError);
  await t.rejects(stats.run([rbFile, '--non-finite', 'ignore']), /--non-finite must be error or count/);
});
