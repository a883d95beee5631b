/**
 * The report: every plot and frame present and self-contained (no network reference), colour bars beside the
 * frames (page and PNG: the colormap from min at the bottom to max at the top, min / mid / max ticks), the
 * frame-grid PNG, the `wellspring report` command on a saved results directory, and the page opened in headless Chromium with no
 * console error (skipped with a reason when Debian's chromium is not installed).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { METRICS, readResults, reduceMetrics, summarize, syntheticRollouts, writeResults, type FrameSnapshot, type RolloutChunk } from '../../src/sinks/metrics/index.js';
import { colormaps, frameGridImage, frameGridPng, powerSpectra, renderReport, reportSink, type ColorbarPlacement, type Lut } from '../../src/sinks/report/index.js';
import { fmt } from '../../src/sinks/report/html.js';
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
const expectedBars = 2 /* models */ * fields.length * snapshotLeads.length * 2;

/** [min, max] over the finite values of truth, mean and member, and max |mean - truth|, of the snapshots. */
function extremes(snaps: readonly FrameSnapshot[]): { lo: number; hi: number; err: number } {
  let lo = Infinity;
  let hi = -Infinity;
  let err = 0;
  for (const s of snaps) {
    for (const arr of [s.truth, s.mean, s.member]) for (const v of arr) if (Number.isFinite(v)) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    for (let i = 0; i < s.truth.length; i++) err = Math.max(err, Math.abs(s.mean[i]! - s.truth[i]!));
  }
  return { lo, hi, err };
}

/** The RGB of an RGBA buffer's pixel (x, y). */
const rgbAt = (data: Uint8Array, width: number, x: number, y: number): number[] => [...data.subarray((y * width + x) * 4, (y * width + x) * 4 + 3)];
const lutAt = (lut: Lut, i: number): number[] => [...lut.subarray(i * 3, i * 3 + 3)];
const near = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);
/** Vega's viridis and (reversed) red-blue scheme ends, as published: the bars' bottom and top rows. */
const ENDS = { values: { bottom: [68, 1, 84], top: [253, 231, 37] }, errors: { bottom: [19, 75, 133], top: [140, 13, 37] } };

/** Rows of a `height`-pixel bar (top first) whose every pixel differs from LUT entry round(255 (H - 1 - r) / (H - 1)). */
function barMismatches(data: Uint8Array, width: number, x0: number, y0: number, barW: number, height: number, lut: Lut): number {
  let bad = 0;
  for (let r = 0; r < height; r++) {
    const want = lutAt(lut, Math.round((255 * (height - 1 - r)) / (height - 1)));
    for (let x = x0; x < x0 + barW; x++) if (!near(rgbAt(data, width, x, y0 + r), want, 0)) bad++;
  }
  return bad;
}

t.test('report page: every plot and frame, self-contained', async (t) => {
  for (const id of expectedPlots) {
    const start = html.indexOf(`data-plot="${id}"`);
    t.ok(start > 0, `plot ${id} present`);
    const body = html.slice(start, html.indexOf('</figure>', start));
    t.match(body, /<svg[^>]*>[\s\S]*<path[^>]*d="M/, `plot ${id} has drawn marks`);
  }
  t.equal(html.match(/<img class="frame"/g)?.length, expectedImages, `${expectedImages} frame images`);
  t.equal(html.match(/src="data:image\/png;base64,/g)?.length, expectedImages + expectedBars, 'frames and colour bars are inline PNG');
  t.notMatch(html, /(src|href)\s*=\s*["'](https?:)?\/\//i, 'no remote src/href');
  t.notMatch(html, /<link\b|@import|url\(\s*["']?https?:/i, 'no stylesheet or import from elsewhere');
  for (const model of ['diffusion', 'deterministic']) t.match(html, new RegExp(`<td>${model}</td><td>all</td>`), `band table row for ${model}`);
  t.equal(sink.frameGrids.length, 2, 'one frame grid per model');
});

t.test('report page: a value and an error colour bar beside every row of frames, with its range', async (t) => {
  const rows = [...html.matchAll(/<tr><th>([a-z]+)<br>lead (\d+)<\/th>([\s\S]*?)<\/tr>/g)];
  t.equal(rows.length, expectedImages / 4, 'one table row per snapshot');
  t.equal(html.match(/<img class="colorbar"/g)?.length, expectedBars, `${expectedBars} colour bars`);
  const { values, errors } = colormaps();
  let model = 0;
  const seen = new Map<string, number>();
  for (const row of rows) {
    const [, field, lead, cells] = row as unknown as [string, string, string, string];
    // The rows come model by model; a (field, lead) seen again starts the next model.
    const key = `${field}/${lead}`;
    model = (seen.get(key) ?? -1) + 1;
    seen.set(key, model);
    const snap = sink.saved.result.snapshots.filter((s) => s.model === ['diffusion', 'deterministic'][model] && s.field === field && s.lead === Number(lead));
    t.equal(snap.length, 1, `snapshot of ${key}`);
    const { lo, hi, err } = extremes(snap);
    const order = [...cells.matchAll(/data-(panel|scale)="([a-z]+)"/g)].map((m) => m[2]);
    if (!t.same(order, ['truth', 'mean', 'member', 'values', 'error', 'errors'], `${key}: value bar after the member, error bar after the error`)) break;
    for (const [map, a, b, lut] of [['values', lo, hi, values], ['errors', -err, err, errors]] as const) {
      const bar = new RegExp(`data-scale="${map}"><img class="colorbar" src="data:image/png;base64,([^"]+)" width="12" height="(\\d+)"[^>]*><div class="ticks">(.*?)</div>`).exec(cells);
      if (!t.ok(bar, `${key}: ${map} bar`)) continue;
      const ticks = [...bar![3]!.matchAll(/data-tick="(max|mid|min)">([^<]*)</g)].map((m) => [m[1], m[2]]);
      t.same(ticks, [['max', fmt(b)], ['mid', fmt((a + b) / 2)], ['min', fmt(a)]], `${key}: ${map} ticks max, mid, min`);
      const png = PNG.sync.read(Buffer.from(bar![1]!, 'base64'));
      t.equal(png.height, Number(bar![2]), 'bar image as tall as declared');
      t.equal(png.height, 128, 'bar as tall as the frames (24 x 16 shown 128 x 85)');
      t.equal(barMismatches(png.data, png.width, 0, 0, png.width, png.height, lut), 0, `${key}: ${map} bar rows follow the colormap, min at the bottom`);
      t.ok(near(rgbAt(png.data, png.width, 0, png.height - 1), ENDS[map].bottom, 1) && near(rgbAt(png.data, png.width, 0, 0), ENDS[map].top, 1), `${map}: scheme ends at bottom and top`);
    }
  }
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

/** Ink (text and tick) pixels of an RGBA image inside a box. */
function ink(data: Uint8Array, width: number, x0: number, y0: number, w: number, h: number): number {
  let n = 0;
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) if (near(rgbAt(data, width, x, y), [20, 20, 20], 0)) n++;
  return n;
}

/** Checks one PNG bar against the LUT and the scheme's ends, and that each tick label is inked in every glyph. */
function checkBar(t: Test, png: PNG, bar: ColorbarPlacement): void {
  const { values, errors } = colormaps();
  const lut = bar.map === 'values' ? values : errors;
  t.equal(barMismatches(png.data, png.width, bar.x, bar.y, bar.width, bar.height, lut), 0, `${bar.field} ${bar.map}: every row follows the colormap, min at the bottom`);
  const mid = Math.floor(bar.x + bar.width / 2);
  t.ok(near(rgbAt(png.data, png.width, mid, bar.y + bar.height - 1), ENDS[bar.map].bottom, 1), `${bar.field} ${bar.map}: bottom row is the scheme's start`);
  t.ok(near(rgbAt(png.data, png.width, mid, bar.y), ENDS[bar.map].top, 1), `${bar.field} ${bar.map}: top row is the scheme's end`);
  t.same(bar.ticks.map((k) => k.y), [bar.y + bar.height - 14, bar.ticks[1]!.y, bar.y], 'min at the bottom, max at the top');
  t.ok(bar.ticks[1]!.y >= bar.y + 14 && bar.ticks[1]!.y + 14 <= bar.y + bar.height - 14, 'the mid label overlaps neither end label');
  for (const k of bar.ticks) {
    const glyphs = [...k.text].map((_, i) => ink(png.data, png.width, k.x + 12 * i, k.y, 12, 14));
    t.ok(glyphs.every((n) => n > 0), `label "${k.text}" drawn, ink per glyph ${glyphs.join(' ')}`);
    t.equal(ink(png.data, png.width, k.x + 12 * k.text.length, k.y, 12, 14), 0, `nothing drawn after "${k.text}"`);
  }
  for (const row of [bar.y, bar.ticks[1]!.y + 6, bar.y + bar.height - 1]) t.equal(ink(png.data, png.width, bar.x + bar.width, row, 3, 1), 3, 'tick mark');
}

t.test('frame grid PNG: a value and an error colour bar per row over the field range of all its leads, labelled', async (t) => {
  const snaps = sink.saved.result.snapshots.filter((s) => s.model === 'diffusion');
  const bytes = frameGridPng(snaps, { title: 'bars' });
  t.ok(bytes.equals(frameGridPng(snaps, { title: 'bars' })), 'the same snapshots give the same bytes');
  const png = PNG.sync.read(bytes);
  const { bars, image } = frameGridImage(snaps, { title: 'bars' });
  t.same([png.width, png.height], [image.width, image.height]);
  t.same(bars.map((b) => `${b.field} ${b.map}`), fields.flatMap((f) => [`${f} values`, `${f} errors`]), 'two bars per row (field)');
  for (const bar of bars) {
    const { lo, hi, err } = extremes(snaps.filter((s) => s.field === bar.field));
    const [a, b] = bar.map === 'values' ? [lo, hi] : [-err, err];
    t.ok(Math.abs(bar.lo - a) <= 1e-6 * Math.abs(a) && Math.abs(bar.hi - b) <= 1e-6 * Math.abs(b), `${bar.field} ${bar.map}: range ${bar.lo} .. ${bar.hi} over every lead`);
    t.same(bar.ticks.map((k) => k.text), [fmt(a), fmt((a + b) / 2), fmt(b)], 'min, mid, max labels');
    checkBar(t, png, bar);
  }
});

t.test('frame grid PNG on a 1 x 8 grid: rows grow to fit the labels, panels share the row range', async (t) => {
  const snap = (lead: number, truth: number[], mean: number[], member: number[]): FrameSnapshot => ({
    model: 'm', field: 'u', lead, trajectory: 't', shape: [1, 8],
    truth: Float32Array.from(truth), mean: Float32Array.from(mean), member: Float32Array.from(member),
  });
  const ones = Array<number>(8).fill(1);
  const snaps = [
    snap(1, [0, 1, 1, 1, 1, 1, 1, 2], [0.5, 1, 1, 1, 1, 1, 1, 1.5], ones),
    snap(2, ones, [1, 1, 1, 1, 1, 1, 1, 1.25], ones),
  ];
  const png = PNG.sync.read(frameGridPng(snaps));
  const { bars } = frameGridImage(snaps);
  t.same(bars.map((b) => b.ticks.map((k) => k.text)), [['0.00', '1.00', '2.00'], ['-0.500', '0.00', '0.500']], 'ticks over [0, 2] and +-0.5');
  t.ok(bars.every((b) => b.height === 50), 'a 12-pixel cell row grows to three labels (50 pixels)');
  for (const bar of bars) checkBar(t, png, bar);
  // Value 1 is the middle of the row range [0, 2]: LUT entry 128 in every panel cell holding 1 (43 cells of
  // 12 x 12 pixels). With per-lead ranges, lead 2 (range 1 .. 1.25) would show its 1s at entry 0 instead.
  const middle = lutAt(colormaps().values, 128);
  let count = 0;
  for (let y = bars[0]!.y; y < bars[0]!.y + bars[0]!.height; y++) for (let x = 0; x < bars[0]!.x; x++) if (near(rgbAt(png.data, png.width, x, y), middle, 0)) count++;
  t.equal(count, 43 * 144, 'every value 1 drawn at the middle colour of the shared range');
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
  const check = JSON.parse(match![1]!.replace(/&quot;/g, '"')) as { figures: number; plots: number; images: number; decoded: number; bars: number; barsShown: number };
  t.same(
    check,
    { figures: expectedPlots.length, plots: expectedPlots.length, images: expectedImages, decoded: expectedImages, bars: expectedBars, barsShown: expectedBars },
    'all plots have marks with extent; all images decoded; every colour bar decoded beside its three ticks',
  );

  const shot = '/tmp/wellspring-report-screenshot.png';
  await openInChromium(sink.report, [`--screenshot=${shot}`, '--window-size=1300,3000', '--hide-scrollbars']);
  const png = PNG.sync.read(await readFile(shot));
  let nonWhite = 0;
  for (let i = 0; i < png.data.length; i += 4) if (png.data[i]! < 240 || png.data[i + 1]! < 240 || png.data[i + 2]! < 240) nonWhite++;
  t.ok(nonWhite / (png.width * png.height) > 0.02, `screenshot is not blank (${((100 * nonWhite) / (png.width * png.height)).toFixed(1)}% inked)`);
});
