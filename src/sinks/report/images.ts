/**
 * Field images: resampling, colormaps (Vega's viridis for values, its red-blue scheme for signed errors) and PNG
 * encoding with pngjs; plus the frame grid (truth | ensemble mean | one member | error, per field and lead time)
 * written as one labelled PNG for a README, with a colour bar (min, mid and max ticks) for the values and one for
 * the errors of each row. Labels use a small built-in 5x7 bitmap font (upper case, digits).
 */
import * as vega from 'vega';
import { PNG } from 'pngjs';
import type { FrameSnapshot } from '../metrics/index.js';
import { fmt } from './numbers.js';

/** A 256-entry RGB lookup table. */
export type Lut = Uint8Array;

function lutFromScheme(name: string, reverse = false): Lut {
  const interpolate = vega.scheme(name) as ((t: number) => string) | undefined;
  if (typeof interpolate !== 'function') throw new Error(`colormap "${name}" is not a continuous Vega scheme`);
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const color = interpolate(reverse ? 1 - i / 255 : i / 255);
    const match = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(color);
    if (!match) throw new Error(`colormap "${name}" gave an unexpected colour "${color}"`);
    lut.set([Number(match[1]), Number(match[2]), Number(match[3])], i * 3);
  }
  return lut;
}

let luts: { values: Lut; errors: Lut } | undefined;

/** viridis for values; red-blue (blue negative, red positive) for errors. */
export function colormaps(): { values: Lut; errors: Lut } {
  luts ??= { values: lutFromScheme('viridis'), errors: lutFromScheme('redblue', true) };
  return luts;
}

/** An RGBA image. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Resamples a row-major (h, w) field to (outH, outW): box average when shrinking, nearest when enlarging, so a
 * small grid stays crisp and a large one is not aliased.
 */
export function resample(values: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const y0 = Math.floor((y * h) / outH);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * h) / outH));
    for (let x = 0; x < outW; x++) {
      const x0 = Math.floor((x * w) / outW);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * w) / outW));
      let sum = 0;
      for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) sum += values[yy * w + xx]!;
      out[y * outW + x] = sum / ((y1 - y0) * (x1 - x0));
    }
  }
  return out;
}

/** Maps values in [lo, hi] through a LUT into RGBA (NaN: grey). */
export function colorize(values: Float32Array, width: number, height: number, lo: number, hi: number, lut: Lut): Rgba {
  const data = new Uint8Array(width * height * 4);
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < width * height; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      data.set([128, 128, 128, 255], i * 4);
      continue;
    }
    const t = Math.min(255, Math.max(0, Math.round(((v - lo) / span) * 255)));
    data[i * 4] = lut[t * 3]!;
    data[i * 4 + 1] = lut[t * 3 + 1]!;
    data[i * 4 + 2] = lut[t * 3 + 2]!;
    data[i * 4 + 3] = 255;
  }
  return { width, height, data };
}

export function encodePng(image: Rgba): Buffer {
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return PNG.sync.write(png);
}

/** The four panels of a snapshot, with shared value range for the first three and a symmetric one for the error. */
export interface SnapshotPanels {
  truth: Rgba;
  mean: Rgba;
  member: Rgba;
  error: Rgba;
  range: [number, number];
  errorRange: number;
}

/** Display size of a (h, w) frame whose longer side becomes `size` pixels. */
export function displaySize(h: number, w: number, size: number): [number, number] {
  const scale = size / Math.max(h, w);
  return [Math.max(1, Math.round(h * scale)), Math.max(1, Math.round(w * scale))];
}

/** The colour ranges of snapshots: values [lo, hi] and the error's symmetric half-width. */
export interface ValueRanges {
  /** Over every finite value of truth, mean and member; widened to lo - 1 .. lo + 1 when flat ([-1, 1] if none). */
  range: [number, number];
  /** max |mean - truth| over the finite errors; 1 when every error is 0 (or none is finite). */
  errorRange: number;
}

/** The ranges shared by `snaps` (one snapshot: its own panels; a row of the frame grid: every lead of a field). */
export function valueRanges(snaps: readonly FrameSnapshot[]): ValueRanges {
  let lo = Infinity;
  let hi = -Infinity;
  let errMax = 0;
  for (const s of snaps) {
    for (const arr of [s.truth, s.mean, s.member]) {
      for (const v of arr) {
        if (!Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    s.mean.forEach((v, i) => {
      const e = Math.abs(v - s.truth[i]!);
      if (Number.isFinite(e) && e > errMax) errMax = e;
    });
  }
  if (!Number.isFinite(lo)) lo = hi = 0;
  if (!(hi > lo)) [lo, hi] = [lo - 1, lo + 1];
  return { range: [lo, hi], errorRange: errMax === 0 ? 1 : errMax };
}

/** The four panels of one snapshot, coloured over `ranges` (default: the snapshot's own, see valueRanges). */
export function snapshotPanels(s: FrameSnapshot, size: number, ranges: ValueRanges = valueRanges([s])): SnapshotPanels {
  const [h, w] = s.shape;
  const [outH, outW] = displaySize(h, w, size);
  const error = s.mean.map((v, i) => v - s.truth[i]!);
  const [lo, hi] = ranges.range;
  const errMax = ranges.errorRange;
  const { values, errors } = colormaps();
  const panel = (arr: Float32Array, a: number, b: number, lut: Lut) => colorize(resample(arr, h, w, outH, outW), outW, outH, a, b, lut);
  return {
    truth: panel(s.truth, lo, hi, values),
    mean: panel(s.mean, lo, hi, values),
    member: panel(s.member, lo, hi, values),
    error: panel(error, -errMax, errMax, errors),
    range: [lo, hi],
    errorRange: errMax,
  };
}

/**
 * A vertical colour bar `width` x `height`: the LUT from its first entry (bottom row, the range's min) to its last
 * (top row, the max); pixel row r from the top shows entry round(255 (height - 1 - r) / (height - 1)).
 */
export function colorbar(lut: Lut, width: number, height: number): Rgba {
  const t = new Float32Array(width * height);
  for (let r = 0; r < height; r++) t.fill(height > 1 ? (height - 1 - r) / (height - 1) : 1, r * width, (r + 1) * width);
  return colorize(t, width, height, 0, 1, lut);
}

/** The tick labels of a colour bar over [lo, hi]: min, mid, max (report number format). */
export const tickLabels = (lo: number, hi: number): [string, string, string] => [fmt(lo), fmt((lo + hi) / 2), fmt(hi)];

// --- labelled frame grid ---

const GLYPHS: Record<string, number[]> = {
  A: [14, 17, 17, 31, 17, 17, 17], B: [30, 17, 17, 30, 17, 17, 30], C: [14, 17, 16, 16, 16, 17, 14],
  D: [30, 17, 17, 17, 17, 17, 30], E: [31, 16, 16, 30, 16, 16, 31], F: [31, 16, 16, 30, 16, 16, 16],
  G: [14, 17, 16, 23, 17, 17, 15], H: [17, 17, 17, 31, 17, 17, 17], I: [14, 4, 4, 4, 4, 4, 14],
  J: [7, 2, 2, 2, 2, 18, 12], K: [17, 18, 20, 24, 20, 18, 17], L: [16, 16, 16, 16, 16, 16, 31],
  M: [17, 27, 21, 21, 17, 17, 17], N: [17, 17, 25, 21, 19, 17, 17], O: [14, 17, 17, 17, 17, 17, 14],
  P: [30, 17, 17, 30, 16, 16, 16], Q: [14, 17, 17, 17, 21, 18, 13], R: [30, 17, 17, 30, 20, 18, 17],
  S: [15, 16, 16, 14, 1, 1, 30], T: [31, 4, 4, 4, 4, 4, 4], U: [17, 17, 17, 17, 17, 17, 14],
  V: [17, 17, 17, 17, 17, 10, 4], W: [17, 17, 17, 21, 21, 21, 10], X: [17, 17, 10, 4, 10, 17, 17],
  Y: [17, 17, 17, 10, 4, 4, 4], Z: [31, 1, 2, 4, 8, 16, 31],
  '0': [14, 17, 19, 21, 25, 17, 14], '1': [4, 12, 4, 4, 4, 4, 14], '2': [14, 17, 1, 2, 4, 8, 31],
  '3': [31, 2, 4, 2, 1, 17, 14], '4': [2, 6, 10, 18, 31, 2, 2], '5': [31, 16, 30, 1, 1, 17, 14],
  '6': [6, 8, 16, 30, 17, 17, 14], '7': [31, 1, 2, 4, 8, 8, 8], '8': [14, 17, 17, 14, 17, 17, 14],
  '9': [14, 17, 17, 15, 1, 2, 12],
  '-': [0, 0, 0, 31, 0, 0, 0], _: [0, 0, 0, 0, 0, 0, 31], '.': [0, 0, 0, 0, 0, 12, 12],
  ':': [0, 12, 12, 0, 12, 12, 0], ' ': [0, 0, 0, 0, 0, 0, 0], '/': [1, 1, 2, 4, 8, 16, 16],
  '=': [0, 0, 31, 0, 31, 0, 0], '+': [0, 4, 4, 31, 4, 4, 0], '(': [2, 4, 8, 8, 8, 4, 2],
  ')': [8, 4, 2, 2, 2, 4, 8], ',': [0, 0, 0, 0, 12, 4, 8], '?': [14, 17, 1, 2, 4, 0, 4],
};

const FONT_SCALE = 2;
/** The colour of text and tick marks. */
const INK = [20, 20, 20, 255] as const;
const GLYPH_W = 6 * FONT_SCALE;
const TEXT_H = 7 * FONT_SCALE;

function drawText(img: Rgba, text: string, x: number, y: number, maxWidth = Infinity): void {
  const chars = text.toUpperCase().slice(0, Math.max(0, Math.floor(maxWidth / GLYPH_W)));
  [...chars].forEach((ch, i) => {
    const rows = GLYPHS[ch] ?? GLYPHS['?']!;
    rows.forEach((bits, r) => {
      for (let c = 0; c < 5; c++) {
        if (!(bits & (16 >> c))) continue;
        for (let dy = 0; dy < FONT_SCALE; dy++) {
          for (let dx = 0; dx < FONT_SCALE; dx++) {
            const px = x + i * GLYPH_W + c * FONT_SCALE + dx;
            const py = y + r * FONT_SCALE + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            img.data.set(INK, (py * img.width + px) * 4);
          }
        }
      }
    });
  });
}

function blit(dst: Rgba, src: Rgba, x: number, y: number): void {
  for (let row = 0; row < src.height; row++) {
    const from = row * src.width * 4;
    dst.data.set(src.data.subarray(from, from + src.width * 4), ((y + row) * dst.width + x) * 4);
  }
}

export const PANEL_NAMES = ['truth', 'mean', 'member', 'error'] as const;

/** Where frameGridImage drew one colour bar, over which range, and its tick labels. */
export interface ColorbarPlacement {
  field: string;
  map: 'values' | 'errors';
  /** The bar's pixel box in the image: its top row is `hi`, its bottom row `lo` (see colorbar). */
  x: number;
  y: number;
  width: number;
  height: number;
  lo: number;
  hi: number;
  /** min, mid and max labels, each with the top-left corner of its text (mid: centred on the bar's middle row). */
  ticks: { text: string; x: number; y: number }[];
}

/** A frame grid before PNG encoding, with the placement of its colour bars. */
export interface FrameGrid {
  image: Rgba;
  bars: ColorbarPlacement[];
}

const BAR_W = 12;
const TICK_W = 3;
/** Space between a tick mark and its label, wide enough that the mark never reads as a minus sign. */
const TICK_GAP = 7;

/**
 * A labelled grid of snapshots of one model: one row per field, and for each lead time four columns (truth,
 * ensemble mean, first member, error = mean - truth); every panel of a row shares that field's colour ranges
 * over all its lead times (valueRanges), shown at the row's end by a value bar and an error bar with min, mid and
 * max ticks. Rows are at least three labels tall, so a bar's ticks never overlap on tiny grids.
 */
export function frameGridImage(snapshots: readonly FrameSnapshot[], options: { cell?: number; title?: string } = {}): FrameGrid {
  if (snapshots.length === 0) throw new Error('frame grid: no snapshot frames to draw');
  const cell = options.cell ?? 96;
  const fields = [...new Set(snapshots.map((s) => s.field))];
  const leads = [...new Set(snapshots.map((s) => s.lead))].sort((a, b) => a - b);
  const [h0, w0] = snapshots[0]!.shape;
  const [cellH, cellW] = displaySize(h0, w0, cell);
  const gap = 4;
  const groupGap = 14;
  const rowH = Math.max(cellH, 3 * TEXT_H + 8);
  const labelW = Math.min(16, Math.max(...fields.map((f) => f.length))) * GLYPH_W + 10;
  const titleH = options.title ? TEXT_H + 10 : 0;
  const headerH = 2 * (TEXT_H + 6);
  const groupW = 4 * cellW + 3 * gap;
  // Colour ranges per row, and the width of each bar column (bar, tick marks, longest label, or its header).
  const ranges = fields.map((field) => valueRanges(snapshots.filter((s) => s.field === field)));
  const labels = ranges.map((r) => ({ values: tickLabels(r.range[0], r.range[1]), errors: tickLabels(-r.errorRange, r.errorRange) }));
  const headers = { values: 'values', errors: 'error' } as const;
  const blockW = (map: 'values' | 'errors') =>
    Math.max(BAR_W + TICK_W + TICK_GAP + Math.max(...labels.map((l) => Math.max(...l[map].map((x) => x.length)))) * GLYPH_W, headers[map].length * GLYPH_W);
  const barX = { values: labelW + leads.length * (groupW + groupGap), errors: 0 };
  barX.errors = barX.values + blockW('values') + groupGap;
  const width = barX.errors + blockW('errors') + 8;
  const height = titleH + headerH + fields.length * (rowH + gap) + 4;
  const img: Rgba = { width, height, data: new Uint8Array(width * height * 4).fill(255) };
  if (options.title) drawText(img, options.title, 6, 5, width - 12);
  leads.forEach((lead, li) => {
    const gx = labelW + li * (groupW + groupGap);
    drawText(img, `lead ${lead}`, gx, titleH + 2, groupW);
    PANEL_NAMES.forEach((name, pi) => drawText(img, name, gx + pi * (cellW + gap), titleH + TEXT_H + 8, cellW));
  });
  for (const map of ['values', 'errors'] as const) drawText(img, headers[map], barX[map], titleH + TEXT_H + 8, blockW(map));
  const { values: valueLut, errors: errorLut } = colormaps();
  const bars: ColorbarPlacement[] = [];
  fields.forEach((field, fi) => {
    const y = titleH + headerH + fi * (rowH + gap);
    drawText(img, field, 4, y + Math.floor((rowH - TEXT_H) / 2), labelW - 8);
    leads.forEach((lead, li) => {
      const s = snapshots.find((x) => x.field === field && x.lead === lead);
      if (!s) return;
      const panels = snapshotPanels(s, cell, ranges[fi]);
      const gx = labelW + li * (groupW + groupGap);
      PANEL_NAMES.forEach((name, pi) => {
        const p = panels[name];
        // Frames of another shape than the first are drawn at their own size, clipped to the cell.
        const clipped: Rgba =
          p.width <= cellW && p.height <= cellH
            ? p
            : { width: Math.min(p.width, cellW), height: Math.min(p.height, cellH), data: crop(p, cellW, cellH) };
        blit(img, clipped, gx + pi * (cellW + gap), y);
      });
    });
    const { range, errorRange } = ranges[fi]!;
    const spans = { values: range, errors: [-errorRange, errorRange] as [number, number] };
    for (const map of ['values', 'errors'] as const) {
      const x = barX[map];
      blit(img, colorbar(map === 'values' ? valueLut : errorLut, BAR_W, rowH), x, y);
      const mid = y + Math.round((rowH - 1) / 2);
      const tickRows = [y + rowH - 1, mid, y];
      for (const row of tickRows) for (let dx = 0; dx < TICK_W; dx++) img.data.set(INK, (row * width + x + BAR_W + dx) * 4);
      const textX = x + BAR_W + TICK_W + TICK_GAP;
      const tops = [y + rowH - TEXT_H, mid - Math.floor(TEXT_H / 2) + 1, y];
      const ticks = labels[fi]![map].map((text, i) => ({ text, x: textX, y: tops[i]! }));
      for (const tick of ticks) drawText(img, tick.text, tick.x, tick.y);
      bars.push({ field, map, x, y, width: BAR_W, height: rowH, lo: spans[map][0], hi: spans[map][1], ticks });
    }
  });
  return { image: img, bars };
}

/** frameGridImage encoded as PNG bytes (deterministic: the same snapshots give the same bytes). */
export function frameGridPng(snapshots: readonly FrameSnapshot[], options: { cell?: number; title?: string } = {}): Buffer {
  return encodePng(frameGridImage(snapshots, options).image);
}

function crop(p: Rgba, w: number, h: number): Uint8Array {
  const cw = Math.min(p.width, w);
  const ch = Math.min(p.height, h);
  const out = new Uint8Array(cw * ch * 4);
  for (let r = 0; r < ch; r++) out.set(p.data.subarray(r * p.width * 4, r * p.width * 4 + cw * 4), r * cw * 4);
  return out;
}
