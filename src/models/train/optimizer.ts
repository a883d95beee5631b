/**
 * The optimiser choice: the interface the trainer and checkpoints see (AdamW, SOAP, PSGD-Kron all implement it),
 * the names a configuration may give (`'adamw' | 'soap' | 'psgd-kron'`) and `createOptimizer`, which builds one
 * from a name and its hyper-parameters.
 *
 * An optimiser's state is a set of named tensors, `<kind>/<parameter name>` (e.g. `exp_avg/enc.0.w`,
 * `soap_q1/enc.0.w`), plus its update counter `t`: the checkpoint saves them under `optimizer/` and restores them
 * through `prepareRestore`, which validates every tensor before anything is assigned. State exists only for
 * parameters that have received a gradient, and then all of a parameter's tensors exist.
 */
import * as tf from '@tensorflow/tfjs';
import type { StoredTensor } from '../../formats/safetensors.js';
import { AdamW, type AdamWOptions, type NamedData, type NamedParameters, type NamedTensors } from './optim.js';
import { Soap, type SoapOptions } from './soap.js';
import { PsgdKron, type PsgdKronOptions } from './psgd-kron.js';

/** The optimisers a configuration may name. */
export const OPTIMIZER_NAMES = ['adamw', 'soap', 'psgd-kron'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** What the trainer needs from an optimiser. */
export interface Optimizer {
  /** Which optimiser this is (recorded in checkpoints; a checkpoint of another optimiser is refused). */
  readonly kind: OptimizerName;
  /** Base learning rate, used when `apply` is not given one. */
  readonly lr: number;
  /** Number of `apply` calls so far (drives bias corrections and preconditioner schedules). */
  t: number;
  /**
   * One update of every parameter that has a gradient (`scale` multiplies the gradients first, e.g. the clipping
   * factor). Parameters without a gradient are left untouched, state included.
   */
  apply(params: NamedParameters, grads: NamedTensors, lr?: number, scale?: number): void | Promise<void>;
  /** Hyper-parameters, as recorded in a checkpoint's metadata. */
  hyperParameters(): Record<string, unknown>;
  /** The state read out, by `<kind>/<parameter name>` (what checkpoints store). */
  stateData(): Promise<Map<string, NamedData>>;
  /** The tensor kinds and shapes a parameter of `shape` has in its state (for validation). */
  stateShapes(shape: readonly number[]): Map<string, number[]>;
  /** Replaces the whole state: `state` maps parameter names to their tensors by kind (ownership passes). */
  setState(state: Map<string, Map<string, tf.Tensor>>, t: number): void;
  /** Frees the state tensors. */
  dispose(): void;
}

/** An optimiser by name with its hyper-parameters (`name` defaults to `'adamw'`). */
export type OptimizerConfig =
  | ({ name?: 'adamw' } & AdamWOptions)
  | ({ name: 'soap' } & SoapOptions)
  | ({ name: 'psgd-kron' } & PsgdKronOptions);

/** True for an optimiser instance (as opposed to a configuration). */
export function isOptimizer(x: Optimizer | OptimizerConfig | undefined): x is Optimizer {
  return x !== undefined && typeof (x as Optimizer).apply === 'function';
}

/** Checks an optimiser name (e.g. from a configuration); the error lists the known names. */
export function checkOptimizerName(name: string, where = 'optimizer'): OptimizerName {
  if (!(OPTIMIZER_NAMES as readonly string[]).includes(name)) {
    throw new Error(`${where}: unknown optimiser "${name}" (known: ${OPTIMIZER_NAMES.join(', ')})`);
  }
  return name as OptimizerName;
}

/** Builds the optimiser a configuration names. */
export function createOptimizer(config: OptimizerConfig = {}): Optimizer {
  const name = checkOptimizerName(config.name ?? 'adamw');
  const { name: _, ...options } = config;
  if (name === 'soap') return new Soap(options as SoapOptions);
  if (name === 'psgd-kron') return new PsgdKron(options as PsgdKronOptions);
  return new AdamW(options as AdamWOptions);
}

/**
 * Validates stored optimiser state (`stored`: key `<kind>/<parameter name>` without the `optimizer/` prefix)
 * against `optimizer` and `params`, and returns the function that installs it. Every problem (unknown kind or
 * parameter, wrong shape or dtype, a parameter with only part of its tensors) is listed in one error naming `path`.
 */
export function prepareOptimizerRestore(
  path: string,
  optimizer: Optimizer,
  params: NamedParameters,
  stored: Map<string, StoredTensor>,
  t: number,
): () => void {
  const problems: string[] = [];
  const byParam = new Map<string, Map<string, StoredTensor>>();
  for (const [key, tensor] of stored) {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (slash <= 0 || !params.has(name)) {
      problems.push(`optimizer/${key}: not a state tensor of a parameter of this network`);
      continue;
    }
    if (!byParam.has(name)) byParam.set(name, new Map());
    byParam.get(name)!.set(kind, tensor);
  }
  for (const [name, kinds] of byParam) {
    const expected = optimizer.stateShapes(params.get(name)!.shape);
    for (const [kind, shape] of expected) {
      const found = kinds.get(kind);
      if (!found) problems.push(`optimizer/${kind}/${name}: expected [${shape}] (${optimizer.kind} state), not in the file`);
      else if (found.dtype !== 'F32') problems.push(`optimizer/${kind}/${name}: expected F32, found ${found.dtype}`);
      else if (found.shape.length !== shape.length || found.shape.some((d, i) => d !== shape[i])) {
        problems.push(`optimizer/${kind}/${name}: expected [${shape}], found [${found.shape}]`);
      }
    }
    for (const [kind, found] of kinds) {
      if (!expected.has(kind)) problems.push(`optimizer/${kind}/${name}: not ${optimizer.kind} state (found [${found.shape}])`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${path}: checkpoint does not match the optimiser state (${problems.length} mismatched tensors):\n  ${problems.join('\n  ')}`);
  }
  return () => {
    const state = new Map<string, Map<string, tf.Tensor>>();
    for (const [name, kinds] of byParam) {
      const tensors = new Map<string, tf.Tensor>();
      for (const [kind, s] of kinds) tensors.set(kind, tf.tensor(s.data as Float32Array, s.shape, 'float32'));
      state.set(name, tensors);
    }
    optimizer.setState(state, t);
  };
}
