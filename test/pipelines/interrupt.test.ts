// Crash safety through the real CLI in real child processes: SIGINT / SIGTERM at random moments of training
// (the step in flight finishes, then a consistent checkpoint is saved; exit 130 / 143), resumed runs equal to the
// uninterrupted run bit for bit; one process per run directory (a second is refused naming the holder, a lock of
// a killed process is taken over); a refused command leaves its run directory as it was; temporaries of killed
// runs are removed when the directory is reopened. Needs the build (`npm test` builds first).
import t from 'tap';
import { existsSync, readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);
const env = { ...process.env, WELLSPRING_BACKEND: 'wasm' };
const STEPS = 90;
const tinyAe = (steps = STEPS) => ['--set', `train.steps=${steps}`, '--set', 'train.warmup=4', '--set', 'train.batchSize=4', '--set', 'model.channels=[8,16]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=4', '--set', 'train.checkpointEvery=1000', '--set', 'train.workers=1'];

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });
}

const hash = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Starts the CLI; resolves `reached` once stderr matches `pattern`. */
function start(args: string[], pattern: RegExp) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  let onMatch: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => (onMatch = resolve));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (pattern.test(stderr)) onMatch();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, reached, exited, stderr: () => stderr };
}

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, prefix: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory()) walk(join(d, e.name), `${prefix}${e.name}/`);
      else out.push(`${prefix}${e.name} ${statSync(join(d, e.name)).size} ${hash(join(d, e.name)).slice(0, 12)}`);
    }
  };
  walk(dir, '');
  return out;
}

t.test('interrupted training resumes to the uninterrupted result, bit for bit', { skip: built ? false : 'run `npm run build` first', timeout: 400_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  t.equal(run(['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '8', '--seed', '2']).status, 0);
  const reference = join(dir, 'reference');
  const r = run(['train-ae', '--data', data, '--run', reference, ...tinyAe()]);
  t.equal(r.status, 0, r.stderr.slice(-400));
  const expected = hash(join(reference, 'autoencoder.safetensors'));

  // Signals at different moments (early, mid-run, late; SIGINT and SIGTERM), timed from the steps in log.jsonl
  // (every tenth step is logged) plus a delay, so they land anywhere in a step, an update included.
  const cases: [NodeJS.Signals, number, number][] = [['SIGTERM', 10, 0], ['SIGINT', 30, 37], ['SIGTERM', 60, 71]];
  for (const [signal, afterStep, delayMs] of cases) {
    const runDir = join(dir, `run-${signal}-${afterStep}`);
    const p = start(['train-ae', '--data', data, '--run', runDir, ...tinyAe()], /backend/);
    const logPath = join(runDir, 'log.jsonl');
    const seen = () => existsSync(logPath) && readFileSync(logPath, 'utf8').includes(`"event":"step","step":${afterStep},`);
    for (let i = 0; i < 1200 && !seen(); i++) await sleep(25);
    await sleep(delayMs);
    p.child.kill(signal);
    const code = await p.exited;
    t.equal(code, signal === 'SIGINT' ? 130 : 143, `${signal} after step ${afterStep} (+${delayMs} ms) exits ${signal === 'SIGINT' ? 130 : 143}`);
    t.match(p.stderr(), /progress saved, rerun the same command to resume/);
    t.ok(existsSync(join(runDir, 'checkpoints', 'last.safetensors')), 'checkpoint kept');
    t.notOk(existsSync(join(runDir, 'autoencoder.safetensors')), 'no final weights from an interrupted run');
    const events = readFileSync(logPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; step?: number });
    const stopped = events.find((e) => e.event === 'interrupted');
    t.ok(stopped && stopped.step! > afterStep && stopped.step! < STEPS, `stopped at step ${stopped?.step}, after the signal and before the end`);
    const resumed = run(['train-ae', '--data', data, '--run', runDir, ...tinyAe()]);
    t.equal(resumed.status, 0, resumed.stderr.slice(-400));
    t.equal(hash(join(runDir, 'autoencoder.safetensors')), expected, `${signal} at step ~${afterStep}: resumed weights equal the uninterrupted run's`);
    t.same(readdirSync(runDir).filter((f) => f.includes('.tmp-') || f === '.lock'), [], 'no lock or temporaries left');
  }
});

t.test('one process per run directory; stale locks and temporaries of killed runs', { skip: built ? false : 'run `npm run build` first', timeout: 300_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  t.equal(run(['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '8', '--seed', '2']).status, 0);
  const runDir = join(dir, 'ae');
  const first = start(['train-ae', '--data', data, '--run', runDir, ...tinyAe(400)], /steps [1-9]\d*\/400/);
  await Promise.race([first.reached, first.exited]);
  const second = run(['train-ae', '--data', data, '--run', runDir, ...tinyAe(400)]);
  t.equal(second.status, 1, 'a second process on the same run directory is refused');
  t.match(second.stderr, new RegExp(`is in use by wellspring train-ae \\(pid ${first.child.pid} on `));
  const lock = JSON.parse(readFileSync(join(runDir, '.lock'), 'utf8')) as { pid: number };
  t.equal(lock.pid, first.child.pid, 'the lock names the holder');

  // Kill the holder outright: its lock and a temporary stay behind; the next run takes over and cleans up.
  first.child.kill('SIGKILL');
  await first.exited;
  t.ok(existsSync(join(runDir, '.lock')), 'a killed process leaves its lock');
  writeFileSync(join(runDir, 'checkpoints', `last.safetensors.tmp-${first.child.pid}-abc123`), 'torn');
  const third = run(['train-ae', '--data', data, '--run', runDir, ...tinyAe(8)]);
  t.equal(third.status, 0, `the stale lock is taken over: ${third.stderr.slice(-300)}`);
  t.notOk(existsSync(join(runDir, 'checkpoints', `last.safetensors.tmp-${first.child.pid}-abc123`)), 'the temporary of the killed run is removed');
  t.match(readFileSync(join(runDir, 'log.jsonl'), 'utf8'), /"removedTemporaries":1/);
  t.notOk(existsSync(join(runDir, '.lock')), 'the lock is released at exit');

  // generate takes the dataset directory's lock too.
  const gen = start(['generate', 'euler', '--out', join(dir, 'big'), '--resolution', '32', '--trajectories', '40', '--steps', '30', '--threads', '1'], /simulate|trajector/);
  for (let i = 0; i < 100 && !existsSync(join(dir, 'big', '.lock')); i++) await sleep(50);
  const gen2 = run(['generate', 'euler', '--out', join(dir, 'big'), '--resolution', '32', '--trajectories', '40', '--steps', '30']);
  t.equal(gen2.status, 1);
  t.match(gen2.stderr, /big is in use by wellspring generate \(pid/);
  gen.child.kill('SIGTERM');
  t.equal(await gen.exited, 143, 'generate stops on SIGTERM with 143');
});

t.test('a refused command leaves its run directory as it was', { skip: built ? false : 'run `npm run build` first', timeout: 200_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  t.equal(run(['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '8', '--seed', '2']).status, 0);
  const fresh = join(dir, 'fresh');
  for (const bad of [['--set', 'train.warmup=500'], ['--set', 'train.lr=-1'], ['--data', join(dir, 'missing')]]) {
    const r = run(['train-ae', '--data', data, '--run', fresh, ...tinyAe(), ...bad]);
    t.not(r.status, 0, `refused: ${bad.join(' ')}`);
    t.notOk(existsSync(fresh), `nothing written for ${bad.join(' ')}: ${r.stderr.split('\n')[0]}`);
  }
  const ok = run(['train-ae', '--data', data, '--run', fresh, ...tinyAe(6)]);
  t.equal(ok.status, 0, 'the corrected command runs in the same directory');

  const before = listing(fresh);
  const refused = run(['train-ae', '--data', join(dir, 'missing'), '--run', fresh, ...tinyAe(6)]);
  t.not(refused.status, 0);
  t.same(listing(fresh), before, 'an existing run directory is unchanged by a refused command');
  const cacheDir = join(dir, 'cache');
  const badCache = run(['cache', '--ae', join(dir, 'no-such-ae'), '--data', data, '--run', cacheDir]);
  t.not(badCache.status, 0);
  t.match(badCache.stderr, /no-such-ae: no such directory/);
  t.notOk(existsSync(cacheDir), 'cache: nothing written');
  const evalDir = join(dir, 'eval');
  const badEval = run(['eval', '--ae', fresh, '--cache', cacheDir, '--data', data, '--surrogate', join(dir, 'nope'), '--run', evalDir]);
  t.not(badEval.status, 0);
  t.notOk(existsSync(evalDir), `eval: nothing written (${badEval.stderr.split('\n')[0]})`);
});
