import t from 'tap';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command } from '../../pipelines/commands/generate.js';
import { UsageError } from '../../pipelines/cli/command.js';
import { closeWellPool } from '../../src/formats/well/index.js';

const dir = await mkdtemp(join(tmpdir(), 'wellspring-generate-cli-'));
t.teardown(async () => {
  await closeWellPool();
  await rm(dir, { recursive: true, force: true });
});

t.test('usage errors name the problem', async (t) => {
  const out = join(dir, 'bad');
  const cases: [string[], RegExp][] = [
    [['--out', out], /one system/],
    [['navier-stokes', '--out', out], /unknown system/],
    [['euler'], /--out DIR is required/],
    [['euler', '--out', out, '--bc', 'wall'], /--bc must be periodic or open/],
    [['euler', '--out', out, '--resolution', '0'], /--resolution must be a positive integer/],
    [['euler', '--out', out, '--gamma', '1.4,x'], /--gamma: "x"/],
    [['euler', '--out', out, '--rayleigh', '1e6'], /rayleigh-benard only/],
    [['rayleigh-benard', '--out', out, '--gamma', '1.4'], /euler only/],
    [['rayleigh-benard', '--out', out, '--resolution', '12'], /power of two/],
    [['euler', '--out', out, '--frobnicate'], /Unknown option/],
  ];
  for (const [argv, message] of cases) {
    const err = await command.run(argv).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof UsageError, `${argv.join(' ')}: a UsageError`);
    t.match((err as Error).message, message);
  }
  t.match(command.help, /--gamma LIST/);
});

t.test('generates a small Euler dataset with open boundaries', async (t) => {
  const out = join(dir, 'euler-open');
  const code = await command.run([
    'euler', '--out', out, '--resolution', '8', '--trajectories', '3', '--steps', '3', '--seed', '2',
    '--bc', 'open', '--gamma', '1.76', '--threads', '1',
  ]);
  t.equal(code, 0);
  t.same(await readdir(join(out, 'data', 'train')), ['euler_multi_quadrants_openBC_gamma_1.76_Ar_-180.hdf5']);
  t.ok((await readdir(out)).includes('stats.yaml'));
});
