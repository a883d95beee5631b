/**
 * Normalisers of Well samples and their inverses. Z-score `(x - mean) / max(std, eps)` and RMS
 * `x / max(rms, eps)`, per channel (each tensor component uses its own entry of the field's statistics), with
 * the statistics rounded to float32 first and float32 arithmetic, as the reference loader does. The `delta`
 * variants normalise one-step differences of the outputs (`y_k - y_{k-1}`, with `y_{-1}` the last input) by
 * the `*_delta` statistics. Optional per-field transforms (`log1p` for positive fields) are applied before
 * normalising and undone (`expm1`) after denormalising; the statistics must then describe the transformed
 * field (compute them with the same `transforms`).
 */
import { named, type Stage } from '../../streams/core.js';
import type { ChannelLayout } from './meta.js';
import type { AppliedNormalization, WellArray, WellSample } from './sample.js';
import { flatStat, type StatKey, type WellStats } from './stats.js';
import {
  accumulateFrames,
  expm1Channels,
  log1pChannels,
  normalizeWindowInPlace,
  scaleChannels,
  unscaleChannels,
  type ChannelCoefficients,
  type WindowNormalization,
} from './normalize-core.js';

export type NormalizationKind = 'zscore' | 'rms';

export interface NormalizeOptions {
  kind: NormalizationKind;
  /** Normalise output frames as one-step differences with the `*_delta` statistics. Default false. */
  delta?: boolean;
  /** Per core field transforms applied before normalising, e.g. `{ density: 'log1p' }`. */
  transforms?: Record<string, 'log1p'>;
  /** Lower bound on the divisor (default 1e-4, as the reference loader). */
  epsilon?: number;
}

type Coefficients = ChannelCoefficients & { shift: Float32Array; scale: Float32Array; log1p: boolean[] };

const f32 = Math.fround;

/** Per-channel coefficients from stats, cached per channel layout. */
export class WellNormalizer {
  readonly kind: NormalizationKind;
  readonly delta: boolean;
  readonly transforms: Record<string, 'log1p'>;
  private readonly epsilon: number;
  private readonly cache = new Map<string, Coefficients>();

  constructor(
    readonly stats: WellStats,
    options: NormalizeOptions,
  ) {
    if (options.kind !== 'zscore' && options.kind !== 'rms') {
      throw new Error(`normalisation kind must be "zscore" or "rms", got "${String(options.kind)}"`);
    }
    this.kind = options.kind;
    this.delta = options.delta ?? false;
    this.transforms = options.transforms ?? {};
    this.epsilon = f32(options.epsilon ?? 1e-4);
  }

  /** What was applied, as recorded on samples. */
  get applied(): AppliedNormalization {
    return { kind: this.kind, delta: this.delta, transforms: this.transforms };
  }

  /** Per-channel shift/scale (float32) for a layout; `delta` picks the `*_delta` statistics. */
  coefficients(layout: ChannelLayout, delta = false): Coefficients {
    const key = `${delta ? 'd' : 'p'}:${layout.names.join(',')}:${layout.fields.join(',')}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const get = (k: StatKey, field: string, c: number): number => {
      const entry = this.stats[k]?.[field];
      if (entry === undefined) throw new Error(`statistics have no ${k} entry for field "${field}"`);
      const flat = flatStat(entry);
      if (c >= flat.length) throw new Error(`statistics ${k}.${field} has ${flat.length} components, channel needs ${c + 1}`);
      return flat[c]!;
    };
    const n = layout.names.length;
    const shift = new Float32Array(n);
    const scale = new Float32Array(n);
    const suffix = delta ? '_delta' : '';
    for (let i = 0; i < n; i++) {
      const field = layout.fields[i]!;
      const c = layout.components[i]!;
      if (this.kind === 'zscore') {
        shift[i] = get(`mean${suffix}` as StatKey, field, c);
        scale[i] = Math.max(f32(get(`std${suffix}` as StatKey, field, c)), this.epsilon);
      } else {
        shift[i] = 0;
        scale[i] = Math.max(f32(get(`rms${suffix}` as StatKey, field, c)), this.epsilon);
      }
    }
    const coeffs = { shift, scale, log1p: layout.fields.map((f) => this.transforms[f] === 'log1p') };
    this.cache.set(key, coeffs);
    return coeffs;
  }

  /** The plan a worker follows to normalise windows of `layout` whose outputs start at frame `firstOutput`. */
  windowPlan(layout: ChannelLayout, firstOutput: number, withDelta = this.delta): WindowNormalization {
    const plain = this.coefficients(layout, false);
    return {
      plain: { shift: Array.from(plain.shift), scale: Array.from(plain.scale), log1p: plain.log1p },
      ...(withDelta
        ? (() => {
            const d = this.coefficients(layout, true);
            return { delta: { shift: Array.from(d.shift), scale: Array.from(d.scale), log1p: d.log1p } };
          })()
        : {}),
      firstOutput,
      names: layout.names,
    };
  }

  /** Applies the transforms (log1p), channel-last data, new array. */
  transform(data: Float32Array, layout: ChannelLayout): Float32Array {
    const out = data.slice();
    log1pChannels(out, this.coefficients(layout).log1p, layout.names);
    return out;
  }

  /** Undoes `transform` (expm1), in place; returns `data`. */
  untransform(data: Float32Array, layout: ChannelLayout): Float32Array {
    expm1Channels(data, this.coefficients(layout).log1p);
    return data;
  }

  /** `(x - shift) / scale` per channel (float32 arithmetic), in place; returns `data`. */
  scale(data: Float32Array, layout: ChannelLayout, delta = false): Float32Array {
    scaleChannels(data, this.coefficients(layout, delta));
    return data;
  }

  /** `y * scale + shift` per channel, in place; returns `data`. */
  unscale(data: Float32Array, layout: ChannelLayout, delta = false): Float32Array {
    unscaleChannels(data, this.coefficients(layout, delta));
    return data;
  }

  /** Physical units -> normalised: transform, then scale. New array. */
  normalize(data: Float32Array, layout: ChannelLayout): Float32Array {
    return this.scale(this.transform(data, layout), layout);
  }

  /** Normalised -> physical units. New array. */
  denormalize(data: Float32Array, layout: ChannelLayout): Float32Array {
    return this.untransform(this.unscale(data.slice(), layout), layout);
  }

  /** Normalises a sample (new sample; the input's arrays are not modified). */
  normalizeSample(sample: WellSample): WellSample {
    if (sample.normalization) throw new Error(`sample ${sample.origin.index} is already normalised`);
    const layout = sample.layout;
    const nIn = sample.inputFields.shape[0]!;
    const frame = sample.inputFields.data.length / nIn;
    // one window array: inputs then outputs, normalised as the workers do it at read time
    const window = new Float32Array(sample.inputFields.data.length + sample.outputFields.data.length);
    window.set(sample.inputFields.data, 0);
    window.set(sample.outputFields.data, sample.inputFields.data.length);
    normalizeWindowInPlace(window, frame, this.windowPlan(layout, nIn));
    const result: WellSample = {
      ...sample,
      inputFields: { data: window.subarray(0, nIn * frame), shape: sample.inputFields.shape },
      outputFields: { data: window.subarray(nIn * frame), shape: sample.outputFields.shape },
      normalization: this.applied,
    };
    if (sample.constantFields && sample.constantLayout.names.length > 0) {
      result.constantFields = {
        data: this.normalize(sample.constantFields.data, sample.constantLayout),
        shape: sample.constantFields.shape,
      };
    }
    return result;
  }

  /**
   * Turns a normalised sample (or one whose `outputFields` were replaced by a model's normalised predictions)
   * back into physical units. With delta normalisation the outputs are accumulated from the last input frame.
   */
  denormalizeSample(sample: WellSample): WellSample {
    const applied = sample.normalization;
    if (!applied) throw new Error(`sample ${sample.origin.index} is not normalised`);
    checkSame(applied, this);
    const layout = sample.layout;
    const nIn = sample.inputFields.shape[0]!;
    const frame = sample.inputFields.data.length / nIn;
    const window = new Float32Array(sample.inputFields.data.length + sample.outputFields.data.length);
    window.set(sample.inputFields.data, 0);
    window.set(sample.outputFields.data, nIn * frame);
    const split = nIn * frame;
    unscaleChannels(window, this.coefficients(layout), 0, split);
    unscaleChannels(window, this.coefficients(layout, applied.delta), split, window.length);
    if (applied.delta) accumulateFrames(window, frame, nIn);
    expm1Channels(window, this.coefficients(layout).log1p);
    const result: WellSample = {
      ...sample,
      inputFields: { data: window.subarray(0, split), shape: sample.inputFields.shape },
      outputFields: { data: window.subarray(split), shape: sample.outputFields.shape },
    };
    delete result.normalization;
    if (sample.constantFields && sample.constantLayout.names.length > 0) {
      result.constantFields = {
        data: this.denormalize(sample.constantFields.data, sample.constantLayout),
        shape: sample.constantFields.shape,
      };
    }
    return result;
  }

  /**
   * Model outputs -> physical units, outside of a sample: `predictions` `(nOut, *spatial, C)` normalised as this
   * normaliser's outputs; `lastInput` the last input frame in physical units (needed for delta only).
   */
  denormalizeOutputs(predictions: WellArray, layout: ChannelLayout, lastInput?: Float32Array): Float32Array {
    if (!this.delta) return this.denormalize(predictions.data, layout);
    if (!lastInput) throw new Error('denormalizeOutputs: delta normalisation needs the last input frame');
    const frame = lastInput.length;
    const window = new Float32Array(frame + predictions.data.length);
    window.set(this.transform(lastInput, layout), 0);
    window.set(predictions.data, frame);
    unscaleChannels(window, this.coefficients(layout, true), frame, window.length);
    accumulateFrames(window, frame, 1);
    const out = window.slice(frame);
    return this.untransform(out, layout);
  }
}

function checkSame(applied: AppliedNormalization, n: WellNormalizer): void {
  if (applied.kind !== n.kind || applied.delta !== n.delta) {
    throw new Error(
      `sample was normalised with ${applied.kind}${applied.delta ? ' (delta)' : ''}, ` +
        `this normaliser is ${n.kind}${n.delta ? ' (delta)' : ''}`,
    );
  }
}

/**
 * Stage: normalises each sample's fields (inputs, outputs, constant fields; not scalars, grids or times).
 * Yields new samples, records what was applied in `sample.normalization`; holds one sample.
 */
export function normalizeWindows(stats: WellStats, options: NormalizeOptions): Stage<WellSample, WellSample> {
  const n = new WellNormalizer(stats, options);
  return named('normalizeWindows', async function* (source) {
    for await (const s of source) yield n.normalizeSample(s);
  });
}

/** Stage: the inverse of `normalizeWindows` with the same stats and options; holds one sample. */
export function denormalizeWindows(stats: WellStats, options: NormalizeOptions): Stage<WellSample, WellSample> {
  const n = new WellNormalizer(stats, options);
  return named('denormalizeWindows', async function* (source) {
    for await (const s of source) yield n.denormalizeSample(s);
  });
}

/**
 * Stage: keeps only the given channels (channel names like `momentum_x`, or core field names, which keep all
 * their components) of inputs and outputs, in the order given. Constant fields are filtered by the same names
 * where they match. Holds one sample.
 */
export function selectChannels(names: string[]): Stage<WellSample, WellSample> {
  return named('selectChannels', async function* (source) {
    for await (const s of source) {
      const pick = (layout: ChannelLayout, required: boolean): number[] => {
        const idx: number[] = [];
        for (const name of names) {
          const byChannel = layout.names.indexOf(name);
          if (byChannel >= 0) idx.push(byChannel);
          else {
            const comps = layout.fields.flatMap((f, i) => (f === name ? [i] : []));
            if (comps.length === 0 && required) {
              throw new Error(`no channel or field "${name}" in ${s.origin.file} (channels ${layout.names.join(', ')})`);
            }
            idx.push(...comps);
          }
        }
        return idx;
      };
      const sub = (a: WellArray, C: number, idx: number[]): WellArray => {
        const n = a.data.length / C;
        const out = new Float32Array(n * idx.length);
        for (let i = 0; i < n; i++) for (let k = 0; k < idx.length; k++) out[i * idx.length + k] = a.data[i * C + idx[k]!]!;
        return { data: out, shape: [...a.shape.slice(0, -1), idx.length] };
      };
      const relayout = (l: ChannelLayout, idx: number[]): ChannelLayout => ({
        names: idx.map((i) => l.names[i]!),
        fields: idx.map((i) => l.fields[i]!),
        components: idx.map((i) => l.components[i]!),
      });
      const idx = pick(s.layout, true);
      const C = s.layout.names.length;
      const out: WellSample = {
        ...s,
        inputFields: sub(s.inputFields, C, idx),
        outputFields: sub(s.outputFields, C, idx),
        layout: relayout(s.layout, idx),
      };
      if (s.constantFields) {
        const cidx = pick(s.constantLayout, false);
        out.constantFields = sub(s.constantFields, s.constantLayout.names.length, cidx);
        out.constantLayout = relayout(s.constantLayout, cidx);
      }
      yield out;
    }
  });
}
