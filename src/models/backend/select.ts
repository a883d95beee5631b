/**
 * Compute-backend selection. All model code is written against `@tensorflow/tfjs`; which engine runs it is
 * chosen once, at start-up: TensorFlow with a GPU (tfjs-node-gpu), WebGPU on a hardware adapter (Dawn, see
 * webgpu.ts), TensorFlow on the CPU (tfjs-node), the wasm backend (one core per thread, SIMD), then the pure-JS
 * cpu backend. A software WebGPU adapter (lavapipe, SwiftShader) is used only when webgpu is asked for by name:
 * wasm is faster on CPUs. The tfjs-node and WebGPU packages are optional dependencies: where they did not
 * install, they are skipped, and the info says why (`skipped`).
 *
 * Library users need not select one: the package entry awaits `ensureBackend()` on import, which picks the
 * default order (or `WELLSPRING_BACKEND`) unless a backend already runs, e.g. one the user set with
 * `tf.setBackend`, which it keeps.
 */
import * as tf from '@tensorflow/tfjs';
import { registerMissingGradients } from './gradients.js';
import type { NativeKernelsInfo } from './native/addon.js';
import type { WebgpuAdapterInfo } from './webgpu.js';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** The tfjs backend that now runs every op. */
  name: BackendName;
  /** True when TensorFlow runs on a CUDA device, or webgpu on a hardware adapter. */
  gpu: boolean;
  /** The WebGPU adapter, when the backend is webgpu. */
  adapter?: WebgpuAdapterInfo;
  /**
   * On wasm: whether the project's native GEMM (built at install) runs the matrix products, with its ISA, or why
   * not (`WELLSPRING_NATIVE=off`, not built, failed to load).
   */
  native?: NativeKernelsInfo;
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
   * else the default order: tensorflow on a GPU, webgpu on a hardware adapter, tensorflow on the CPU, wasm, cpu.
   * Naming webgpu also accepts a software adapter.
   */
  prefer?: BackendName | BackendName[];
  /** Called with each remark as it arises (default: none; `describeBackend` formats the final info). */
  log?: (message: string) => void;
}

const ORDER: BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
const PROVIDERS: Record<BackendName, string> = {
  tensorflow: '@tensorflow/tfjs-node',
  webgpu: '@tensorflow/tfjs-backend-webgpu',
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

/** One step of a selection: a backend, and for the default order whether it must run on a GPU. */
interface Step {
  name: BackendName;
  /** tensorflow: only with a CUDA device; webgpu: only on a hardware adapter. */
  gpuOnly?: boolean;
}

/** The default order: a GPU first (TensorFlow's, then WebGPU's), then the CPUs (TensorFlow's, wasm, cpu). */
const DEFAULT_STEPS: Step[] = [
  { name: 'tensorflow', gpuOnly: true },
  { name: 'webgpu', gpuOnly: true },
  { name: 'tensorflow' },
  { name: 'wasm' },
  { name: 'cpu' },
];

/** Starts webgpu; `hardwareOnly` refuses a software adapter. Undefined (with the reason in notes) when it cannot. */
async function tryWebgpu(notes: string[], hardwareOnly: boolean): Promise<BackendInfo['adapter']> {
  const webgpu = await import('./webgpu.js');
  try {
    const found = await webgpu.findWebgpuAdapter();
    if (hardwareOnly && found.software) {
      notes.push(
        `the only WebGPU adapter is a software device (${describeAdapter(found)}), used only when asked for ` +
          '(WELLSPRING_BACKEND=webgpu): wasm is faster on CPUs',
      );
      return undefined;
    }
    await webgpu.registerWebgpu();
  } catch (err) {
    notes.push((err as Error).message);
    return undefined;
  }
  if (!(await tf.setBackend('webgpu'))) {
    notes.push('the WebGPU adapter was found but its device could not be created');
    return undefined;
  }
  const adapter = webgpu.webgpuAdapter();
  notes.push(`project webgpu kernels: ${webgpu.webgpuKernelNames.join(', ')}`);
  if (adapter?.software) notes.push(`WARNING: webgpu runs on a software adapter (${describeAdapter(adapter)}); wasm is faster on CPUs`);
  return adapter;
}

async function trySelect(
  step: Step,
  notes: string[],
  skipped: SkippedBackend[],
  tensorflow: { found?: { provider: string; gpu: boolean } | null },
): Promise<BackendInfo | undefined> {
  const { name } = step;
  if (name === 'tensorflow') {
    // Tried once per selection: the GPU step loads the package, the CPU step reuses what it found.
    if (tensorflow.found === undefined) tensorflow.found = (await tryTensorflow(notes)) ?? null;
    const found = tensorflow.found;
    if (!found) return undefined;
    if (step.gpuOnly && !found.gpu) {
      notes.push('TensorFlow found no GPU (trying a WebGPU adapter before TensorFlow on the CPU)');
      return undefined;
    }
    if (tf.getBackend() !== 'tensorflow' && !(await tf.setBackend('tensorflow'))) return undefined;
    return { name, notes, skipped, ...found };
  }
  if (name === 'webgpu') {
    const adapter = await tryWebgpu(notes, step.gpuOnly === true);
    return adapter && { name, gpu: !adapter.software, provider: PROVIDERS.webgpu, adapter, notes, skipped };
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
      const native = (await import('./native/addon.js')).nativeKernels();
      return { name, gpu: false, provider: PROVIDERS.wasm, native, notes, skipped };
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
 * Throws for an unknown backend name, and when none of the requested backends can start (listing why; for
 * webgpu, what is missing: the package, the Vulkan loader or a driver, and how to get it).
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendInfo> {
  const explicit = options.prefer
    ? checkNames(Array.isArray(options.prefer) ? options.prefer : [options.prefer], 'selectBackend({prefer})')
    : parsePreference(process.env.WELLSPRING_BACKEND);
  const steps = explicit ? explicit.map((name) => ({ name })) : DEFAULT_STEPS;
  const key = explicit ? explicit.join(',') : 'default';
  if (current && current.key === key) return current.info;
  const info = (async () => {
    registerMissingGradients();
    const notes: string[] = [];
    const skipped: SkippedBackend[] = [];
    const tensorflow: { found?: { provider: string; gpu: boolean } | null } = {};
    for (const step of steps) {
      const before = notes.length;
      // TensorFlow that could not load at the GPU step is not tried (nor listed) again at the CPU step.
      const again = step.name === 'tensorflow' && tensorflow.found === null;
      const info = await trySelect(step, notes, skipped, tensorflow);
      if (info) {
        await tf.ready();
        for (const note of info.notes) options.log?.(note);
        return info;
      }
      if (!again) skipped.push({ name: step.name, reason: notes.slice(before).join('; ') || 'failed to start' });
    }
    const tried = [...new Set(steps.map((s) => s.name))].join(', ');
    throw new Error(`no compute backend could start (tried ${tried}): ${notes.join('; ')}`);
  })();
  const entry = { key, info };
  current = entry;
  info.catch(() => {
    if (current === entry) current = undefined;
  });
  return info;
}

/** `nvidia hopper "NVIDIA H200", hardware` */
function describeAdapter(a: WebgpuAdapterInfo): string {
  const what = [a.vendor, a.architecture].filter(Boolean).join(' ');
  return `${what || 'unknown vendor'} "${a.description || a.device}", ${a.software ? 'software' : 'hardware'}`;
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
  const native = name === 'wasm' ? (await import('./native/addon.js')).nativeKernels() : undefined;
  let adapter: WebgpuAdapterInfo | undefined;
  if (name === 'webgpu') {
    const webgpu = await import('./webgpu.js');
    webgpu.registerWebgpuKernels();
    adapter = webgpu.webgpuAdapter();
    notes.push(`project webgpu kernels: ${webgpu.webgpuKernelNames.join(', ')}`);
    if (!adapter) notes.push('WARNING: webgpu was started by tfjs\'s own factory (device limits at their defaults); prefer selectBackend({ prefer: \'webgpu\' })');
  }
  if (name === 'cpu') {
    notes.push('WARNING: keeping the pure-JS cpu backend set before wellspring selected one; wasm is 25-30x faster');
  }
  if (!ORDER.includes(name as BackendName)) notes.push(`WARNING: ${name} is not a backend wellspring was tested on`);
  const gpu =
    (name === 'tensorflow' && (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true) ||
    (name === 'webgpu' && adapter?.software === false);
  const provider = name === 'tensorflow' && gpu ? '@tensorflow/tfjs-node-gpu' : (PROVIDERS[name as BackendName] ?? `tfjs backend "${name}"`);
  // A backend outside `BackendName` is reported under its own name: the user chose it, and it keeps running.
  return { name: name as BackendName, gpu, provider, ...(adapter ? { adapter } : {}), ...(native ? { native } : {}), notes, skipped: [] };
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
 * A few lines for logs: `backend: wasm (@tensorflow/tfjs-backend-wasm; native kernels: avx512)` (wasm says whether
 * the native GEMM runs, with its ISA, or `off (<why>)`; webgpu names its adapter: vendor, architecture,
 * description, software or hardware), then one `skipped <name>: <reason>` line
 * for each faster backend that could not start, then warnings.
 */
export function describeBackend(info: BackendInfo): string {
  const where = info.name === 'tensorflow' || info.name === 'webgpu' ? (info.gpu ? ' on GPU' : ' on CPU') : '';
  const adapter = info.adapter ? `; adapter: ${describeAdapter(info.adapter)}` : '';
  const native = info.native ? `; native kernels: ${info.native.loaded ? info.native.isa : `off (${info.native.reason})`}` : '';
  const skipped = info.skipped.map((s) => `skipped ${s.name}: ${s.reason}`);
  const warnings = info.notes.filter((n) => n.startsWith('WARNING'));
  return [`backend: ${info.name}${where} (${info.provider}${adapter}${native})`, ...skipped, ...warnings].join('\n');
}
