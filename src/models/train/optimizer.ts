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
import { AdamW, type AdamWOptions, type NamedParameters } from './optim.js';
import type { Optimizer, OptimizerName } from './types.js';

export type { Optimizer, OptimizerName } from './types.js';
import { Soap, type SoapOptions } from './soap.js';
import { PsgdKron, type PsgdKronOptions } from './psgd-kron.js';

/** The optimisers a configuration may name. */
export const OPTIMIZER_NAMES: readonly OptimizerName[] = ['adamw', 'soap', 'psgd-kron'];


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
