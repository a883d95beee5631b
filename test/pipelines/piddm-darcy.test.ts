import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The CLI from dist/ (npm test builds first), on a tiny configuration: a 8 x 8 Darcy grid, a one-block ViT.
const cli = join(process.cwd(), 'dist', 'pipelines', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'ws-piddm-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tiny = [
  ['generate.resolution', 10], ['generate.trajectories', 40], ['model.width', 32], ['model.depth', 1],
  ['teacher.steps', 20], ['teacher.warmup', 2], ['student.steps', 10], ['student.warmup', 2], ['student.batchSize', 8],
  ['pairs.count', 16], ['evaluation.samples', 8], ['problems.count', 4], ['problems.steps', 5], ['refine.steps', 3],
].flatMap(([k, v]) => ['--set', `${k}=${v}`]);
const run = (args: string[]) => spawnSync(process.execPath, [cli, 'piddm-darcy', ...args], { encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });

t.test('teacher, student, refinement and the two problems, into one table; a rerun reuses the trained weights', async (t) => {
  const out = join(dir, 'run');
  const first = run(['--run', out, ...tiny]);
  t.equal(first.status, 0, first.stderr.split('\n').slice(-5).join('\n'));
  const result = JSON.parse(readFileSync(join(out, 'results', 'piddm-darcy.json'), 'utf8')) as {
    schema: string; grid: number; dataPdeError: number;
    generation: { model: string; calls: number; pdeError: number; w1A: number; w1U: number }[];
    problems: { problem: string; lambda: number; relativeError: number; misclassified?: number; pdeError: number }[];
  };
  t.equal(result.schema, 'wellspring-piddm-darcy/1');
  t.equal(result.grid, 8, 'the interior of a 10-node grid');
  t.ok(result.dataPdeError < 1e-6, `the solver's own states satisfy the discrete equation (${result.dataPdeError})`);
  t.same(result.generation.map((g) => [g.model, g.calls]), [['teacher', 16], ['student', 1], ['student + refinement', 7]]);
  for (const g of result.generation) t.ok([g.pdeError, g.w1A, g.w1U].every((v) => Number.isFinite(v) && v >= 0), `${g.model}: finite scores`);
  t.same(result.problems.map((p) => p.problem), ['forward: u given a', 'forward: u given a', 'inverse: a given u', 'inverse: a given u']);
  t.same(result.problems.map((p) => p.lambda), [0, 0.01, 0, 0.01]);
  t.ok(result.problems.every((p) => Number.isFinite(p.relativeError) && p.relativeError > 0));
  t.ok(result.problems.filter((p) => p.problem.startsWith('inverse')).every((p) => p.misclassified !== undefined && p.misclassified >= 0 && p.misclassified <= 1));
  t.match(first.stdout, /\| student \| 1 \|/, 'the table is printed');
  t.match(readFileSync(join(out, 'results', 'piddm-darcy.md'), 'utf8'), /\| teacher \| 16 \|/);
  const weights = ['teacher.safetensors', 'student.safetensors'].map((f) => statSync(join(out, f)).mtimeMs);
  const again = run(['--run', out, ...tiny]);
  t.equal(again.status, 0);
  t.same(['teacher.safetensors', 'student.safetensors'].map((f) => statSync(join(out, f)).mtimeMs), weights, 'the rerun trained nothing');
  t.notMatch(again.stderr, /piddm teacher steps/);
});

t.test('bad settings are refused before anything is written', async (t) => {
  const out = join(dir, 'bad');
  const r = run(['--run', out, '--set', 'teacher.steps=10', '--set', 'teacher.warmup=50']);
  t.equal(r.status, 2);
  t.match(r.stderr, /teacher\.warmup \(50\) must be below teacher\.steps \(10\)/);
  t.notOk(existsSync(out), 'no run directory');
  const s = run(['--run', out, '--set', 'sampling.sampler=ddpm']);
  t.match(s.stderr, /sampling\.sampler must be euler, heun or ab/);
});
