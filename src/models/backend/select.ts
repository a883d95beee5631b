/**
 * Compute-backend selection. All model code is written against `@tensorflow/tfjs`; which engine runs it is
 * chosen once, at start-up: TensorFlow with a GPU (tfjs-node-gpu), TensorFlow on the CPU (tfjs-node), the
 * wasm backend (one core per thread, SIMD), then the pure-JS cpu backend. The tfjs-node packages are optional
 * dependencies: where they did not install, they are skipped silently.
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
let current: { key: string; info: Promise<BackendInfo> } | undefined;

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
      notes.push(`${provider} not available (${(err as Error).message.split('\n')[0]})`);
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

async function trySelect(name: BackendName, notes: string[]): Promise<BackendInfo | undefined> {
  if (name === 'tensorflow') {
    const found = await tryTensorflow(notes);
    return found && { name, notes, ...found };
  }
  if (name === 'wasm') {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
    } catch (err) {
      notes.push(`@tensorflow/tfjs-backend-wasm not available (${(err as Error).message.split('\n')[0]})`);
      return undefined;
    }
    // Project kernels (missing gradients, faster replacements) register themselves on import.
    const { wasmKernelNames } = await import('./wasm-kernels.js');
    if (await tf.setBackend('wasm')) {
      notes.push(`project wasm kernels: ${wasmKernelNames.join(', ')}`);
      return { name, gpu: false, provider: '@tensorflow/tfjs-backend-wasm', notes };
    }
    notes.push('wasm backend failed to initialise');
    return undefined;
  }
  if (await tf.setBackend('cpu')) return { name, gpu: false, provider: '@tensorflow/tfjs-backend-cpu', notes };
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
    for (const name of order) {
      const info = await trySelect(name, notes);
      if (info) {
        await tf.ready();
        for (const note of info.notes) options.log?.(note);
        return info;
      }
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

/** One line for logs: `backend: wasm (@tensorflow/tfjs-backend-wasm)` plus warnings. */
export function describeBackend(info: BackendInfo): string {
  const where = info.name === 'tensorflow' ? (info.gpu ? ' on GPU' : ' on CPU') : '';
  const warnings = info.notes.filter((n) => n.startsWith('WARNING'));
  return [`backend: ${info.name}${where} (${info.provider})`, ...warnings].join('\n');
}
