// End to end through the CLI on a tiny dataset: generate, train-ae (interrupted with SIGINT, then resumed),
// cache (two shards and a merge), train-surrogate, train-diffusion, eval, report. Checks the outputs' structure,
// that the autoencoder beats the mean-field baseline, and that bad input stops before any work with a clear
// message, and that the runs it wrote, loaded through the public API, give the CLI's evaluation figures exactly.
// Uses the compiled CLI and package (`npm test` builds first); skipped with a reason without them.
import t from 'tap';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CachedTrajectory } from 'wellspring-latent';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const built = existsSync(cli);

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(t: Tap.Test, args: string[]) {
  const r = run(args);
  t.equal(r.status, 0, `wellspring ${args[0]} exits 0${r.status === 0 ? '' : `: ${r.stderr.slice(-800)}`}`);
  return r;
}

function tmpFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.includes('.tmp-')) out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

t.test('every pipeline through the CLI', { skip: built ? false : 'run `npm run build` first', timeout: 600_000 }, async (t) => {
  const dir = t.testdir();
  const data = join(dir, 'data');
  const ae = join(dir, 'ae');
  const tinyAe = ['--set', 'train.warmup=10', '--set', 'train.batchSize=8', '--set', 'train.lr=0.003', '--set', 'model.channels=[16,32]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=12', '--set', 'train.checkpointEvery=20'];

  ok(t, ['generate', 'euler', '--out', data, '--resolution', '16', '--trajectories', '10', '--steps', '12', '--seed', '1']);
  t.ok(existsSync(join(data, 'stats.yaml')));

  // train-ae, interrupted by SIGINT once it has logged steps: a checkpoint is kept, no final weights appear.
  const child = spawn(process.execPath, [cli, 'train-ae', '--data', data, '--run', ae, '--set', 'train.steps=150', ...tinyAe], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 600 && !/steps [3-9]\d\/150/.test(stderr); i++) await sleep(100);
  child.kill('SIGINT');
  const code = await exited;
  t.not(code, 0, 'an interrupted run exits non-zero');
  t.match(stderr, /stopping at the next safe point/);
  t.ok(existsSync(join(ae, 'checkpoints', 'last.safetensors')), 'checkpoint kept');
  t.notOk(existsSync(join(ae, 'autoencoder.safetensors')), 'no final weights from an interrupted run');
  t.same(tmpFiles(dir), [], 'no temporary files left');
  type RunJson = { provenance: { created: string; resumes: { time: string }[]; software: { version: string; commit: string | null }; backend: { name: string } | null; configHash: string; data: { files: unknown[]; id: string } | null } };
  const before = (JSON.parse(readFileSync(join(ae, 'run.json'), 'utf8')) as RunJson).provenance;

  const resumedAe = ok(t, ['train-ae', '--data', data, '--run', ae, '--set', 'train.steps=150', ...tinyAe]);
  t.match(resumedAe.stdout, /^train-ae: validation VRMSE \d\.\d+ against \d\.\d+ for the mean-field baseline/m, 'train-ae prints its headline figure');
  // Provenance: present, and the start's record unchanged by the resumption, which is listed.
  const after = (JSON.parse(readFileSync(join(ae, 'run.json'), 'utf8')) as RunJson).provenance;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  t.equal(before.software.version, pkg.version, 'package version recorded');
  t.equal(before.backend?.name, 'wasm', 'backend recorded');
  t.match(before.configHash, /^[0-9a-f]{64}$/, 'configuration hash recorded');
  t.ok(before.data && before.data.files.length === 3, 'data identity: the three split files');
  t.same({ ...after, resumes: [] }, { ...before, resumes: [] }, 'the start\'s provenance (created included) is kept on resume');
  t.equal(after.resumes.length, 1, 'one resumption listed');
  t.ok(after.resumes[0]!.time > before.created, 'resumed after it started');
  // Every step's scalars (logEvery 0: every step of a short run), in log.jsonl and in the TensorBoard files.
  const stepEvents = readFileSync(join(ae, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; step: number; loss: number; lr: number })
    .filter((e) => e.event === 'step');
  t.same([...new Set(stepEvents.map((e) => e.step))].sort((a, b) => a - b), Array.from({ length: 150 }, (_, i) => i), 'every step logged across the interruption');
  const { readTensorBoardScalars } = await import('../../src/formats/tensorboard.js');
  const eventFiles = readdirSync(join(ae, 'tensorboard')).filter((f) => f.includes('tfevents'));
  t.equal(eventFiles.length, 2, 'one event file per session');
  const events = eventFiles.flatMap((f) => readTensorBoardScalars(join(ae, 'tensorboard', f)));
  t.same([...new Set(events.map((e) => e.step))].sort((a, b) => a - b), Array.from({ length: 150 }, (_, i) => i), 'every step in the event files');
  const last = stepEvents[stepEvents.length - 1]!;
  const lastEvent = events.find((e) => e.step === last.step)!;
  t.equal(lastEvent.scalars['train/loss'], Math.fround(last.loss), 'event file loss = log.jsonl loss (float32)');
  t.equal(lastEvent.scalars['train/lr'], Math.fround(last.lr));
  t.same(Object.keys(lastEvent.scalars).sort(), ['train/grad_norm', 'train/loss', 'train/lr', 'train/skipped_steps', 'train/step_ms']);
  const log = readFileSync(join(ae, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; step?: number });
  const restored = log.find((l) => l.event === 'restored');
  t.ok(restored && restored.step! > 0, `the rerun resumed from step ${restored?.step}`);
  const aeMetrics = JSON.parse(readFileSync(join(ae, 'metrics.json'), 'utf8')) as { vrmseMean: number; baselineVrmseMean: number };
  t.ok(aeMetrics.vrmseMean < 0.8 * aeMetrics.baselineVrmseMean, `autoencoder VRMSE ${aeMetrics.vrmseMean.toFixed(3)} beats the mean-field baseline ${aeMetrics.baselineVrmseMean.toFixed(3)}`);

  // cache in two shards, then merge
  const cache = join(dir, 'cache');
  for (const shard of ['0/2', '1/2']) ok(t, ['cache', '--ae', ae, '--data', data, '--run', cache, '--shard', shard, '--set', 'splits.train=2']);
  ok(t, ['cache', '--merge', '--run', cache]);
  for (const split of ['train', 'valid', 'test']) {
    const files = readdirSync(join(cache, 'cache', split));
    t.same(files.filter((f) => f.endsWith('.arrow')).length, 1, `one merged ${split} file`);
    t.notOk(files.some((f) => f.includes('.shard-')), 'shard files removed');
  }

  const tinyVit = ['--set', 'train.workers=1', '--set', 'train.steps=12', '--set', 'train.warmup=2', '--set', 'train.batchSize=4', '--set', 'model.width=32', '--set', 'model.depth=1', '--set', 'model.heads=2', '--set', 'train.shuffleBuffer=16'];
  ok(t, ['train-surrogate', '--cache', cache, '--run', join(dir, 'sur'), ...tinyVit]);
  ok(t, ['train-diffusion', '--cache', cache, '--run', join(dir, 'dif'), ...tinyVit, '--set', 'sampling.steps=4']);
  for (const d of ['sur', 'dif']) {
    const m = JSON.parse(readFileSync(join(dir, d, 'metrics.json'), 'utf8')) as { validLoss: number; steps: number };
    t.ok(Number.isFinite(m.validLoss) && m.steps === 12, `${d}: 12 steps, finite validation loss`);
  }

  // train.ema: the saved model is the average of the weights, the checkpoint keeps the last weights and the average.
  ok(t, ['train-surrogate', '--cache', cache, '--run', join(dir, 'sur-ema'), ...tinyVit, '--set', 'train.ema=0.8']);
  const { readSafetensors } = await import('../../src/formats/safetensors.js');
  const emaWeights = (await readSafetensors(join(dir, 'sur-ema', 'emulator.safetensors'))).tensors;
  const state = (await readSafetensors(join(dir, 'sur-ema', 'checkpoints', 'last.safetensors'))).tensors;
  let fromEma = 0;
  let fromLast = 0;
  for (const [name, w] of emaWeights) {
    const same = (other: ArrayLike<number> | undefined) => other !== undefined && Array.from(w.data as Float32Array).every((v, i) => v === other[i]);
    if (same(state.get(`ema/${name}`)?.data as Float32Array | undefined)) fromEma++;
    if (same(state.get(name)?.data as Float32Array | undefined)) fromLast++;
  }
  t.equal(fromEma, emaWeights.size, 'train.ema: every saved tensor is the checkpoint\'s average');
  t.ok(fromLast < emaWeights.size, `train.ema: the saved weights are not the last ones (${fromLast} of ${emaWeights.size} tensors equal)`);
  const badEma = run(['train-surrogate', '--cache', cache, '--run', join(dir, 'sur-bad'), ...tinyVit, '--set', 'train.ema=1']);
  t.equal(badEma.status, 2, 'a bad train.ema is a usage error (exit 2)');
  t.match(badEma.stderr, /train\.ema must lie in \[0, 1\)/);
  t.notOk(existsSync(join(dir, 'sur-bad', 'checkpoints')), 'a bad train.ema writes no checkpoint');

  const evalRun = join(dir, 'eval');
  ok(t, ['eval', '--ae', ae, '--cache', cache, '--data', data, '--surrogate', join(dir, 'sur'), '--diffusion', join(dir, 'dif'), '--run', evalRun, '--set', 'ensemble=2', '--set', 'bands=1-5,6-11', '--save-rollouts']);
  const results = join(evalRun, 'results');
  for (const f of ['results.json', 'metrics.csv', 'metrics.arrow', 'report.html']) t.ok(existsSync(join(results, f)), `eval wrote ${f}`);
  const saved = JSON.parse(readFileSync(join(results, 'results.json'), 'utf8')) as {
    result: { models: string[]; leads: number[] };
    provenance: Record<string, { software: { version: string } }>;
    curves: { run: string; step: number[] }[];
    dt: number;
  };
  t.same(Object.keys(saved.provenance).sort(), ['autoencoder', 'cache', 'diffusion', 'eval', 'surrogate'], 'results.json: provenance of the evaluation and every run it read');
  t.same(saved.curves.map((c) => `${c.run}:${c.step.length}`).sort(), ['autoencoder:150', 'diffusion:12', 'surrogate:12'], 'results.json: training curves');
  t.ok(saved.dt > 0, `results.json: time step ${saved.dt}`);
  const page = readFileSync(join(results, 'report.html'), 'utf8');
  t.match(page, /data-plot="training-curves"/, 'report: training curves');
  t.match(page, /<table class="provenance">[^]*data-provenance="diffusion"/, 'report: provenance section');
  t.same([...saved.result.models].sort(), ['autoencoder', 'diffusion', 'persistence', 'spatial-mean', 'surrogate'], 'the emulators, the reconstruction and the baselines');
  t.same(saved.result.leads, Array.from({ length: 11 }, (_, i) => i + 1), 'every lead of the 12-state trajectories after one context state');
  ok(t, ['report', results, '--out', join(dir, 'again.html')]);
  t.ok(existsSync(join(dir, 'again.html')));

  // The same evaluation through the public API: the runs the CLI wrote, loaded from the package root, and a pipe
  // of public stages with eval's options (defaults context 1, horizon 0, seed 0, convention the_well, both baselines; ensemble and
  // bands as set above) give the CLI's figures exactly, on the CLI's backend.
  process.env.WELLSPRING_BACKEND = 'wasm';
  const api = await import('wellspring-latent');
  const aeRun = await api.loadAutoencoder(ae);
  const testFiles = await api.latentCacheFiles(cache, 'test');
  const { labelNames } = await api.openLatentCache(testFiles[0]!);
  const emulators = {
    surrogate: await api.loadEmulator(join(dir, 'sur'), { autoencoder: aeRun, labelNames }),
    diffusion: await api.loadEmulator(join(dir, 'dif'), { autoencoder: aeRun, labelNames }),
  };
  const context = 1;
  const chunks = () =>
    api.pipe(
      api.readLatentCache(testFiles, { autoencoder: aeRun.id }),
      api.filter((row: CachedTrajectory) => row.origin.augmentation === 0),
      api.rolloutLatents(emulators, { context, horizon: 0, ensemble: 2, seed: 0, reconstruct: true }),
      api.decodeStates(aeRun),
      api.withTruth(api.wellSplitDir(data, 'test'), { context, baselines: [...api.BASELINES] }),
    );
  const bands = api.parseBands('1-5,6-11');
  const byApi = join(dir, 'eval-api');
  const [firstTest] = await api.resolveWellFiles(api.wellSplitDir(data, 'test'));
  const residual = api.residualForWell(await api.openWell(firstTest!));
  await api.reportSink(chunks(), { dir: byApi, title: `wellspring evaluation (test split, context ${context})`, bands, convention: 'the_well', residual });
  const resultsDoc = (d: string) => {
    // provenance, curves and dt are what the CLI's evaluation adds about its runs (checked above).
    const { created, provenance: _p, curves: _c, dt: _d, ...rest } = JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as {
      created: string;
      result: unknown;
      aggregates: unknown;
      provenance?: unknown;
      curves?: unknown;
      dt?: unknown;
    };
    t.match(created, /^\d{4}-\d\d-\d\dT/, `${d}: results.json has its creation time`);
    return rest;
  };
  const cliDoc = resultsDoc(results);
  t.strictSame(resultsDoc(byApi), cliDoc, 'results.json of the API pipe equals the CLI\'s (but for its creation time)');
  t.equal(readFileSync(join(byApi, 'metrics.csv'), 'utf8'), readFileSync(join(results, 'metrics.csv'), 'utf8'), 'metrics.csv is the same file');
  const reduced = api.summarize(await api.reduceMetrics(chunks(), { convention: 'the_well' }), { bands });
  const { snapshots, ...rows } = reduced.result;
  t.ok(snapshots.length > 0, 'reduceMetrics keeps snapshot frames');
  const { residual: cliResidual, ...cliRows } = cliDoc.result as { residual?: unknown };
  const { residualBands, ...cliAggregates } = cliDoc.aggregates as { residualBands?: unknown };
  t.ok(cliResidual && residualBands, 'eval scored the PDE residual (Euler data, residual auto)');
  t.strictSame(JSON.parse(JSON.stringify({ result: rows, aggregates: reduced.aggregates })), { result: cliRows, aggregates: cliAggregates }, 'reduceMetrics gives the same rows and aggregates');
  // --save-rollouts: every state the CLI scored, saved per model, equals the API pipe's chunks exactly.
  const rolloutsDir = join(results, 'rollouts');
  t.same(readdirSync(rolloutsDir).sort(), ['autoencoder.arrow', 'diffusion.arrow', 'persistence.arrow', 'spatial-mean.arrow', 'surrogate.arrow'], 'one rollouts file per model');
  const apiChunks = await api.collect(chunks());
  for (const model of ['autoencoder', 'surrogate', 'diffusion']) {
    const saved = await api.collect(api.readRollouts(join(rolloutsDir, `${model}.arrow`)));
    const mine = apiChunks.filter((c) => c.model === model);
    t.equal(saved.length, mine.length, `${model}: ${mine.length} states saved`);
    const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => v === b[i]);
    const bad = saved.findIndex((r, i) => {
      const c = mine[i]!;
      return r.lead !== c.lead || r.origin.frame !== c.lead || r.origin.trajectory !== c.origin!.trajectory || !same(r.truth, c.truth) || r.members.length !== c.ensemble.length || r.members.some((m, k) => !same(m, c.ensemble[k]!));
    });
    t.equal(bad, -1, `${model}: saved truth, members, leads and origins equal the API pipe's`);
  }
  aeRun.dispose();
  for (const e of Object.values(emulators)) e.dispose();
  t.same(tmpFiles(dir), [], 'no temporary files left anywhere');

  // Bad input stops before any work, naming what is wrong.
  const missingConfig = run(['train-ae', '--data', data, '--run', join(dir, 'x1'), '--config', join(dir, 'nope.yaml')]);
  t.equal(missingConfig.status, 2);
  t.match(missingConfig.stderr, /nope\.yaml: cannot read it \(ENOENT\)/);
  t.notOk(existsSync(join(dir, 'x1')), 'nothing created');
  writeFileSync(join(dir, 'bad.yaml'), 'train:\n  stpes: 3\n');
  t.match(run(['train-ae', '--data', data, '--run', join(dir, 'x2'), '--config', join(dir, 'bad.yaml')]).stderr, /unknown key "train.stpes"/);
  t.match(run(['train-ae', '--data', join(dir, 'no-such-root'), '--run', join(dir, 'x3')]).stderr, /missing split directory/);

  // A cache made by another autoencoder is refused.
  const otherAe = join(dir, 'ae2');
  ok(t, ['train-ae', '--data', data, '--run', otherAe, ...tinyAe, '--set', 'train.steps=12', '--set', 'train.seed=9', '--set', 'train.workers=1']);
  const mismatch = run(['eval', '--ae', otherAe, '--cache', cache, '--data', data, '--surrogate', join(dir, 'sur'), '--run', join(dir, 'x4')]);
  t.equal(mismatch.status, 1);
  t.match(mismatch.stderr, /trained on latents of autoencoder [0-9a-f]+, not [0-9a-f]+/);

  // eval's sampler and against-the-reconstruction settings are checked before anything is loaded or written.
  const evalArgs = ['eval', '--ae', ae, '--cache', cache, '--data', data, '--surrogate', join(dir, 'sur')];
  for (const [setting, message] of [
    ['sampling.sampler=rk4', /sampling\.sampler must be "" or one of euler, heun, ab, ddpm, got "rk4"/],
    ['sampling.steps=8', /sampling overrides the diffusion emulator's sampler, but emulators\.diffusion is not set/],
    ['againstReconstruction=[persistence]', /againstReconstruction: "persistence" is not an emulator/],
    ['againstReconstruction=[diffusion]', /againstReconstruction names diffusion, but emulators\.diffusion is not set/],
  ] as const) {
    const refused = run([...evalArgs, '--set', setting, '--run', join(dir, 'x5')]);
    t.equal(refused.status, 2, `eval --set ${setting}: a usage error`);
    t.match(refused.stderr, message);
  }
  t.notOk(existsSync(join(dir, 'x5', 'results')), 'nothing scored for a refused setting');

  // A checkpoint of another architecture is refused with the mismatched tensors listed.
  const other = join(dir, 'sur-wide');
  mkdirSync(join(other, 'checkpoints'), { recursive: true });
  copyFileSync(join(dir, 'sur', 'checkpoints', 'last.safetensors'), join(other, 'checkpoints', 'last.safetensors'));
  const wide = run(['train-surrogate', '--cache', cache, '--run', other, ...tinyVit, '--set', 'model.width=64']);
  t.equal(wide.status, 1);
  t.match(wide.stderr, /in_proj/, 'names the mismatched tensors');
});
