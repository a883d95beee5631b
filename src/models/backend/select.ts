/**
 * Compute-backend selection. All model code is written against `@tensorflow/tfjs`; which engine runs it is
 * chosen once, at start-up: TensorFlow with a GPU (tfjs-node-gpu), TensorFlow on the CPU (tfjs-node), the
 * wasm backend (one core per thread, SIMD), then the pure-JS cpu backend. The tfjs-node packages are optional
 * dependencies: where they did not install, they are skipped silently.
 */
import * as tf from '@tensorflow/tfjs';

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
let current: Promise<BackendInfo> | undefined;

function parsePreference(value: string | undefined): BackendName[] | undefined {
  if (!value) return undefined;
  const names = value.split(',').map((s) => s.trim().toLowerCase());
  for (const n of names) {
    if (!ORDER.includes(n as BackendName)) {
      throw new Error(`WELLSPRING_BACKEND="${value}": expected one of ${ORDER.join(', ')} (comma-separated list allowed)`);
    }
  }
  return names as BackendName[];
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
    await import('@tensorflow/tfjs-backend-wasm');
    // Project kernels (missing gradients, faster replacements) register themselves on import.
    await import('./wasm-kernels.js');
    if (await tf.setBackend('wasm')) return { name, gpu: false, provider: '@tensorflow/tfjs-backend-wasm', notes };
    notes.push('wasm backend failed to initialise');
    return undefined;
  }
  if (await tf.setBackend('cpu')) return { name, gpu: false, provider: '@tensorflow/tfjs-backend-cpu', notes };
  return undefined;
}

/**
 * Selects and initialises the compute backend once per process; later calls return the same info (a call with
 * a different explicit `prefer` re-selects). Throws when none of the requested backends can start.
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendInfo> {
  const explicit = options.prefer ?? parsePreference(process.env.WELLSPRING_BACKEND);
  if (current && !options.prefer) return current;
  current = (async () => {
    const order = explicit ? (Array.isArray(explicit) ? explicit : [explicit]) : ORDER;
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
  current.catch(() => (current = undefined));
  return current;
}

/** One line for logs: `backend: wasm (@tensorflow/tfjs-backend-wasm)` plus warnings. */
export function describeBackend(info: BackendInfo): string {
  const where = info.name === 'tensorflow' ? (info.gpu ? ' on GPU' : ' on CPU') : '';
  const warnings = info.notes.filter((n) => n.startsWith('WARNING'));
  return [`backend: ${info.name}${where} (${info.provider})`, ...warnings].join('\n');
}
