/**
 * A small module system for networks written with plain tfjs ops.
 *
 * Parameters live in one flat, ordered map from dotted names (`encoder.levels.0.blocks.1.ffn.conv1.weight`) to
 * `tf.Variable`s, so a checkpoint is just that map (safetensors-friendly) and the names follow the PyTorch
 * reference's style. A module is built by a factory function that receives a `ParameterScope` (where to create
 * its parameters) and returns an `apply(...)` function; modules nest by handing a child scope to sub-factories.
 * Initialisation draws from a seeded generator in JavaScript, so the same config and seed give bit-identical
 * weights on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../streams/random.js';

/** Named parameters of a network, in creation order. */
export type ParameterMap = Map<string, tf.Variable>;

/** Options every `apply` accepts. */
export interface ApplyOptions {
  /** Training mode turns dropout on (default false: inference, deterministic). */
  training?: boolean;
  /**
   * Uniform [0, 1) source used to seed each dropout mask (default `Math.random`). Pass a seeded generator to make
   * training steps reproducible.
   */
  random?: () => number;
}

/** A network: its parameters plus `dispose()` which frees them. */
export interface Network {
  readonly params: ParameterMap;
  dispose(): void;
}

/** Counts the scalars in a parameter map (optionally only names starting with `prefix`). */
export function countParameters(params: ParameterMap | Network, prefix = ''): number {
  const map = params instanceof Map ? params : params.params;
  let total = 0;
  for (const [name, v] of map) if (name.startsWith(prefix)) total += v.size;
  return total;
}

/** Frees every variable of a parameter map. */
export function disposeParameters(params: ParameterMap): void {
  for (const v of params.values()) v.dispose();
  params.clear();
}

/**
 * Copies named values into a parameter map, all or nothing: every name must exist on both sides with the same
 * shape, else nothing is assigned and the error lists every missing, unexpected and mis-shaped tensor.
 */
export function assignParameters(
  params: ParameterMap,
  values: ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>,
  what = 'parameters',
): void {
  const given: ReadonlyMap<string, tf.Tensor> =
    values instanceof Map ? values : new Map(Object.entries(values as Readonly<Record<string, tf.Tensor>>));
  const problems: string[] = [];
  for (const [name, v] of params) {
    const t = given.get(name);
    if (!t) problems.push(`missing ${name} ${formatShape(v.shape)}`);
    else if (t.shape.length !== v.shape.length || t.shape.some((d: number, i: number) => d !== v.shape[i])) {
      problems.push(`${name}: expected ${formatShape(v.shape)}, received ${formatShape(t.shape)}`);
    }
  }
  for (const [name, t] of given) if (!params.has(name)) problems.push(`unexpected ${name} ${formatShape(t.shape)}`);
  if (problems.length > 0) {
    throw new Error(`${what} do not match the network (${problems.length} mismatched tensors):\n  ${problems.join('\n  ')}`);
  }
  for (const [name, v] of params) v.assign(given.get(name)!.toFloat());
}

// ---------------------------------------------------------------------------------------------------------
// Seeded random numbers for initialisation

/** How to fill a new parameter: returns its values in row-major order. */

export type Initializer = (shape: readonly number[], random: SeededRandom) => Float32Array;

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Uniform in [-bound, bound] (PyTorch's default for conv and linear layers uses bound = 1/sqrt(fan_in)). */
export function uniformInit(bound: number): Initializer {
  return (shape, random) => {
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = (2 * random.uniform() - 1) * bound;
    return out;
  };
}

/** Normal with standard deviation `std`. */
export function normalInit(std: number): Initializer {
  return (shape, random) => {
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = random.normal() * std;
    return out;
  };
}

export const zerosInit: Initializer = (shape) => new Float32Array(sizeOf(shape));

/** Scales another initializer's values. */
export function scaledInit(init: Initializer, factor: number): Initializer {
  return (shape, random) => {
    const values = init(shape, random);
    for (let i = 0; i < values.length; i++) values[i] *= factor;
    return values;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Scopes

/**
 * Where a module creates its parameters: a name prefix inside a shared map, plus the shared init generator.
 * `scope.child('ffn').child('conv1').create('weight', ...)` registers `<prefix>.ffn.conv1.weight`.
 */
export class ParameterScope {
  private constructor(
    readonly prefix: string,
    readonly params: ParameterMap,
    readonly random: SeededRandom,
  ) {}

  /** A root scope over a fresh map; `seed` fixes the initial weights. */
  static root(seed = 0, prefix = ''): ParameterScope {
    return new ParameterScope(prefix, new Map(), new SeededRandom(seed));
  }

  child(name: string | number): ParameterScope {
    return new ParameterScope(this.qualify(String(name)), this.params, this.random);
  }

  qualify(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** Creates a trainable variable `<prefix>.<name>`; a name used twice is a programming error. */
  create(name: string, shape: readonly number[], init: Initializer): tf.Variable {
    const full = this.qualify(name);
    if (this.params.has(full)) throw new Error(`parameter "${full}" created twice`);
    const values = init(shape, this.random);
    // No tfjs name: tfjs names are global to the engine, and two networks may share our names.
    const variable = tf.tidy(() => tf.variable(tf.tensor(values, [...shape], 'float32'), true));
    this.params.set(full, variable);
    return variable;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shape checks

/** Formats a shape where `null` means "any size": `[B, 64, 64, 5]`. */
export function formatShape(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/**
 * Throws unless `tensor` has the expected rank and sizes. Expected entries are a number (exact), a string
 * (a named free size, e.g. 'B') or a predicate with a label. The message names both shapes.
 */
export function checkShape(
  what: string,
  tensor: tf.Tensor,
  expected: readonly (number | string)[],
  extra?: { test: (shape: number[]) => boolean; describe: string },
): void {
  const shape = tensor.shape;
  const ok =
    shape.length === expected.length &&
    expected.every((e, i) => typeof e === 'string' || e === shape[i]) &&
    (!extra || extra.test(shape));
  if (!ok) {
    const tail = extra ? ` (${extra.describe})` : '';
    throw new Error(`${what}: expected shape ${formatShape(expected)}${tail}, received ${formatShape(shape)}`);
  }
}

/** Seed for one dropout call, drawn from the apply options' random source. */
export function dropoutSeed(options: ApplyOptions): number {
  return Math.floor((options.random ?? Math.random)() * 2147483647);
}
