import t from 'tap';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, mergeConfig, parseOverride, ConfigError } from '../../pipelines/cli/config.js';
import { parseShard, shardItems, shardTag } from '../../pipelines/cli/shard.js';
import { openRunDir, configDifferences } from '../../pipelines/cli/run-dir.js';
import { collect, pipe } from '../../src/index.js';

const defaults = { data: { root: 'data', resolution: 64 }, train: { steps: 100, lr: 1e-3, channels: [32, 64] }, seed: 0, note: null };

t.test('defaults, then the file, then --set overrides', async (t) => {
  const dir = t.testdir({ 'a.yaml': 'train:\n  steps: 500\n  channels: [16, 32, 64]\nseed: 3\n', 'b.json': '{"data": {"resolution": 32}}' });
  const c = await resolveConfig(defaults, join(dir, 'a.yaml'), ['train.lr=0.0002', 'note={"free": "form"}']);
  t.same(c, { data: { root: 'data', resolution: 64 }, train: { steps: 500, lr: 0.0002, channels: [16, 32, 64] }, seed: 3, note: { free: 'form' } });
  t.equal((await resolveConfig(defaults, join(dir, 'b.json'))).data.resolution, 32);
});

t.test('bad configurations are refused with the source and key named', async (t) => {
  const dir = t.testdir({ 'typo.yaml': 'train:\n  stesp: 5\n', 'type.yaml': 'train:\n  steps: many\n', 'bad.yaml': 'train: [1\n', 'list.yaml': '- 1\n- 2\n' });
  await t.rejects(resolveConfig(defaults, join(dir, 'typo.yaml')), /typo.yaml: unknown key "train.stesp" \(known keys of train: steps, lr, channels\)/);
  await t.rejects(resolveConfig(defaults, join(dir, 'type.yaml')), /"train.steps" must be a number \(like 100\), got "many"/);
  await t.rejects(resolveConfig(defaults, undefined, ['train.channels=[32, 64']), { name: 'ConfigError', message: /^--set train.channels=\[32, 64: the value is not valid YAML/ });
  await t.rejects(resolveConfig(defaults, join(dir, 'bad.yaml')), /bad.yaml: not valid YAML/);
  await t.rejects(resolveConfig(defaults, join(dir, 'list.yaml')), /expected a mapping at the top level, got list/);
  await t.rejects(resolveConfig(defaults, join(dir, 'missing.yaml')), /missing.yaml: cannot read it \(ENOENT\)/);
  t.throws(() => parseOverride('train.steps'), ConfigError);
  t.throws(() => mergeConfig(defaults, parseOverride('seed=x'), '--set seed=x'), /"seed" must be a number/);
});

t.test('shards: explicit, from Slurm, and the round-robin split', async (t) => {
  t.same(parseShard('2/8'), { index: 2, count: 8 });
  t.throws(() => parseShard('8/8'), /need 0 <= i < n/);
  t.throws(() => parseShard('two'), /expected i\/n/);
  t.same(parseShard(undefined, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '6', SLURM_ARRAY_TASK_MIN: '1' }), { index: 4, count: 6 });
  t.same(parseShard(undefined, {}), { index: 0, count: 1 });
  const items = Array.from({ length: 10 }, (_, i) => i);
  const parts = await Promise.all([0, 1, 2].map((i) => collect(pipe(items, shardItems<number>({ index: i, count: 3 })))));
  t.same(parts, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]);
  t.equal(shardTag({ index: 3, count: 8 }), 'shard-0003-of-0008');
});

t.test('run directories: record, log, resume, refuse another configuration', async (t) => {
  const dir = join(t.testdir(), 'run');
  const run = await openRunDir(dir, 'train-ae', defaults);
  t.notOk(run.resumed);
  await run.log('step', { step: 1, loss: 0.5 });
  const again = await openRunDir(dir, 'train-ae', { ...defaults, train: { ...defaults.train, steps: 200 } }, { mutable: ['train.steps'] });
  t.ok(again.resumed, 'same configuration (but a mutable key) resumes');
  t.match(readFileSync(join(dir, 'config.yaml'), 'utf8'), /steps: 100/, 'nothing is rewritten before the resumed job logs');
  await again.log('step', { step: 2 });
  await t.rejects(openRunDir(dir, 'train-ae', { ...defaults, seed: 9 }), /another configuration \(.*seed: 0 -> 9/);
  await t.rejects(openRunDir(dir, 'cache', defaults), /holds a "train-ae" run/);
  const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string });
  t.same(lines.map((l) => l.event), ['start', 'step', 'resume', 'step']);
  t.match(readFileSync(join(dir, 'config.yaml'), 'utf8'), /steps: 200/);
  writeFileSync(join(dir, 'run.json'), '{oops');
  await t.rejects(openRunDir(dir, 'train-ae', defaults), /unreadable run record/);
  t.same(configDifferences({ a: 1, b: [1] }, { a: 1, b: [2] }), ['b: [1] -> [2]']);
  run.release();
  again.release();
  const untouched = join(t.testdir(), 'refused');
  const refused = await openRunDir(untouched, 'train-ae', defaults);
  t.ok(existsSync(join(untouched, '.lock')), 'opening takes the lock');
  refused.release();
  t.notOk(existsSync(untouched), 'a run that never logged leaves no directory behind');
});

t.test('run directories: settings added since a run was recorded, at the values that reproduce it, resume', async (t) => {
  const dir = join(t.testdir(), 'old');
  const old = await openRunDir(dir, 'train-ae', defaults);
  await old.log('step', { step: 1 });
  old.release();
  const added = { 'train.ema': 0, 'train.soap': { frequency: 16 }, 'extra.flag': false };
  const now = { ...defaults, train: { ...defaults.train, ema: 0, soap: { frequency: 16 } }, extra: { flag: false } };
  const resumed = await openRunDir(dir, 'train-ae', now, { added });
  t.ok(resumed.resumed, 'a run recorded without the added keys resumes when they have their added values');
  resumed.release();
  await t.rejects(openRunDir(dir, 'train-ae', now), /another configuration \(.*train\.ema: null -> 0/, 'without `added` the new keys are differences');
  const other = { ...now, train: { ...now.train, ema: 0.99 } };
  await t.rejects(openRunDir(dir, 'train-ae', other, { added }), /another configuration \(train\.ema: 0 -> 0\.99\)/, 'another value of an added key is refused');
  const nested = { ...now, train: { ...now.train, soap: { frequency: 8 } } };
  await t.rejects(openRunDir(dir, 'train-ae', nested, { added }), /train\.soap\.frequency: 16 -> 8/, 'and inside an added object');
});
