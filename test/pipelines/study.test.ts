// `wellspring study --preset tiny` end to end through the CLI: three compression rates x two seeds x {surrogate,
// diffusion}, evaluated with the baselines; the table's structure (rows per compression and model, shared
// baseline rows, one value per seed, the spatial-mean baseline at its analytic VRMSE), the report's plots, a
// rerun that skips every finished step, a changed configuration refused, a stage run before its dependencies
// refused, and Rayleigh-Benard through the same command. Uses the compiled CLI (`npm test` builds first).
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StudyTable } from 'wellspring-latent';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

function run(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, WELLSPRING_BACKEND: 'wasm' };
  for (const k of Object.keys(env)) if (k.startsWith('SLURM_')) delete env[k]; // no accidental shard
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('study --preset tiny: the table of compression rates x seeds x models', { skip: built ? false : 'run `npm run build` first', timeout: 600_000 }, async (t) => {
  const dir = join(t.testdir(), 'study');
  const first = run(['study', '--preset', 'tiny', '--run', dir]);
  t.equal(first.status, 0, `study exits 0${first.status === 0 ? '' : `: ${first.stderr.slice(-1500)}`}`);
  t.match(first.stdout, /\| model \| compression \| lead 1-4 \| lead 5-11 \|/, 'prints the table in the paper\'s layout');
  for (const f of ['table.md', 'table.json', 'report.html']) t.ok(existsSync(join(dir, 'results', f)), `results/${f}`);
  const { vrmse, spreadSkill } = JSON.parse(readFileSync(join(dir, 'results', 'table.json'), 'utf8')) as { vrmse: StudyTable; spreadSkill: StudyTable };

  // 16x16x5 frames: channels [8, 16, 32] give 4x4 latents; 4, 2, 1 latent channels give 20x, 40x, 80x.
  t.same(vrmse.compressions, [20, 40, 80]);
  t.same(vrmse.seeds, [0, 1]);
  t.same(vrmse.bands, ['1-4', '5-11']);
  const rows = vrmse.rows.map((r) => `${r.model}@${r.compression ?? '-'}`);
  t.same(rows, [
    'autoencoder@20', 'surrogate@20', 'diffusion@20', 'diffusion-vs-ae@20',
    'autoencoder@40', 'surrogate@40', 'diffusion@40', 'diffusion-vs-ae@40',
    'autoencoder@80', 'surrogate@80', 'diffusion@80', 'diffusion-vs-ae@80',
    'persistence@-', 'spatial-mean@-',
  ], 'one row per compression and model (diffusion-vs-ae: the ensemble against the reconstruction), the baselines once');
  for (const r of vrmse.rows) {
    for (const band of vrmse.bands) {
      const cell = r.cells[band]!;
      const expected = r.compression === null ? 6 : 2; // a baseline pools every evaluation, a model its seeds
      t.equal(cell.values.length, expected, `${r.model}@${r.compression ?? '-'} lead ${band}: ${expected} values`);
      t.ok(cell.values.every(Number.isFinite) && cell.mean > 0, `${r.model}@${r.compression ?? '-'} lead ${band}: finite VRMSE ${cell.mean.toFixed(3)}`);
    }
  }
  const mean = vrmse.rows.find((r) => r.model === 'spatial-mean')!;
  for (const band of vrmse.bands) {
    t.ok(Math.abs(mean.cells[band]!.mean - Math.sqrt(255 / 256)) < 2e-3, `spatial-mean VRMSE ${mean.cells[band]!.mean.toFixed(4)} = sqrt(255/256) on 16x16 frames`);
  }
  const ae = vrmse.rows.find((r) => r.model === 'autoencoder')!;
  t.ok(ae.cells['1-4']!.std < 1e-9, 'the reconstruction does not depend on the emulators\' seed: std 0');
  t.same(
    spreadSkill.rows.map((r) => `${r.model}@${r.compression}`),
    ['diffusion@20', 'diffusion-vs-ae@20', 'diffusion@40', 'diffusion-vs-ae@40', 'diffusion@80', 'diffusion-vs-ae@80'],
    'spread/skill rows: the stochastic model only, against the truth and against the reconstruction',
  );
  const html = readFileSync(join(dir, 'results', 'report.html'), 'utf8');
  for (const id of ['study-vrmse-compression', 'study-spread-skill']) t.match(html, new RegExp(`data-plot="${id}"><h3>[^<]+</h3><figcaption>[^<]+</figcaption>\\n<svg`), `report has the ${id} plot`);
  t.equal(readdirSync(join(dir, 'steps')).length, 1 + 3 + 3 + 12 + 6 + 1, 'one marker per step');

  // Rerun: every step finished, only the table is rendered again, with the same figures.
  const again = run(['study', '--preset', 'tiny', '--run', dir]);
  t.equal(again.status, 0);
  t.notMatch(again.stderr, /== study step/, 'no step runs again');
  t.same((JSON.parse(readFileSync(join(dir, 'results', 'table.json'), 'utf8')) as { vrmse: StudyTable }).vrmse, vrmse, 'same table');

  // The seeds may change: a rerun with fewer seeds runs nothing and tabulates those; the record follows.
  const fewer = run(['study', '--preset', 'tiny', '--run', dir, '--set', 'seeds=[1]']);
  t.equal(fewer.status, 0, `fewer seeds: exits 0${fewer.status === 0 ? '' : `: ${fewer.stderr.slice(-800)}`}`);
  t.notMatch(fewer.stderr, /== study step/, 'fewer seeds: no step runs again');
  const one = (JSON.parse(readFileSync(join(dir, 'results', 'table.json'), 'utf8')) as { vrmse: StudyTable }).vrmse;
  t.same(one.seeds, [1], 'fewer seeds: the table has seed 1 only');
  const diffusionAt20 = (table: StudyTable) => table.rows.find((r) => r.model === 'diffusion' && r.compression === 20)!.cells['1-4']!;
  t.same(diffusionAt20(one).values, [diffusionAt20(vrmse).values[1]], 'fewer seeds: seed 1\'s figure unchanged');
  t.same((JSON.parse(readFileSync(join(dir, 'study.json'), 'utf8')) as { config: { seeds: number[] } }).config.seeds, [1], 'the record holds the seeds last run');

  // Another configuration in the same directory is refused; a stage before its dependencies is refused.
  const changed = run(['study', '--preset', 'tiny', '--run', dir, '--set', 'eval.ensemble=3']);
  t.equal(changed.status, 2);
  t.match(changed.stderr, /holds a study of another configuration \(eval\.ensemble: 2 -> 3\)/);
  const early = run(['study', '--preset', 'tiny', '--run', join(dir, '..', 'fresh'), '--stage', 'cache', '--shard', '1/2']);
  t.equal(early.status, 1);
  t.match(early.stderr, /step cache-2 needs ae-2, not finished: run stage ae first/);
  t.match(run(['study', '--preset', 'huge', '--run', dir]).stderr, /--preset huge: expected one of default, tiny/);
});

t.test('study --system rayleigh-benard runs through the same command', { skip: built ? false : 'run `npm run build` first', timeout: 600_000 }, async (t) => {
  const dir = join(t.testdir(), 'rb');
  const r = run(['study', '--preset', 'tiny', '--system', 'rayleigh-benard', '--run', dir, '--set', 'latentChannels=[2]', '--set', 'seeds=[0]']);
  t.equal(r.status, 0, `study exits 0${r.status === 0 ? '' : `: ${r.stderr.slice(-1500)}`}`);
  const { vrmse } = JSON.parse(readFileSync(join(dir, 'results', 'table.json'), 'utf8')) as { vrmse: StudyTable };
  // 32x8 grid, 4 channels (buoyancy, pressure, velocity_x, velocity_y) -> 8x2x2 latents: 32x.
  t.same(vrmse.compressions, [32]);
  t.same(vrmse.rows.map((r) => r.model), ['autoencoder', 'surrogate', 'diffusion', 'diffusion-vs-ae', 'persistence', 'spatial-mean']);
});
