// Distillation through the compiled CLI on tiny runs: teacher pairs (whole and in two shards, equal), the
// one-step student trained with the PDE-residual penalty through the decoder, its run loaded as an emulator and
// scored by `eval` beside the teacher, and a teacher of the wrong kind refused naming the run.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });
}

function ok(t: Tap.Test, args: string[]) {
  const r = run(args);
  t.equal(r.status, 0, `wellspring ${args[0]} exits 0${r.status === 0 ? '' : `: ${r.stderr.slice(-600)}`}`);
  return r;
}

t.test('distill: pairs (whole and sharded), a student with the residual penalty, eval', { skip: built ? false : 'run `npm run build` first', timeout: 600_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const ae = join(dir, 'ae');
  const cache = join(dir, 'cache');
  ok(t, ['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '10', '--seed', '4']);
  ok(t, ['train-ae', '--data', data, '--run', ae, '--set', 'train.steps=30', '--set', 'train.warmup=5', '--set', 'train.batchSize=8', '--set', 'model.channels=[8,16]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=4', '--set', 'train.workers=1']);
  ok(t, ['cache', '--ae', ae, '--data', data, '--run', cache, '--set', 'splits.train=1']);
  const vit = ['--set', 'train.workers=1', '--set', 'train.steps=8', '--set', 'train.warmup=2', '--set', 'train.batchSize=4', '--set', 'model.width=32', '--set', 'model.depth=1', '--set', 'model.heads=2', '--set', 'train.shuffleBuffer=16'];
  const teacher = join(dir, 'dif');
  ok(t, ['train-diffusion', '--cache', cache, '--run', teacher, ...vit, '--set', 'sampling.steps=4']);
  const surrogate = join(dir, 'sur');
  ok(t, ['train-surrogate', '--cache', cache, '--run', surrogate, ...vit]);

  const pairs = ['--set', 'pairs.batches=4', '--set', 'pairs.batchSize=4', '--set', 'pairs.shuffleBuffer=16'];
  const student = join(dir, 'student');
  const train = ['--set', 'train.steps=12', '--set', 'train.warmup=2', '--set', 'train.lr=0.001', '--set', 'lambda=0.01'];
  const r = ok(t, ['distill', '--teacher', teacher, '--cache', cache, '--ae', ae, '--data', data, '--run', student, ...pairs, ...train]);
  t.match(r.stderr, /student written to/);
  t.ok(existsSync(join(student, 'pairs', 'train.arrow')), 'pairs written');
  const meta = JSON.parse(readFileSync(join(student, 'emulator.safetensors')).subarray(8, 8 + Number(readFileSync(join(student, 'emulator.safetensors')).readBigUInt64LE(0))).toString()).__metadata__ as Record<string, string>;
  t.equal(meta.kind, 'student');
  t.equal(meta.lambda, '0.01');
  const steps = readFileSync(join(student, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; loss?: number; step?: number }).filter((e) => e.event === 'step');
  t.ok(steps.length >= 2 && steps.every((s) => Number.isFinite(s.loss)), `finite losses logged (${steps.map((s) => s.loss!.toFixed(4)).join(', ')})`);

  // The same pairs in two shards: the student step reads them in order, so the files hold the same batches.
  const sharded = join(dir, 'sharded');
  for (const shard of ['0/2', '1/2']) ok(t, ['distill', '--teacher', teacher, '--cache', cache, '--run', sharded, '--shard', shard, ...pairs]);
  const shardFiles = readdirSync(join(sharded, 'pairs')).sort();
  t.same(shardFiles, ['train.shard-0000-of-0002.arrow', 'train.shard-0001-of-0002.arrow']);
  const { readPairs } = await import('../../src/formats/pairs/index.js');
  const collectNoise = async (paths: string[]) => {
    const out: number[] = [];
    for await (const b of readPairs(paths)) out.push(b.index, b.noise[0]!, b.sample[7]!);
    return out;
  };
  t.same(await collectNoise(shardFiles.map((f) => join(sharded, 'pairs', f))), await collectNoise([join(student, 'pairs', 'train.arrow')]), 'two shards make the same pairs as one run');

  // eval rolls the student out beside its teacher.
  const evalDir = join(dir, 'eval');
  ok(t, ['eval', '--ae', ae, '--cache', cache, '--data', data, '--diffusion', teacher, '--student', student, '--run', evalDir, '--set', 'ensemble=2', '--set', 'bands=1-4,5-9', '--set', 'trajectories=1']);
  const results = JSON.parse(readFileSync(join(evalDir, 'results', 'results.json'), 'utf8')) as { result: { models: string[] } };
  t.same([...results.result.models].sort(), ['autoencoder', 'diffusion', 'persistence', 'spatial-mean', 'student']);

  // eval --guidance rolls the diffusion emulator out a second time, guided by noisy subsampled observations of the
  // truth, scored as its own model; guidance without a diffusion emulator is refused before anything is written.
  const guidedDir = join(dir, 'guided');
  const g = ok(t, ['eval', '--ae', ae, '--cache', cache, '--data', data, '--diffusion', teacher, '--guidance', 'subsample', '--set', 'guidance.stride=4', '--run', guidedDir, '--set', 'ensemble=2', '--set', 'bands=1-4', '--set', 'trajectories=1', '--set', 'horizon=4', '--set', 'baselines=[]']);
  const guided = JSON.parse(readFileSync(join(guidedDir, 'results', 'results.json'), 'utf8')) as { result: { models: string[]; leads: number[] } };
  t.same([...guided.result.models].sort(), ['autoencoder', 'diffusion', 'diffusion+mmps'], 'the guided model beside the unguided one');
  t.same(guided.result.leads, [1, 2, 3, 4]);
  const events = readFileSync(join(guidedDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; operator?: string; solver?: string });
  t.ok(events.some((e) => e.event === 'guidance' && /subsample/.test(String(e.operator))), 'the guidance is logged with its operator');
  const logged = events.find((e) => e.event === 'guidance') as { covariance?: string; tweedieUpTo?: number } | undefined;
  t.same([logged?.covariance, logged?.tweedieUpTo], ['tweedie', 1], 'the default covariance is logged: Tweedie up to noise level 1, isotropic above');
  t.match(g.stderr + g.stdout, /diffusion\+mmps/);
  const noDiffusion = run(['eval', '--ae', ae, '--cache', cache, '--data', data, '--surrogate', surrogate, '--guidance', 'subsample', '--run', join(dir, 'guided-bad')]);
  t.equal(noDiffusion.status, 2);
  t.match(noDiffusion.stderr, /needs the diffusion emulator/);
  t.notOk(existsSync(join(dir, 'guided-bad')), 'nothing written for a refused guidance');
  const badCovariance = run(['eval', '--ae', ae, '--cache', cache, '--data', data, '--diffusion', teacher, '--guidance', 'subsample', '--set', 'guidance.covariance=full', '--run', join(dir, 'guided-bad-cov')]);
  t.equal(badCovariance.status, 2);
  t.match(badCovariance.stderr, /guidance.covariance must be "tweedie" or "isotropic", got "full"/);
  t.notOk(existsSync(join(dir, 'guided-bad-cov')), 'nothing written for an unknown covariance');

  // a teacher of the wrong kind
  const bad = run(['distill', '--teacher', surrogate, '--cache', cache, '--run', join(dir, 'bad'), ...pairs]);
  t.equal(bad.status, 2);
  t.match(bad.stderr, new RegExp(`teacher ${surrogate.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: a surrogate run, expected a diffusion emulator run`));
  t.notOk(existsSync(join(dir, 'bad')), 'nothing written for a refused command');
});
