/**
 * The report: every plot and frame present and self-contained (no network reference), the frame-grid PNG, the
 * `wellspring report` command on a saved results directory, and the page opened in headless Chromium with no
 * console error (skipped with a reason when Debian's chromium is not installed).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { METRICS, readResults, reduceMetrics, summarize, syntheticRollouts, writeResults, type RolloutChunk } from '../../src/sinks/metrics/index.js';
import { frameGridPng, powerSpectra, renderReport, reportSink } from '../../src/sinks/report/index.js';
import { command } from '../../pipelines/commands/report.js';

const fields = ['density', 'pressure'];
async function* twoModels(): AsyncGenerator<RolloutChunk> {
  const base = { trajectories: 2, leads: 12, height: 24, width: 16, fields, seed: 4 };
  yield* syntheticRollouts({ ...base, model: 'diffusion', members: 3, chunk: 5 });
  yield* syntheticRollouts({ ...base, model: 'deterministic', members: 1, drift: 0.04 });
}

const work = await mkdtemp(join(tmpdir(), 'wellspring-report-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const snapshotLeads = [1, 6, 12];
const sink = await reportSink(twoModels(), {
  dir: join(work, 'results'),
  title: 'Report test',
  bands: [{ from: 1, to: 4 }, { from: 5, to: 12 }],
  snapshotLeads,
});
const html = await readFile(sink.report, 'utf8');
const expectedPlots = ['error-vrmse', 'error-rmse', 'error-crps', 'error-w1', 'spread-skill', 'power-spectra', 'spectral-error-bands'];
const expectedImages = 2 /* models */ * fields.length * snapshotLeads.length * 4;

t.test('report page: every plot and frame, self-contained', async (t) => {
  for (const id of expectedPlots) {
    const start = html.indexOf(`data-plot="${id}"`);
    t.ok(start > 0, `plot ${id} present`);
    const body = html.slice(start, html.indexOf('</figure>', start));
    t.match(body, /<svg[^>]*>[\s\S]*<path[^>]*d="M/, `plot ${id} has drawn marks`);
  }
  t.equal(html.match(/<img class="frame"/g)?.length, expectedImages, `${expectedImages} frame images`);
  t.equal(html.match(/src="data:image\/png;base64,/g)?.length, expectedImages, 'frames are inline PNG');
  t.notMatch(html, /(src|href)\s*=\s*["'](https?:)?\/\//i, 'no remote src/href');
  t.notMatch(html, /<link\b|@import|url\(\s*["']?https?:/i, 'no stylesheet or import from elsewhere');
  for (const model of ['diffusion', 'deterministic']) t.match(html, new RegExp(`<td>${model}</td><td>all</td>`), `band table row for ${model}`);
  t.equal(sink.frameGrids.length, 2, 'one frame grid per model');
});

t.test('frame grid PNG: decodes, labelled layout of fields x (leads x 4 panels)', async (t) => {
  const png = PNG.sync.read(await readFile(sink.frameGrids[0]!));
  // Frames are 24 x 16: cells 96 x 64 pixels; 3 leads x 4 panels across, 2 fields down, plus labels.
  t.ok(png.width > 3 * 4 * 64 && png.height > 2 * 96, `grid is ${png.width}x${png.height}`);
  const colours = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4 * 7) colours.add(png.data.readUInt32BE(i));
  t.ok(colours.size > 200, `many colours (${colours.size}): frames are drawn, not blank`);
  t.throws(() => frameGridPng([]), /no snapshot frames/);
});

t.test('wellspring report re-renders from the results directory', async (t) => {
  const out = join(work, 'again', 'page.html');
  const png = join(work, 'again', 'readme.png');
  const logs: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void logs.push(args.join(' '));
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    t.equal(await command.run([join(work, 'results'), '--out', out, '--png', png, '--bands', '1-6,7-12', '--metrics', 'nrmse,linf']), 0);
    await t.rejects(command.run([]), /expected at least one results directory/);
    await t.rejects(command.run([work, '--metrics', 'nope']), /unknown metric "nope"/);
    await t.rejects(command.run([join(work, 'results'), '--frame-size', '3']), /--frame-size/);
    await t.rejects(command.run([work]), /results\.json: cannot read/);
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
  t.same(logs[0], out, 'prints the report path');
  const page = await readFile(out, 'utf8');
  t.match(page, /data-plot="error-nrmse"/, 'chosen metrics plotted');
  t.match(page, /data-plot="error-linf"/);
  t.notMatch(page, /data-plot="error-vrmse"/);
  t.match(page, /<th>lead 7-12<\/th>/, 're-aggregated with the new bands');
  t.ok(PNG.sync.read(await readFile(png)).width > 0, 'README frame grid written');

  // Two runs merged: the union of their models, saved as a new results directory.
  const other = join(work, 'other');
  await writeResults(other, summarize(await reduceMetrics(syntheticRollouts({ trajectories: 1, leads: 12, height: 24, width: 16, fields, seed: 9, model: 'flow', members: 2 }))));
  const mergedDir = join(work, 'merged');
  console.log = () => {};
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    t.equal(await command.run([join(work, 'results'), other, '--save', mergedDir, '--out', join(mergedDir, 'report.html')]), 0);
  } finally {
    console.log = log;
    process.stderr.write = write;
  }
  const merged = await readResults(mergedDir);
  t.same(merged.result.models, ['diffusion', 'deterministic', 'flow'], 'merged models');
  t.match(await readFile(join(mergedDir, 'report.html'), 'utf8'), /<td>flow<\/td><td>all<\/td>/, 'merged report shows every model');
});

t.test('frame log: one CSV line per scored frame; nothing left behind when the stream fails', async (t) => {
  const dir = join(work, 'logged');
  const stream = () => syntheticRollouts({ trajectories: 3, leads: 4, members: 2, height: 8, width: 8, fields, seed: 6, model: 'm' });
  const out = await reportSink(stream(), { dir, frameLog: true, snapshotLeads: [1] });
  const lines = (await readFile(join(dir, 'frames.csv'), 'utf8')).trim().split('\n');
  t.equal(lines[0], ['model', 'trajectory', 'field', 'lead', ...METRICS].join(','), 'header');
  t.equal(lines.length - 1, 3 * 4 * fields.length, 'one line per trajectory x lead x field');
  // The mean over the logged lines is the reducer's mean.
  const col = 4 + METRICS.indexOf('vrmse');
  const logged = lines.slice(1).filter((l) => l.startsWith('m,') && l.split(',')[2] === 'pressure' && l.split(',')[3] === '3');
  const mean = logged.reduce((s, l) => s + Number(l.split(',')[col]), 0) / logged.length;
  const row = out.saved.result.rows.find((r) => r.field === 'pressure' && r.lead === 3)!;
  t.ok(Math.abs(mean - row.metrics.vrmse.mean) < 1e-12, 'logged values average to the reduction');

  const failing = join(work, 'failing');
  async function* broken(): AsyncGenerator<RolloutChunk> {
    yield* syntheticRollouts({ trajectories: 1, leads: 2, members: 2, height: 8, width: 8, fields, seed: 6 });
    throw new Error('simulated crash');
  }
  await t.rejects(reportSink(broken(), { dir: failing, frameLog: true }), /simulated crash/);
  t.same(existsSync(failing) ? await readdir(failing) : [], [], 'no frames.csv, no temporary file');
});

t.test('nothing to plot, or a plot vega cannot draw, is an error rather than a broken page', async (t) => {
  await t.rejects(renderReport(summarize(await reduceMetrics([]))), /results hold no scored frame/);
  // A plot with no data is refused by name (vega would draw an empty frame or only log an error).
  await t.rejects(powerSpectra(summarize(await reduceMetrics([]))), /plot "power-spectra": no data to draw/);
});

t.test('the page is the same when rendered again from disk', async (t) => {
  const direct = await renderReport(summarize(await reduceMetrics(twoModels(), { snapshotLeads }), { title: 'Report test', bands: [{ from: 1, to: 4 }, { from: 5, to: 12 }] }));
  t.equal(direct.match(/<img class="frame"/g)?.length, expectedImages);
  await writeResults(join(work, 'plain'), summarize(await reduceMetrics(twoModels(), { noSnapshots: true })));
  t.equal((await readFile(join(work, 'plain', 'snapshots.json'), 'utf8')).includes('"snapshots":[]'), true, 'no snapshots when disabled');
});

// --- headless Chromium ---

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

interface BrowserRun {
  dom: string;
  console: string[];
}

/** Opens `file` in headless Chromium; returns the DOM after load and the page's console lines. */
async function openInChromium(file: string, extra: string[] = []): Promise<BrowserRun> {
  const profile = await mkdtemp(join(tmpdir(), 'wellspring-chromium-'));
  try {
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      '--enable-logging=stderr',
      '--v=0',
      '--virtual-time-budget=5000',
      ...extra,
      pathToFileURL(file).href,
    ];
    const child = spawn(chromium!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`chromium exited with ${code}: ${stderr.slice(-2000)}`);
    return { dom: stdout, console: stderr.split('\n').filter((l) => /CONSOLE|Uncaught/.test(l)) };
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

t.test('headless Chromium: no console errors, every plot drawn, every frame decoded', { skip: chromium ? false : 'chromium is not installed (Debian package "chromium")', timeout: 180_000 }, async (t) => {
  // Control: the console detector does see a page's errors.
  const bad = join(work, 'bad.html');
  await writeFile(bad, '<!DOCTYPE html><html><body><script>console.error("wellspring-control"); undefinedFunction();</script></body></html>');
  const control = await openInChromium(bad, ['--dump-dom']);
  t.ok(control.console.some((l) => l.includes('wellspring-control')), 'control page: console.error is detected');
  t.ok(control.console.some((l) => /undefinedFunction/.test(l)), 'control page: uncaught exception is detected');

  const run = await openInChromium(sink.report, ['--dump-dom']);
  t.same(run.console, [], 'no console output from the report page');
  const match = /data-report-check="([^"]*)"/.exec(run.dom);
  t.ok(match, 'the page ran its self-check');
  const check = JSON.parse(match![1]!.replace(/&quot;/g, '"')) as { figures: number; plots: number; images: number; decoded: number };
  t.same(check, { figures: expectedPlots.length, plots: expectedPlots.length, images: expectedImages, decoded: expectedImages }, 'all plots have marks with extent; all images decoded');

  const shot = '/tmp/wellspring-report-screenshot.png';
  await openInChromium(sink.report, [`--screenshot=${shot}`, '--window-size=1300,3000', '--hide-scrollbars']);
  const png = PNG.sync.read(await readFile(shot));
  let nonWhite = 0;
  for (let i = 0; i < png.data.length; i += 4) if (png.data[i]! < 240 || png.data[i + 1]! < 240 || png.data[i + 2]! < 240) nonWhite++;
  t.ok(nonWhite / (png.width * png.height) > 0.02, `screenshot is not blank (${((100 * nonWhite) / (png.width * png.height)).toFixed(1)}% inked)`);
});
