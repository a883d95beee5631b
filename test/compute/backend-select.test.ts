// Backends for library users: importing the package entry selects the fastest backend before the first op (or
// `WELLSPRING_BACKEND`'s), keeps one the user set first, and says why faster ones were skipped. The entry checks
// spawn a fresh `node` importing the compiled entry (needs the build; skipped with a reason without it); the rest
// run here, on the source module, in this file's own process (tap runs each file in one).
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  backendSelected,
  describeBackend,
  ensureBackend,
  selectBackend,
  type BackendInfo,
} from '../../src/models/backend/select.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const entry = `${root}dist/src/index.js`;
const built = existsSync(entry);
const skip = built ? false : 'run `npm run build` first';

const saved = process.env.WELLSPRING_BACKEND;
t.teardown(() => {
  if (saved === undefined) delete process.env.WELLSPRING_BACKEND;
  else process.env.WELLSPRING_BACKEND = saved;
});

interface ChildReport {
  /** `tf.getBackend()` after a first tensor op. */
  backend: string;
  info: BackendInfo;
  described: string;
  selected: boolean;
}

/**
 * Runs `prelude` then imports the built entry in a fresh `node` (cwd the project root, so `@tensorflow/tfjs`
 * resolves to the package's own copy), makes a tensor and reports what runs it.
 */
function child(prelude: string, env: Record<string, string | undefined>): ChildReport {
  const script = `
    import * as tf from '@tensorflow/tfjs';
    ${prelude}
    const w = await import(${JSON.stringify(pathToFileURL(entry).href)});
    const sum = tf.tensor([1, 2, 3]).sum().dataSync()[0];
    if (sum !== 6) throw new Error('wrong sum ' + sum);
    const info = await w.ensureBackend();
    console.log(JSON.stringify({ backend: tf.getBackend(), info, described: w.describeBackend(info), selected: w.backendSelected() }));
  `;
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    env: childEnv,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`child exited ${run.status}: ${run.stderr}`);
  const line = run.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as ChildReport;
}

t.test('importing the package selects wasm before the first op', { skip }, async (t) => {
  const r = child('', { WELLSPRING_BACKEND: undefined });
  t.equal(r.backend, 'wasm');
  t.equal(r.info.name, 'wasm');
  t.ok(r.selected, 'backendSelected() is true after the import');
  // tfjs-node is not installed here; where it is, tensorflow would be selected, which the first check catches.
  t.match(r.described, /^backend: wasm \(@tensorflow\/tfjs-backend-wasm; native kernels: (avx512|avx2|generic|off \(.+\))\)\nskipped tensorflow: @tensorflow\/tfjs-node-gpu not available \(Cannot find package '@tensorflow\/tfjs-node-gpu'\); @tensorflow\/tfjs-node not available \(/);
  // webgpu is skipped too where its package is installed but offers no hardware adapter (lavapipe is software)
  t.same(r.info.skipped.map((s) => s.name).filter((n) => n !== 'webgpu'), ['tensorflow']);
  for (const s of r.info.skipped.filter((s) => s.name === 'webgpu')) t.match(s.reason, /adapter|not available|software/, `webgpu skipped: ${s.reason}`);
  t.notMatch(r.described, / imported from /, 'reasons leave out the importing path');
});

t.test('WELLSPRING_BACKEND=cpu is respected by the import', { skip }, async (t) => {
  const r = child('', { WELLSPRING_BACKEND: 'cpu' });
  t.equal(r.backend, 'cpu');
  t.equal(r.info.name, 'cpu');
  t.same(r.info.skipped, [], 'a forced backend skips nothing');
  t.equal(r.described, 'backend: cpu (@tensorflow/tfjs-backend-cpu)');
});

t.test('a backend the user set before importing is kept, and reported', { skip }, async (t) => {
  const r = child(`await tf.setBackend('cpu');`, { WELLSPRING_BACKEND: undefined });
  t.equal(r.backend, 'cpu');
  t.equal(r.info.name, 'cpu');
  t.match(r.info.notes.join('\n'), /kept the cpu backend set before wellspring selected one/);
  t.match(r.described, /^backend: cpu \(@tensorflow\/tfjs-backend-cpu\)\nWARNING: keeping the pure-JS cpu backend/);
});

t.test('ensureBackend selects once, then follows the running backend', async (t) => {
  delete process.env.WELLSPRING_BACKEND;
  t.notOk(backendSelected(), 'nothing runs before the first selection');
  const first = ensureBackend();
  const info = await first;
  t.equal(info.name, 'wasm');
  t.equal(tf.getBackend(), 'wasm');
  t.ok(backendSelected());
  t.equal(await ensureBackend(), info, 'a second call returns the same info');
  t.equal(await selectBackend(), info, 'selectBackend() with the default preference shares it');

  await tf.setBackend('cpu');
  const kept = await ensureBackend();
  t.equal(kept.name, 'cpu', 'a backend the user switched to is kept');
  t.equal(tf.getBackend(), 'cpu');
  t.equal(await ensureBackend(), kept);

  const wasm = await selectBackend({ prefer: 'wasm' });
  t.equal(tf.getBackend(), 'wasm', 'selectBackend still re-selects on request');
  t.equal(await ensureBackend(), wasm);
});

t.test('an in-flight selection is awaited, not repeated', async (t) => {
  const pending = selectBackend({ prefer: 'cpu' });
  const [selected, ensured] = await Promise.all([pending, ensureBackend()]);
  t.equal(ensured, selected);
  t.equal(tf.getBackend(), 'cpu');
});

t.test('concurrent calls after the user switched backend share one info', async (t) => {
  await tf.setBackend('wasm');
  const [a, b] = await Promise.all([ensureBackend(), ensureBackend()]);
  t.equal(a, b);
  t.equal(a.name, 'wasm');
  t.match(a.notes.join('\n'), /kept the wasm backend .*\nproject wasm kernels: /);
  t.equal(tf.getBackend(), 'wasm');
});

t.test('describeBackend lists each skipped backend on its own line', async (t) => {
  const info: BackendInfo = {
    name: 'cpu',
    gpu: false,
    provider: '@tensorflow/tfjs-backend-cpu',
    notes: ['tensorflow reason', 'wasm reason', 'WARNING: something'],
    skipped: [
      { name: 'tensorflow', reason: 'tensorflow reason' },
      { name: 'wasm', reason: 'wasm reason' },
    ],
  };
  t.equal(
    describeBackend(info),
    'backend: cpu (@tensorflow/tfjs-backend-cpu)\nskipped tensorflow: tensorflow reason\nskipped wasm: wasm reason\nWARNING: something',
  );
});
