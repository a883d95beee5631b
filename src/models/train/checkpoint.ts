/**
 * Checkpoints as safetensors files (see safetensors.ts for the byte layout). One file holds everything needed to
 * resume training exactly:
 *
 * | tensor name                     | content                                            |
 * |---------------------------------|----------------------------------------------------|
 * | `<param name>`                  | the weights, under the network's own dotted names  |
 * | `optimizer/exp_avg/<name>`      | first moment (AdamW, SOAP, PSGD-Kron)              |
 * | `optimizer/exp_avg_sq/<name>`   | second moment (AdamW, SOAP)                        |
 * | `optimizer/<kind>/<name>`       | other optimiser state, e.g. SOAP's `soap_q0`       |
 * | `ema/<name>`                    | exponential moving average of the weights (if any) |
 *
 * `__metadata__` holds `format` ("wellspring-checkpoint"), `version` ("1"), `step`, `optimizer_t`, `skipped`,
 * `rng_state` (JSON array of 4 uint32 words) and `optimizer` (JSON of the optimiser's name and hyper-parameters,
 * e.g. `{"name":"AdamW",...}`; restoring into another optimiser is refused), plus any user entries. Tensors keep the tfjs layout (conv filters are [kh, kw, in, out], PyTorch's are [out, in, kh, kw]).
 * Loading from Python: `safetensors.torch.load_file(path)` gives a dict of these names.
 */
import { checkWebgpu } from '../backend/webgpu.js';
import * as tf from '@tensorflow/tfjs';
import { readSafetensors, writeSafetensors, type StoredTensor } from '../../formats/safetensors.js';
import type { Ema, NamedParameters } from './optim.js';
import { prepareOptimizerRestore, type Optimizer } from './optimizer.js';
import { Rng } from '../../streams/random.js';

export const CHECKPOINT_FORMAT = 'wellspring-checkpoint';

/** Everything a checkpoint saves and restores. */
export interface TrainingState {
  params: NamedParameters;
  optimizer?: Optimizer;
  ema?: Ema;
  rng?: Rng;
  /** Batches consumed (drives the schedule). */
  step: number;
  /** Steps skipped for non-finite gradients so far. */
  skipped: number;
}

async function stored(t: tf.Tensor): Promise<StoredTensor> {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`checkpoint: cannot store dtype ${t.dtype}`);
  const data = (await t.data()) as Float32Array | Int32Array;
  return { dtype: t.dtype === 'float32' ? 'F32' : 'I32', shape: t.shape.slice(), data };
}

function checkName(name: string): void {
  if (name.includes('/') || name === '__metadata__') {
    throw new Error(`checkpoint: parameter name "${name}" is reserved (no "/" allowed, not "__metadata__")`);
  }
}

/** Saves weights, optimiser state, EMA, step and RNG state to `path` atomically (`writeFileAtomic`). */
export async function saveCheckpoint(path: string, state: TrainingState, metadata: Record<string, string> = {}): Promise<void> {
  const tensors = new Map<string, StoredTensor>();
  for (const [name, p] of state.params) {
    checkName(name);
    tensors.set(name, await stored(p));
  }
  const meta: Record<string, string> = {
    ...metadata,
    format: CHECKPOINT_FORMAT,
    version: '1',
    step: String(state.step),
    skipped: String(state.skipped),
  };
  if (state.optimizer) {
    const opt = state.optimizer;
    for (const [key, d] of await opt.stateData()) tensors.set(`optimizer/${key}`, { dtype: 'F32', shape: d.shape, data: d.data });
    meta.optimizer_t = String(opt.t);
    meta.optimizer = JSON.stringify(opt.hyperParameters());
  }
  if (state.ema) {
    for (const [name, s] of await state.ema.shadowData()) tensors.set(`ema/${name}`, { dtype: 'F32', shape: s.shape, data: s.data });
    meta.ema_decay = String(state.ema.decay);
  }
  if (state.rng) meta.rng_state = JSON.stringify(state.rng.state());
  // Never replace a good checkpoint with tensors read back from a WebGPU device that failed.
  checkWebgpu();
  await writeSafetensors(path, tensors, meta);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Checks that the stored tensors under `prefix` are exactly `expected` (names and shapes); throws one error listing
 * every mismatch (missing, unexpected, wrong shape) otherwise.
 */
function matchTensors(
  path: string,
  what: string,
  stored: Map<string, StoredTensor>,
  prefix: string,
  expected: Map<string, readonly number[]>,
  allowMissing = false,
): void {
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const found = stored.get(prefix + name);
    if (!found) {
      if (!allowMissing) problems.push(`${prefix}${name}: expected [${shape}], not in the file`);
    } else if (!sameShape(found.shape, shape)) {
      problems.push(`${prefix}${name}: expected [${shape}], found [${found.shape}]`);
    } else if (found.dtype !== 'F32') {
      problems.push(`${prefix}${name}: expected F32, found ${found.dtype}`);
    }
  }
  for (const [key, t] of stored) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    if (prefix === '' && name.includes('/')) continue; // optimizer/ and ema/ entries
    if (!expected.has(name)) problems.push(`${key}: not in the ${what} (found [${t.shape}])`);
  }
  if (problems.length > 0) {
    throw new Error(`${path}: checkpoint does not match the ${what} (${problems.length} mismatched tensors):\n  ${problems.join('\n  ')}`);
  }
}

function assignAll(target: Map<string, tf.Variable>, stored: Map<string, StoredTensor>, prefix: string): void {
  for (const [name, v] of target) {
    const s = stored.get(prefix + name);
    if (s) tf.tidy(() => v.assign(tf.tensor(s.data as Float32Array, s.shape, 'float32')));
  }
}

/** The optimiser named in a checkpoint's metadata (undefined when it records none). */
function savedOptimizerName(path: string, meta: Record<string, string>): string | undefined {
  if (meta.optimizer === undefined) return undefined;
  try {
    const name = (JSON.parse(meta.optimizer) as { name?: unknown }).name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    throw new Error(`${path}: __metadata__.optimizer: not JSON (${meta.optimizer})`);
  }
}

function intMeta(path: string, meta: Record<string, string>, key: string): number {
  const value = Number(meta[key]);
  if (meta[key] === undefined || !Number.isInteger(value) || value < 0) {
    throw new Error(`${path}: __metadata__.${key}: expected a non-negative integer, got ${JSON.stringify(meta[key])}`);
  }
  return value;
}

/**
 * Restores a checkpoint written by `saveCheckpoint` into `state` (in place: parameters, optimiser moments and EMA
 * are assigned, counters and RNG replaced). Everything is validated before anything is assigned, so a mismatched
 * file (another architecture) leaves the state untouched and throws the list of mismatched tensors.
 * Returns the file's metadata.
 */
export async function restoreCheckpoint(path: string, state: TrainingState): Promise<Record<string, string>> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${path}: __metadata__.format: expected "${CHECKPOINT_FORMAT}", got ${JSON.stringify(metadata.format)}`);
  }
  const shapes = new Map([...state.params].map(([n, p]) => [n, p.shape] as const));
  matchTensors(path, 'network', tensors, '', shapes);
  const step = intMeta(path, metadata, 'step');
  const skipped = intMeta(path, metadata, 'skipped');
  let installOptimizer: (() => void) | undefined;
  if (state.optimizer) {
    const opt = state.optimizer;
    const saved = savedOptimizerName(path, metadata);
    const expected = String(opt.hyperParameters().name);
    if (saved !== undefined && saved !== expected) {
      throw new Error(`${path}: checkpoint holds ${saved} state, but this run trains with ${expected} (train.optimizer); resume with the same optimiser or start a new run`);
    }
    // State exists only for parameters that received a gradient: missing ones are fine, wrong ones are not.
    const entries = new Map<string, StoredTensor>();
    for (const [key, t] of tensors) if (key.startsWith('optimizer/')) entries.set(key.slice('optimizer/'.length), t);
    const optimizerT = metadata.optimizer_t === undefined ? 0 : intMeta(path, metadata, 'optimizer_t');
    installOptimizer = prepareOptimizerRestore(path, opt, state.params, entries, optimizerT);
  }
  if (state.ema) matchTensors(path, 'EMA', tensors, 'ema/', shapes);
  let rng: Rng | undefined;
  if (state.rng) {
    if (metadata.rng_state === undefined) throw new Error(`${path}: __metadata__.rng_state: missing`);
    let words: unknown;
    try {
      words = JSON.parse(metadata.rng_state);
    } catch {
      throw new Error(`${path}: __metadata__.rng_state: not JSON (${metadata.rng_state})`);
    }
    if (!Array.isArray(words)) throw new Error(`${path}: __metadata__.rng_state: expected an array of 4 uint32`);
    rng = Rng.fromState(words as number[]);
  }

  assignAll(state.params, tensors, '');
  installOptimizer?.();
  if (state.ema) {
    const shadow = new Map<string, Float32Array>();
    for (const name of state.params.keys()) {
      const s = tensors.get(`ema/${name}`);
      if (s) shadow.set(name, s.data as Float32Array);
    }
    state.ema.restoreShadow(shadow);
  }
  state.step = step;
  state.skipped = skipped;
  if (rng && state.rng) state.rng.setState(rng.state());
  return metadata;
}

/** Saves only the weights (no optimiser state), e.g. for a trained network to be shipped. */
export async function saveWeights(path: string, params: NamedParameters, metadata: Record<string, string> = {}): Promise<void> {
  const tensors = new Map<string, StoredTensor>();
  for (const [name, p] of params) {
    checkName(name);
    tensors.set(name, await stored(p));
  }
  await writeSafetensors(path, tensors, { ...metadata, format: 'wellspring-weights', version: '1' });
}

/**
 * Loads weights into `params` from a weights file or a checkpoint (names and shapes must match exactly; the error
 * lists every mismatch). Returns the metadata.
 */
export async function loadWeights(path: string, params: NamedParameters): Promise<Record<string, string>> {
  const { tensors, metadata } = await readSafetensors(path);
  const shapes = new Map([...params].map(([n, p]) => [n, p.shape] as const));
  matchTensors(path, 'network', tensors, '', shapes);
  assignAll(params, tensors, '');
  return metadata;
}
