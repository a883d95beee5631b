// `train.optimizer` through the compiled CLI on a tiny dataset: train-ae with SOAP and with PSGD-Kron (their
// checkpoints record the optimiser and hold its state; a rerun with more steps resumes from them), and an unknown
// optimiser name refused as a usage error (exit 2) naming the setting and the known names, before any work.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../../src/formats/safetensors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });
}

t.test('train-ae --set train.optimizer=soap | psgd-kron, and an unknown name refused', { skip: built ? false : 'run `npm run build` first', timeout: 300_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const gen = run(['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '4', '--steps', '4', '--seed', '2']);
  t.equal(gen.status, 0, `generate exits 0${gen.status === 0 ? '' : `: ${gen.stderr.slice(-400)}`}`);
  const tiny = ['--set', 'train.warmup=1', '--set', 'train.batchSize=4', '--set', 'model.channels=[8,16]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=2', '--set', 'train.workers=1'];
  for (const [name, recorded, kinds] of [
    ['soap', 'SOAP', ['exp_avg', 'exp_avg_sq', 'soap_gg0', 'soap_q0']],
    ['psgd-kron', 'PSGD-Kron', ['exp_avg', 'psgd_q0']],
  ] as const) {
    const dirRun = join(dir, name);
    const args = ['train-ae', '--data', data, '--run', dirRun, '--set', `train.optimizer=${name}`, ...tiny];
    const first = run([...args, '--set', 'train.steps=3']);
    t.equal(first.status, 0, `${name}: train-ae exits 0${first.status === 0 ? '' : `: ${first.stderr.slice(-600)}`}`);
    const checkpoint = join(dirRun, 'checkpoints', 'last.safetensors');
    const { tensors, metadata } = await readSafetensors(checkpoint);
    t.equal(JSON.parse(metadata.optimizer!).name, recorded, `${name}: the checkpoint records ${recorded}`);
    t.equal(metadata.optimizer_t, '3', `${name}: three updates`);
    const stored = new Set([...tensors.keys()].filter((k) => k.startsWith('optimizer/')).map((k) => k.split('/')[1]));
    for (const kind of kinds) t.ok(stored.has(kind), `${name}: holds optimizer/${kind}/... state`);
    const resumed = run([...args, '--set', 'train.steps=5']);
    t.equal(resumed.status, 0, `${name}: a rerun with more steps exits 0${resumed.status === 0 ? '' : `: ${resumed.stderr.slice(-600)}`}`);
    t.equal((await readSafetensors(checkpoint)).metadata.optimizer_t, '5', `${name}: resumed from step 3 to 5`);
  }
  const badRun = join(dir, 'bad');
  const bad = run(['train-ae', '--data', data, '--run', badRun, '--set', 'train.optimizer=lion', ...tiny]);
  t.equal(bad.status, 2, 'an unknown optimiser is a usage error');
  t.match(bad.stderr, /train\.optimizer: unknown optimiser "lion" \(known: adamw, soap, psgd-kron\)/);
  t.notOk(existsSync(badRun) && readdirSync(badRun).some((f) => f.endsWith('.safetensors')), 'no training happened');
});
