/**
 * Observation operators: what a sensor network sees of a physical state, y = A(x) + n with n ~ N(0, v I). They
 * act on batches of physical states (N, H, W, C), channels last in The Well's layout, like the PDE residuals of
 * `residuals/`, and are tfjs ops, so guidance (src/models/diffusion/guidance.ts) differentiates through them.
 * Every operator here is linear:
 *  - `selectFields`: the named channels, (H, W, C) -> (H, W, c);
 *  - `subsample`: every `stride`-th pixel along both axes from `offset`, (H, W, C) -> (ceil((H - o) / s), ..., C);
 *  - `downscale`: means over `factor` x `factor` blocks, (H, W, C) -> (H / f, W / f, C);
 *  - `sensorMask`: the pixels where a (H, W) mask is non-zero, in row-major order, (H, W, C) -> (K, C)
 *    (`randomSensors` draws K positions from a seed).
 * `composeObservations(a, b, ...)` applies them in turn (b sees a's output). Noise: each operator adds its own
 * Gaussian noise of standard deviation `noise`; the noise of an inner operator passes through the outer ones,
 * whose rows are disjoint (each output mixes its own inputs), so the composition's noise stays independent per
 * value with variance v = v_outer + g_outer v_inner, g the squared norm of an outer row (1 for selections, 1 / f^2
 * for block means). `observe` applies an operator to plain arrays and draws the noise from a seeded `Rng`.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../streams/random.js';
import { channelIndices } from './residuals/residual.js';

/** The layout of a physical state: spatial shape (H, W) and channel names (C). */
export interface StateLayout {
  readonly shape: readonly [number, number];
  readonly channels: readonly string[];
}

export interface ObservationOperator {
  /** What it observes, e.g. `subsample(stride 16)`. */
  readonly name: string;
  /** The states it observes. */
  readonly input: StateLayout;
  /** Shape of one state's observation. */
  readonly outShape: readonly number[];
  /** Values in one state's observation (the product of `outShape`). */
  readonly size: number;
  /** The output as a state layout when it still is a (h, w, c) grid (null for sensor lists). */
  readonly output: StateLayout | null;
  /** Channel names of the observed values (the last axis of `outShape`). */
  readonly fields: readonly string[];
  /** Variance of the Gaussian noise on every observed value. */
  readonly variance: number;
  /** Squared norm of each row of the linear map (how it scales the variance of noise already in its input). */
  readonly gain: number;
  /** Noise-free observation of a batch (N, H, W, C) -> (N, ...outShape). */
  apply(states: tf.Tensor): tf.Tensor;
}

export interface NoiseOption {
  /** Standard deviation of the Gaussian observation noise, in the units of the observed fields (default 0). */
  noise?: number;
}

function checkNoise(who: string, noise: number): number {
  if (!(noise >= 0) || !Number.isFinite(noise)) throw new Error(`${who}: noise must be a finite number >= 0, got ${noise}`);
  return noise * noise;
}

function checkLayout(who: string, input: StateLayout): void {
  const [H, W] = input.shape;
  if (!Number.isInteger(H) || !Number.isInteger(W) || H < 1 || W < 1) throw new Error(`${who}: state shape must be two positive integers, got [${input.shape}]`);
  if (input.channels.length < 1) throw new Error(`${who}: the states need at least one channel`);
}

/** Checks a batch against the operator's input layout, naming the operator and the expected shape. */
function checkStates(op: Pick<ObservationOperator, 'name' | 'input'>, states: tf.Tensor): void {
  const [H, W] = op.input.shape;
  const C = op.input.channels.length;
  if (states.rank !== 4 || states.shape[1] !== H || states.shape[2] !== W || states.shape[3] !== C) {
    throw new Error(`observation ${op.name}: expected states (N, ${H}, ${W}, ${C}) with channels [${op.input.channels}], got shape [${states.shape}]`);
  }
}

function operator(
  fields: Omit<ObservationOperator, 'size' | 'apply' | 'fields'> & { map: (x: tf.Tensor4D) => tf.Tensor },
): ObservationOperator {
  const { map, ...rest } = fields;
  const op: ObservationOperator = {
    ...rest,
    size: rest.outShape.reduce((a, b) => a * b, 1),
    fields: rest.output ? rest.output.channels : rest.input.channels,
    apply: (states) =>
      tf.tidy(() => {
        checkStates(op, states);
        return map(states as tf.Tensor4D);
      }),
  };
  return op;
}

/** The named channels of each state (in the order given). */
export function selectFields(input: StateLayout, fields: readonly string[], options: NoiseOption = {}): ObservationOperator {
  const who = `selectFields(${fields.join(', ')})`;
  checkLayout(who, input);
  if (fields.length === 0) throw new Error(`${who}: name at least one field`);
  const indices = channelIndices(who, input.channels, fields);
  const [H, W] = input.shape;
  return operator({
    name: `fields(${fields.join(',')})`,
    input,
    outShape: [H, W, fields.length],
    output: { shape: [H, W], channels: [...fields] },
    variance: checkNoise(who, options.noise ?? 0),
    gain: 1,
    map: (x) => tf.gather(x, indices, 3),
  });
}

export interface SubsampleOptions extends NoiseOption {
  /** Keep every stride-th pixel along both axes. */
  stride: number;
  /** Index of the first kept pixel along both axes (default 0). */
  offset?: number;
}

/** Every `stride`-th pixel along both axes, starting at `offset` (the reference's `x[..., ::s, ::s]`). */
export function subsample(input: StateLayout, options: SubsampleOptions): ObservationOperator {
  const { stride, offset = 0 } = options;
  const who = `subsample(stride ${stride})`;
  checkLayout(who, input);
  const [H, W] = input.shape;
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`${who}: stride must be a positive integer, got ${stride}`);
  if (!Number.isInteger(offset) || offset < 0 || offset >= Math.min(H, W)) {
    throw new Error(`${who}: offset must be an integer in [0, ${Math.min(H, W) - 1}] for states of ${H}x${W}, got ${offset}`);
  }
  const h = Math.ceil((H - offset) / stride);
  const w = Math.ceil((W - offset) / stride);
  const C = input.channels.length;
  return operator({
    name: `subsample(stride ${stride}${offset ? `, offset ${offset}` : ''})`,
    input,
    outShape: [h, w, C],
    output: { shape: [h, w], channels: input.channels },
    variance: checkNoise(who, options.noise ?? 0),
    gain: 1,
    map: (x) => tf.stridedSlice(x, [0, offset, offset, 0], [x.shape[0], H, W, C], [1, stride, stride, 1]),
  });
}

export interface DownscaleOptions extends NoiseOption {
  /** Block size: each output pixel is the mean of factor x factor input pixels. */
  factor: number;
}

/** Mean pooling over `factor` x `factor` blocks (the reference's coarse observations); H and W must divide. */
export function downscale(input: StateLayout, options: DownscaleOptions): ObservationOperator {
  const { factor } = options;
  const who = `downscale(factor ${factor})`;
  checkLayout(who, input);
  const [H, W] = input.shape;
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`${who}: factor must be a positive integer, got ${factor}`);
  if (H % factor !== 0 || W % factor !== 0) throw new Error(`${who}: states of ${H}x${W} do not divide into ${factor}x${factor} blocks`);
  const C = input.channels.length;
  const [h, w] = [H / factor, W / factor];
  return operator({
    name: `downscale(factor ${factor})`,
    input,
    outShape: [h, w, C],
    output: { shape: [h, w], channels: input.channels },
    variance: checkNoise(who, options.noise ?? 0),
    gain: 1 / (factor * factor),
    // (N, h, f, w, f C): the mean over each block's rows, then over its columns.
    map: (x) => tf.mean(tf.reshape(tf.mean(tf.reshape(x, [-1, h, factor, W * C]), 2), [-1, h, w, factor, C]), 3),
  });
}

export interface SensorMaskOptions extends NoiseOption {
  /** (H, W) row-major: the pixels where it is non-zero are observed (every channel). */
  mask: ArrayLike<number>;
}

/** The pixels where `mask` is non-zero, in row-major order: (H, W, C) -> (K, C), K the number of sensors. */
export function sensorMask(input: StateLayout, options: SensorMaskOptions): ObservationOperator {
  const who = 'sensorMask';
  checkLayout(who, input);
  const [H, W] = input.shape;
  const { mask } = options;
  if (mask.length !== H * W) throw new Error(`${who}: the mask has ${mask.length} entries, states of ${H}x${W} need ${H * W}`);
  const positions: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) positions.push(i);
  if (positions.length === 0) throw new Error(`${who}: the mask selects no pixel`);
  const C = input.channels.length;
  return operator({
    name: `mask(${positions.length} sensors)`,
    input,
    outShape: [positions.length, C],
    output: null,
    variance: checkNoise(who, options.noise ?? 0),
    gain: 1,
    map: (x) => tf.gather(tf.reshape(x, [-1, H * W, C]), positions, 1),
  });
}

/** A (H, W) mask with `count` distinct sensor positions drawn from `seed`. */
export function randomSensors(shape: readonly [number, number], count: number, seed: number): Float32Array {
  const [H, W] = shape;
  if (!Number.isInteger(count) || count < 1 || count > H * W) throw new Error(`randomSensors: count must be an integer in [1, ${H * W}], got ${count}`);
  const rng = new Rng(seed);
  const order = Array.from({ length: H * W }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(order.length - i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const mask = new Float32Array(H * W);
  for (let i = 0; i < count; i++) mask[order[i]!] = 1;
  return mask;
}

/**
 * Applies operators in turn: `composeObservations(selectFields(layout, ['density']), subsample(...))`. Each
 * operator after the first must be built on its predecessor's output layout (a sensor list ends a chain).
 */
export function composeObservations(...ops: ObservationOperator[]): ObservationOperator {
  if (ops.length === 0) throw new Error('composeObservations: give at least one operator');
  for (let i = 1; i < ops.length; i++) {
    const prev = ops[i - 1]!.output;
    const next = ops[i]!.input;
    if (!prev) throw new Error(`composeObservations: ${ops[i - 1]!.name} yields a list of sensors, which ${ops[i]!.name} cannot observe`);
    if (prev.shape.join() !== next.shape.join() || prev.channels.join() !== next.channels.join()) {
      throw new Error(
        `composeObservations: ${ops[i]!.name} expects states [${next.shape}] with channels [${next.channels}], ${ops[i - 1]!.name} yields [${prev.shape}] with [${prev.channels}]`,
      );
    }
  }
  if (ops.length === 1) return ops[0]!;
  const last = ops[ops.length - 1]!;
  let variance = 0;
  let gain = 1;
  for (const op of ops) {
    variance = op.variance + op.gain * variance;
    gain *= op.gain;
  }
  return operator({
    name: ops.map((o) => o.name).join(' > '),
    input: ops[0]!.input,
    outShape: last.outShape,
    output: last.output,
    variance,
    gain,
    map: (x) => {
      let y: tf.Tensor = x;
      for (const op of ops) {
        const shape = op.input.shape;
        y = op.apply(tf.reshape(y, [-1, shape[0], shape[1], op.input.channels.length]));
      }
      return y;
    },
  });
}

/**
 * Observes `n` physical states (N, H, W, C) given as one array: A(x) plus noise of the operator's variance
 * drawn from `rng` (none when the variance is 0 or no generator is given). Returns (N, size) values.
 */
export function observe(op: ObservationOperator, states: Float32Array, n: number, rng?: Rng): Float32Array {
  const [H, W] = op.input.shape;
  const C = op.input.channels.length;
  if (states.length !== n * H * W * C) {
    throw new Error(`observation ${op.name}: ${states.length} values given, expected ${n} states of ${H}x${W}x${C} (${n * H * W * C})`);
  }
  const y = tf.tidy(() => op.apply(tf.tensor4d(states, [n, H, W, C])));
  const values = y.dataSync() as Float32Array;
  y.dispose();
  if (rng && op.variance > 0) {
    const std = Math.sqrt(op.variance);
    for (let i = 0; i < values.length; i++) values[i]! += std * rng.normal();
  }
  return values;
}
