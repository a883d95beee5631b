/**
 * Compute-backend selection. All model code is written against `@tensorflow/tfjs`; which engine runs it is
 * chosen once, at start-up: TensorFlow with a GPU (tfjs-node-gpu), TensorFlow on the CPU (tfjs-node), the
 * wasm backend (one core per thread, SIMD), then the pure-JS cpu backend. The tfjs-node packages are optional
 * dependencies: where they did not install, they are skipped, and the info says why (`skipped`).
 *
 * Library users need not select one: the package entry awaits `ensureBackend()` on import, which picks the
 * default order (or `WELLSPRING_BACKEND`) unless a backend already runs, e.g. one the user set with
 * `tf.setBackend`, which it keeps.
 */
import * as tf from '@tensorflow/tfjs';
import { registerMissingGradients } from './gradients.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** The tfjs backend that now runs every op. */
  name: BackendName;
  /** True when TensorFlow runs on a CUDA device. */
  gpu: boolean;
  /** Which package provided the backend (`@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-backend-wasm`, ...). */
  provider: string;
  /** Human-readable remarks: why a preferred backend was skipped, GPU warnings. */
  notes: string[];
  /** The backends tried before this one, in order, each with why it could not start. */
  skipped: SkippedBackend[];
}

export interface SkippedBackend {
  name: BackendName;
  /** Why it could not start (for tensorflow, one reason per package tried, joined by `; `). */
  reason: string;
}

export interface SelectBackendOptions {
  /**
   * Force a backend (or an ordered list to try). Defaults to the `WELLSPRING_BACKEND` environment variable,
   * else `['tensorflow', 'wasm', 'cpu']`.
   */
  prefer?: BackendName | BackendName[];
  /** Called with each remark as it arises (default: none; `describeBackend` formats the final info). */
  log?: (message: string) => void;
}

const ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];
const PROVIDERS: Record<BackendName, string> = {
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};
let current: { key: string; info: Promise<BackendInfo> } | undefined;

/** An import error's first line, without Node's ` imported from <path>` tail. */
function importError(err: unknown): string {
  return (err as Error).message.split('\n')[0].replace(/ imported from .*$/, '');
}

function checkNames(names: string[], source: string): BackendName[] {
  for (const n of names) {
    if (!ORDER.includes(n as BackendName)) {
      throw new Error(`${source}: unknown backend "${n}", expected one of ${ORDER.join(', ')} (or an ordered list of them)`);
    }
  }
  if (names.length === 0) throw new Error(`${source}: empty backend list`);
  return names as BackendName[];
}

function parsePreference(value: string | undefined): BackendName[] | undefined {
  if (!value) return undefined;
  return checkNames(
    value.split(',').map((s) => s.trim().toLowerCase()),
    `WELLSPRING_BACKEND="${value}"`,
  );
}

async function tryTensorflow(notes: string[]): Promise<{ provider: string; gpu: boolean } | undefined> {
  for (const provider of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(provider);
    } catch (err) {
      notes.push(`${provider} not available (${importError(err)})`);
      continue;
    }
    if (!(await tf.setBackend('tensorflow'))) {
      notes.push(`${provider} loaded but the tensorflow backend failed to initialise`);
      continue;
    }
    const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
    const gpu = backend.isUsingGpuDevice === true;
    if (provider.endsWith('-gpu') && !gpu) {
      notes.push(
        'WARNING: @tensorflow/tfjs-node-gpu loaded but TensorFlow found no usable GPU (it needs CUDA 11.2 and ' +
          'cuDNN 8.1); running TensorFlow on the CPU',
      );
    }
    return { provider, gpu };
  }
  return undefined;
}

async function trySelect(name: BackendName, notes: string[], skipped: SkippedBackend[]): Promise<BackendInfo | undefined> {
  if (name === 'tensorflow') {
    const found = await tryTensorflow(notes);
    return found && { name, notes, skipped, ...found };
  }
  if (name === 'wasm') {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
    } catch (err) {
      notes.push(`@tensorflow/tfjs-backend-wasm not available (${importError(err)})`);
      return undefined;
    }
    // Project kernels (missing gradients, faster replacements) register themselves on import.
    const { wasmKernelNames } = await import('./wasm-kernels.js');
    if (await tf.setBackend('wasm')) {
      notes.push(`project wasm kernels: ${wasmKernelNames.join(', ')}`);
      return { name, gpu: false, provider: PROVIDERS.wasm, notes, skipped };
    }
    notes.push('wasm backend failed to initialise');
    return undefined;
  }
  if (await tf.setBackend('cpu')) return { name, gpu: false, provider: PROVIDERS.cpu, notes, skipped };
  return undefined;
}

/**
 * Selects and initialises the compute backend; later calls asking for the same preference (option, else
 * `WELLSPRING_BACKEND`, else the default order) return the same info, a different preference re-selects.
 * Throws for an unknown backend name, and when none of the requested backends can start (listing why).
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendInfo> {
  const explicit = options.prefer
    ? checkNames(Array.isArray(options.prefer) ? options.prefer : [options.prefer], 'selectBackend({prefer})')
    : parsePreference(process.env.WELLSPRING_BACKEND);
  const order = explicit ?? ORDER;
  const key = order.join(',');
  if (current && current.key === key) return current.info;
  const info = (async () => {
    registerMissingGradients();
    const notes: string[] = [];
    const skipped: SkippedBackend[] = [];
    for (const name of order) {
      const before = notes.length;
      const info = await trySelect(name, notes, skipped);
      if (info) {
        await tf.ready();
        for (const note of info.notes) options.log?.(note);
        return info;
      }
      skipped.push({ name, reason: notes.slice(before).join('; ') || 'failed to start' });
    }
    throw new Error(`no compute backend could start (tried ${order.join(', ')}): ${notes.join('; ')}`);
  })();
  const entry = { key, info };
  current = entry;
  info.catch(() => {
    if (current === entry) current = undefined;
  });
  return info;
}

/** The backend tfjs runs now, when one has started (set and initialised), else undefined. */
function runningBackend(): string | undefined {
  const engine = tf.engine();
  const name = engine.backendName;
  return name != null && engine.registry[name] != null ? name : undefined;
}

/** Describes a backend that was running before wellspring selected one, and keeps it. */
async function keepRunning(name: string): Promise<BackendInfo> {
  registerMissingGradients();
  const notes = [`kept the ${name} backend set before wellspring selected one`];
  if (name === 'wasm') {
    const { wasmKernelNames } = await import('./wasm-kernels.js');
    // Re-setting the running backend re-runs the kernels' setup functions, for those registered just now.
    await tf.setBackend('wasm');
    notes.push(`project wasm kernels: ${wasmKernelNames.join(', ')}`);
  }
  if (name === 'cpu') {
    notes.push('WARNING: keeping the pure-JS cpu backend set before wellspring selected one; wasm is 25-30x faster');
  }
  if (!ORDER.includes(name as BackendName)) notes.push(`WARNING: ${name} is not a backend wellspring was tested on`);
  const gpu = name === 'tensorflow' && (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  const provider = gpu ? '@tensorflow/tfjs-node-gpu' : (PROVIDERS[name as BackendName] ?? `tfjs backend "${name}"`);
  // A backend outside `BackendName` is reported under its own name: the user chose it, and it keeps running.
  return { name: name as BackendName, gpu, provider, notes, skipped: [] };
}

/**
 * True when a backend already runs: one selected by `selectBackend`/`ensureBackend`, one the user set with
 * `tf.setBackend`, or the default tfjs started on a first op. While false, await `ensureBackend()` before the
 * first tensor op (importing the package entry does so).
 */
export function backendSelected(): boolean {
  return runningBackend() !== undefined;
}

/**
 * Makes sure a backend runs, selecting one only where none was chosen: returns the info of a finished or
 * in-flight `selectBackend` when its backend still runs; else keeps a backend the user set (`tf.setBackend`, or a
 * first op before any selection) and reports it; else selects the default order once (respecting
 * `WELLSPRING_BACKEND`, like `selectBackend()`). Repeated calls return the same info. Rejects for an unknown
 * `WELLSPRING_BACKEND` name.
 */
export async function ensureBackend(): Promise<BackendInfo> {
  const seen = current;
  if (seen) {
    const info = await seen.info.catch(() => undefined);
    // Another selection began (or this one failed) meanwhile: start over, so that concurrent calls share one.
    if (current !== seen) return ensureBackend();
    if (info && runningBackend() === info.name) return info;
    current = undefined;
  }
  // A `tf.setBackend` call still initialising (wasm is asynchronous) counts as the user's choice once it ends.
  const pending = (tf.engine() as unknown as { pendingBackendInit?: Promise<unknown> | null }).pendingBackendInit;
  if (pending) {
    await pending;
    return ensureBackend();
  }
  // From here on synchronous up to `current` being set, so concurrent calls cannot select twice.
  const running = runningBackend();
  if (running === undefined) return selectBackend();
  const info = keepRunning(running);
  const entry = { key: `running:${running}`, info };
  current = entry;
  info.catch(() => {
    if (current === entry) current = undefined;
  });
  return info;
}

/**
 * A few lines for logs: `backend: wasm (@tensorflow/tfjs-backend-wasm)`, then one `skipped <name>: <reason>` line
 * for each faster backend that could not start, then warnings.
 */
export function describeBackend(info: BackendInfo): string {
  const where = info.name === 'tensorflow' ? (info.gpu ? ' on GPU' : ' on CPU') : '';
  const skipped = info.skipped.map((s) => `skipped ${s.name}: ${s.reason}`);
  const warnings = info.notes.filter((n) => n.startsWith('WARNING'));
  return [`backend: ${info.name}${where} (${info.provider})`, ...skipped, ...warnings].join('\n');
}
