/**
 * The arithmetic of normalisation on channel-last float32 arrays, shared by the main-thread normaliser and the
 * read-time normalisation done inside HDF5 workers, so both give bit-identical results. Float32 arithmetic
 * (`Math.fround` after each operation) as the reference loader's torch code does.
 */

const f32 = Math.fround;

/** Per-channel coefficients: `(x - shift) / scale`, after `log1p` on the flagged channels. */
export interface ChannelCoefficients {
  shift: ArrayLike<number>;
  scale: ArrayLike<number>;
  log1p: ArrayLike<boolean>;
}

/** The read-time normalisation a worker applies to a window `(frames, *spatial, C)`. */
export interface WindowNormalization {
  plain: ChannelCoefficients;
  /** When set, frames from `firstOutput` on become one-step differences scaled by these. */
  delta?: ChannelCoefficients;
  firstOutput: number;
  /** Channel names, for error messages. */
  names: string[];
}

/** log1p on flagged channels, in place. Throws on values <= -1 (naming the channel). */
export function log1pChannels(data: Float32Array, log1p: ArrayLike<boolean>, names: string[], from = 0, to = data.length): void {
  const C = log1p.length;
  let any = false;
  for (let c = 0; c < C; c++) any ||= log1p[c]!;
  if (!any) return;
  for (let i = from; i < to; i++) {
    const c = (i - from) % C;
    if (!log1p[c]) continue;
    const v = data[i]!;
    if (v <= -1) throw new Error(`log1p transform of channel ${names[c]}: value ${v} <= -1`);
    data[i] = Math.log1p(v);
  }
}

/** expm1 on flagged channels, in place. */
export function expm1Channels(data: Float32Array, log1p: ArrayLike<boolean>, from = 0, to = data.length): void {
  const C = log1p.length;
  for (let i = from; i < to; i++) if (log1p[(i - from) % C]) data[i] = Math.expm1(data[i]!);
}

/** `(x - shift) / scale` per channel over `data[from:to]`, in place. */
export function scaleChannels(data: Float32Array, k: ChannelCoefficients, from = 0, to = data.length): void {
  const C = k.shift.length;
  if ((to - from) % C !== 0) throw new Error(`array of ${to - from} values is not a multiple of ${C} channels`);
  for (let c = 0; c < C; c++) {
    const shift = f32(k.shift[c]!);
    const scale = f32(k.scale[c]!);
    for (let i = from + c; i < to; i += C) data[i] = f32(f32(data[i]! - shift) / scale);
  }
}

/** `y * scale + shift` per channel over `data[from:to]`, in place. */
export function unscaleChannels(data: Float32Array, k: ChannelCoefficients, from = 0, to = data.length): void {
  const C = k.shift.length;
  if ((to - from) % C !== 0) throw new Error(`array of ${to - from} values is not a multiple of ${C} channels`);
  for (let c = 0; c < C; c++) {
    const shift = f32(k.shift[c]!);
    const scale = f32(k.scale[c]!);
    for (let i = from + c; i < to; i += C) data[i] = f32(f32(data[i]! * scale) + shift);
  }
}

/**
 * Frames `first..` of `data` (frames of `frame` values) become differences with their previous frame, in
 * place (computed from the last frame backwards so every difference uses original values).
 */
export function differenceFrames(data: Float32Array, frame: number, first: number): void {
  const frames = data.length / frame;
  for (let k = frames - 1; k >= Math.max(1, first); k--) {
    const base = k * frame;
    for (let i = 0; i < frame; i++) data[base + i] = f32(data[base + i]! - data[base - frame + i]!);
  }
}

/** Undoes `differenceFrames` (cumulative sums from frame `first`), in place. */
export function accumulateFrames(data: Float32Array, frame: number, first: number): void {
  const frames = data.length / frame;
  for (let k = Math.max(1, first); k < frames; k++) {
    const base = k * frame;
    for (let i = 0; i < frame; i++) data[base + i] = f32(data[base + i]! + data[base - frame + i]!);
  }
}

/** Normalises a whole window in place: transform, delta on outputs (if asked), scale. */
export function normalizeWindowInPlace(data: Float32Array, frame: number, n: WindowNormalization): void {
  log1pChannels(data, n.plain.log1p, n.names);
  const split = n.firstOutput * frame;
  if (n.delta) {
    differenceFrames(data, frame, n.firstOutput);
    scaleChannels(data, n.plain, 0, split);
    scaleChannels(data, n.delta, split, data.length);
  } else scaleChannels(data, n.plain);
}
