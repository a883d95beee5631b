// Provenance records: built by the library (software, config hash, data identity), kept by run directories
// across resumption (created never rewritten, resumptions listed), carried through results.json and shown in
// the report; training curves read from a run's log.
import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openRunDir } from '../../pipelines/cli/run-dir.js';
import {
  buildProvenance,
  canonicalJson,
  configHash,
  dataIdentity,
  readRunProvenance,
  readTrainingCurve,
  softwareIdentity,
} from '../../src/sinks/provenance.js';
import { readResults, reduceMetrics, summarize, writeResults } from '../../src/sinks/metrics/index.js';
import { syntheticRollouts } from '../../src/sinks/metrics/synthetic.js';
import { renderReport } from '../../src/sinks/report/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/fixtures/well/euler_multi_quadrants_periodicBC');

t.test('software identity: package.json version, and the commit of the checkout when there is one', async (t) => {
  const sw = softwareIdentity();
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
  t.equal(sw.name, pkg.name);
  t.equal(sw.version, pkg.version);
  t.equal(sw.node, process.version);
  let head: string | null = null;
  try {
    head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    head = null; // no git here: the record says so instead of failing
  }
  t.equal(sw.commit, head, `commit ${head ?? 'null (no git checkout)'}`);
  t.equal(sw.dirty === null, sw.commit === null, 'dirty is known exactly when the commit is');
});

t.test('config hash: canonical (key order does not matter), sensitive to any value', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
  t.equal(configHash({ a: 1, b: { c: 2 } }), configHash({ b: { c: 2 }, a: 1 }));
  t.not(configHash({ a: 1, b: { c: 2 } }), configHash({ a: 1, b: { c: 3 } }));
  t.equal(configHash({ a: 1 }), createHash('sha256').update('{"a":1}').digest('hex'), 'SHA-256 of the canonical JSON');
});

t.test('data identity: files with sizes, the stats hash, one id', async (t) => {
  const id = await dataIdentity(fixtures);
  t.same(id.files.map((f) => f.path), ['data/train/euler_multi_quadrants_periodicBC_gamma_1.4_mini.hdf5']);
  const file = join(fixtures, id.files[0]!.path);
  t.equal(id.files[0]!.bytes, readFileSync(file).length);
  t.equal(id.stats?.sha256, createHash('sha256').update(readFileSync(join(fixtures, 'stats.yaml'))).digest('hex'));
  t.match(id.id, /^[0-9a-f]{16}$/);
  t.equal((await dataIdentity(fixtures)).id, id.id, 'stable');
  t.not((await dataIdentity(fixtures, { stats: null })).id, id.id, 'the stats file is part of the identity');
  await t.rejects(dataIdentity(join(fixtures, 'nope')), /data root .*nope does not exist/);
});

t.test('run directories keep the start\'s provenance across resumptions and list them', async (t) => {
  const dir = join(t.testdir(), 'run');
  const config = { train: { steps: 10 }, seed: 0 };
  const backend = { name: 'wasm', gpu: false, provider: '@tensorflow/tfjs-backend-wasm' };
  const data = await dataIdentity(fixtures);
  const first = await openRunDir(dir, 'train-ae', config);
  await first.describe({ backend, data });
  await first.log('step', { step: 0, loss: 2, gradNorm: 1, lr: 0.1 });
  first.release();
  const start = (await readRunProvenance(dir))!;
  t.ok(start, 'run.json holds a provenance record');
  t.same(start.backend, backend);
  t.equal(start.data?.id, data.id);
  t.equal(start.configHash, configHash(config));
  t.same(start.resumes, []);

  for (let k = 1; k <= 2; k++) {
    await new Promise((r) => setTimeout(r, 5));
    const again = await openRunDir(dir, 'train-ae', { ...config, train: { steps: 10 + k } }, { mutable: ['train.steps'] });
    t.ok(again.resumed);
    await again.describe({ backend: { ...backend, name: 'cpu' }, data });
    await again.log('step', { step: k, loss: 1 / k, gradNorm: 1, lr: 0.1 });
    again.release();
    const now = (await readRunProvenance(dir))!;
    const { resumes, ...rest } = now;
    const { resumes: _none, ...startRest } = start;
    t.same(rest, startRest, `resume ${k}: created, software, backend, config hash and data of the start unchanged`);
    t.equal(resumes.length, k, `resume ${k} listed`);
    const entry = resumes[k - 1]!;
    t.ok(entry.time > now.created);
    t.equal(entry.backend?.name, 'cpu', 'the backend of the resumed session');
    t.equal(entry.configHash, configHash({ ...config, train: { steps: 10 + k } }), 'a changed configuration hash is recorded');
    t.notOk('dataId' in entry, 'the same data is not repeated');
  }
  const curve = await readTrainingCurve(dir, 'autoencoder');
  t.same(curve, { run: 'autoencoder', step: [0, 1, 2], loss: [2, 1, 0.5], gradNorm: [1, 1, 1], lr: [0.1, 0.1, 0.1] });
  writeFileSync(join(dir, 'log.jsonl'), '{"event":"step","step":0}\nnot json\n{"event":"x"}\n');
  await t.rejects(readTrainingCurve(dir, 'x'), /log\.jsonl: line 2 is not JSON/);
});

t.test('results.json and the report carry provenance, training curves and the time step', async (t) => {
  const dir = t.testdir();
  const result = await reduceMetrics(syntheticRollouts({ trajectories: 1, leads: 6, height: 16, width: 16, fields: ['u'], seed: 1, model: 'diffusion', members: 2 }));
  const provenance = { eval: buildProvenance({ config: { a: 1 } }) };
  const curves = [{ run: 'diffusion', step: [0, 1, 2], loss: [1, 0.5, Number.NaN], gradNorm: [2, 1, 1], lr: [1e-3, 1e-3, 5e-4] }];
  await writeResults(dir, summarize(result, { provenance, curves, dt: 0.015 }));
  const back = await readResults(dir);
  t.same(back.provenance, provenance);
  t.same(back.curves![0]!.loss.slice(0, 2), [1, 0.5]);
  t.ok(Number.isNaN(back.curves![0]!.loss[2]!), 'a non-finite value comes back as NaN');
  t.equal(back.dt, 0.015);
  const html = await renderReport(back);
  t.match(html, /data-plot="training-curves"/);
  t.match(html, /<tr data-provenance="eval"><td>eval<\/td><td>wellspring-latent \d+\.\d+\.\d+<\/td>/);
  t.match(html, /steps of \u0394t = 0\.015/);
  const old = join(dir, 'results.json');
  const doc = JSON.parse(readFileSync(old, 'utf8')) as Record<string, unknown>;
  writeFileSync(old, JSON.stringify({ ...doc, provenance: { eval: { schema: 'other' } } }));
  await t.rejects(readResults(dir), /results\.json: provenance\.eval: expected a provenance record/);
});
