/**
 * The WebGPU backend in Node: `@tensorflow/tfjs-backend-webgpu` 4.22.0 on the `webgpu` package (Google's Dawn,
 * prebuilt for Linux, macOS and Windows inside the npm package). Both are optional dependencies; this module
 * imports them only when asked to start the backend.
 *
 * Dawn reaches the GPU through Vulkan on Linux (a Vulkan loader, `libvulkan.so.1`, and a driver: the GPU vendor's,
 * or Mesa's lavapipe as a software device), Metal on macOS and D3D12 on Windows. `findWebgpuAdapter` asks Dawn for
 * an adapter and, where there is none, says which of the package, the loader or the driver is missing and how to
 * get it. `startWebgpu` registers the tfjs backend on a device created by this module instead of tfjs' own
 * factory, for three reasons:
 * - the device asks for the adapter's own per-stage storage-buffer limit (tfjs asks for the default 8), and the
 *   project's AddN kernel sums in chunks under that limit: tfjs' AddN binds one buffer per input, and a variable
 *   used in 29 places (the DCAE) made an invalid pipeline whose gradients were garbage;
 * - WebGPU reports validation errors and a lost device asynchronously and only prints them: this module records
 *   them, and `checkWebgpu()` (which the Trainer calls after every step) turns them into an error that stops the
 *   run, so a rerun resumes from the last checkpoint instead of training on garbage;
 * - the adapter info (vendor, architecture, software or not) is kept for `describeBackend`.
 * Kernels: AddN in chunks (above) and Tile of rank 5 and more (tfjs' falls back to a synchronous read, which Node
 * cannot do on a GPU). Node has no synchronous GPU read at all: code that may run on webgpu reads tensors with
 * `await t.data()`, never `dataSync()`.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** What `describeBackend` reports about the adapter. */
export interface WebgpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader, WARP): used only when asked for, since wasm is faster on CPUs. */
  software: boolean;
  /** The per-stage storage-buffer limit the device was created with. */
  maxStorageBuffersPerShaderStage: number;
}

/** Thrown when no WebGPU adapter can be had; the message names what is missing and how to get it. */
export class WebgpuUnavailableError extends Error {
  override readonly name = 'WebgpuUnavailableError';
}

/** Thrown by `checkWebgpu` after the device was lost or reported an error during a computation. */
export class WebgpuDeviceError extends Error {
  override readonly name = 'WebgpuDeviceError';
}

// The parts of the WebGPU API used here (the `webgpu` package is optional, so its types are not imported).
interface GpuLimits {
  readonly [name: string]: number | unknown;
  readonly maxStorageBuffersPerShaderStage: number;
}
interface GpuAdapter {
  readonly info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<string>;
  requestDevice(descriptor: { requiredFeatures?: string[]; requiredLimits?: Record<string, number> }): Promise<GpuDevice>;
}
interface GpuDevice {
  readonly limits: GpuLimits;
  readonly lost: Promise<{ reason: string; message: string }>;
  onuncapturederror: ((event: { error: { message: string } }) => void) | null;
}
interface Gpu {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<GpuAdapter | null>;
}
interface WebgpuPackage {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}
type WebgpuBackendClass = new (device: GpuDevice, adapterInfo: GpuAdapter['info']) => tf.KernelBackend;

const WEBGPU_PACKAGE = 'webgpu';
const TFJS_WEBGPU = '@tensorflow/tfjs-backend-webgpu';
const INSTALL = 'npm install --save-optional webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0';

let gpu: Gpu | undefined;
/** The adapter of the running webgpu backend, once started. */
let adapterInfo: WebgpuAdapterInfo | undefined;
/** The first error the current device reported (validation, out of memory, lost), until `checkWebgpu` throws it. */
let failure: string | undefined;

/** An import error's first line, without Node's ` imported from <path>` tail. */
function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0].replace(/ imported from .*$/, '');
}

/** Loads Dawn once and installs the WebGPU globals (`navigator.gpu`, `GPUBufferUsage`, ...) that tfjs expects. */
async function loadDawn(): Promise<Gpu> {
  if (gpu) return gpu;
  let pkg: WebgpuPackage;
  try {
    pkg = (await import(WEBGPU_PACKAGE)) as WebgpuPackage;
  } catch (err) {
    throw new WebgpuUnavailableError(
      `the optional package "webgpu" (Dawn for Node) could not be loaded (${firstLine(err)}); install it with: ${INSTALL}`,
    );
  }
  Object.assign(globalThis, pkg.globals);
  gpu = pkg.create([]);
  const nav = (globalThis as { navigator?: { gpu?: Gpu } }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return gpu;
}

/** True when the dynamic linker can find `libvulkan.so.1` (its cache, LD_LIBRARY_PATH or the usual folders). */
function vulkanLoaderFound(): boolean {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(delimiter).filter(Boolean),
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib',
    '/usr/local/lib',
  ];
  if (dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes('libvulkan.so.1');
  } catch {
    return false;
  }
}

/** The Vulkan driver manifests (ICD JSON files) the loader would see. */
function vulkanDrivers(): string[] {
  const named = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (named) return named.split(delimiter).filter(Boolean);
  const found: string[] = [];
  const dataDirs = (process.env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(delimiter);
  for (const d of ['/etc/vulkan/icd.d', ...dataDirs.map((x) => join(x, 'vulkan/icd.d'))]) {
    try {
      for (const f of readdirSync(d)) if (f.endsWith('.json')) found.push(join(d, f));
    } catch {
      // folder absent
    }
  }
  return found;
}

/** Why Dawn found no adapter, and how to get one, for this platform. */
function noAdapterReason(): string {
  if (process.platform === 'darwin') return 'Dawn found no Metal adapter (WebGPU on macOS needs Metal, macOS 11 or newer)';
  if (process.platform === 'win32') return 'Dawn found no D3D12 or Vulkan adapter (update the GPU driver)';
  if (!vulkanLoaderFound()) {
    return 'no Vulkan loader: libvulkan.so.1 is missing (Debian/Ubuntu: apt-get install libvulkan1)';
  }
  const drivers = vulkanDrivers();
  const where = drivers.length > 0 ? `the drivers found (${drivers.join(', ')}) offered none Dawn accepts` : 'no Vulkan driver (ICD) is installed';
  return (
    `the Vulkan loader is present but ${where}: install the GPU vendor's driver (NVIDIA's ships a Vulkan ICD; point ` +
    'VK_DRIVER_FILES at its nvidia_icd.json if the loader does not find it), or, for a software device (slow; for ' +
    'tests), Mesa 25 or newer: apt-get install -t bookworm-backports mesa-vulkan-drivers (Debian 12 ships Mesa 22.3, which ' +
    'is too old for Dawn)'
  );
}

function isSoftware(info: GpuAdapter['info']): boolean {
  return (
    info.isFallbackAdapter === true ||
    info.architecture === 'software' ||
    /llvmpipe|lavapipe|swiftshader|microsoft basic render/i.test(`${info.vendor} ${info.device} ${info.description}`)
  );
}

/**
 * Asks Dawn for a high-performance adapter and describes it, without creating a device. Throws a
 * `WebgpuUnavailableError` naming what is missing (the `webgpu` package, the Vulkan loader, a driver).
 */
export async function findWebgpuAdapter(): Promise<WebgpuAdapterInfo> {
  const { info } = await requestAdapter();
  return info;
}

async function requestAdapter(): Promise<{ adapter: GpuAdapter; info: WebgpuAdapterInfo }> {
  // Mesa prints a warning per call when XDG_RUNTIME_DIR is unset; it is not used for compute.
  if (process.platform === 'linux' && !process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  const g = await loadDawn();
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new WebgpuUnavailableError(`no WebGPU adapter: ${noAdapterReason()}`);
  const i = adapter.info;
  return {
    adapter,
    info: {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      software: isSoftware(i),
      maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
    },
  };
}

/** Device limits asked for: the adapter's, where tfjs' own factory would leave the defaults. */
const LIMITS = [
  'maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize',
  'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage',
];

async function createBackend(Backend: WebgpuBackendClass): Promise<tf.KernelBackend> {
  const { adapter, info } = await requestAdapter();
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS) requiredLimits[name] = adapter.limits[name] as number;
  const requiredFeatures = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  failure = undefined;
  device.onuncapturederror = (event) => {
    failure ??= `WebGPU error: ${event.error.message.trim()}`;
  };
  void device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') failure ??= `WebGPU device lost (${lost.reason}): ${lost.message.trim()}`;
  });
  adapterInfo = info;
  return new Backend(device, adapter.info);
}

let registered: Promise<void> | undefined;

/**
 * Registers the `webgpu` tfjs backend (on a device made here, see the header) and the project's webgpu kernels.
 * Does not set it: `tf.setBackend('webgpu')` does, and resolves false when no device can be created.
 * Throws a `WebgpuUnavailableError` when a package is missing.
 */
export function registerWebgpu(): Promise<void> {
  registered ??= (async () => {
    await loadDawn();
    let mod: { WebGPUBackend: WebgpuBackendClass };
    try {
      mod = (await import(TFJS_WEBGPU)) as { WebGPUBackend: WebgpuBackendClass };
    } catch (err) {
      throw new WebgpuUnavailableError(
        `the optional package "@tensorflow/tfjs-backend-webgpu" could not be loaded (${firstLine(err)}); install it with: ${INSTALL}`,
      );
    }
    // The package registered its own factory on import (navigator.gpu exists by now): replace it. Priority 0, so
    // that tfjs never picks it by itself (wellspring's selection decides).
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => createBackend(mod.WebGPUBackend), 0);
    registerWebgpuKernels();
  })();
  registered.catch(() => {
    registered = undefined;
  });
  return registered;
}

/** The adapter of the webgpu backend once started (else undefined). */
export function webgpuAdapter(): WebgpuAdapterInfo | undefined {
  return adapterInfo;
}

/**
 * Throws a `WebgpuDeviceError` when the running webgpu device was lost or reported an error since it started
 * (the results computed since are not to be trusted). A no-op on other backends.
 */
export function checkWebgpu(): void {
  if (failure === undefined || tf.getBackend() !== 'webgpu') return;
  throw new WebgpuDeviceError(
    `${failure}. Results computed since cannot be trusted, so the run stops here without saving them; rerun the ` +
      'same command to resume from its last checkpoint',
  );
}

/** For tests: records a device failure as the device's error callbacks would (undefined clears it). */
export function simulateWebgpuFailure(message: string | undefined): void {
  failure = message;
}

// ---------------------------------------------------------------------------------------------------------
// Kernels

/** The project's kernels for the webgpu backend, by name. */
export const webgpuKernelNames: string[] = [];
const BACKEND = 'webgpu';

function replaceKernel(name: string, make: (stock: KernelFunc) => KernelFunc): void {
  if (webgpuKernelNames.includes(name)) return;
  const stock = tf.getKernel(name, BACKEND);
  if (!stock) throw new Error(`webgpu kernel ${name}: no stock kernel to wrap in @tensorflow/tfjs-backend-webgpu`);
  tf.unregisterKernel(name, BACKEND);
  const config: KernelConfig = { ...stock, kernelFunc: make(stock.kernelFunc) };
  tf.registerKernel(config);
  webgpuKernelNames.push(name);
}

interface DeviceBackend {
  device: GpuDevice;
  disposeData(dataId: object): boolean;
}

/**
 * AddN (the sum of a variable's gradient contributions) in chunks: tfjs' shader binds every input as a storage
 * buffer, one more for the output, and a pipeline over the device's per-stage limit is invalid. Sums groups of
 * at most limit - 1 inputs, then the partial sums, in the same order of additions within each group.
 */
function chunkedAddN(stock: KernelFunc): KernelFunc {
  return (args) => {
    const inputs = args.inputs as unknown as TensorInfo[];
    const backend = args.backend as unknown as DeviceBackend;
    const max = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    if (inputs.length <= max) return stock(args);
    const temps: TensorInfo[] = [];
    let parts = inputs;
    while (parts.length > max) {
      const next: TensorInfo[] = [];
      for (let i = 0; i < parts.length; i += max) {
        const group = parts.slice(i, i + max);
        if (group.length === 1) {
          next.push(group[0]);
          continue;
        }
        const sum = stock({ ...args, inputs: group as unknown as tf.NamedTensorInfoMap }) as TensorInfo;
        temps.push(sum);
        next.push(sum);
      }
      parts = next;
    }
    const out = stock({ ...args, inputs: parts as unknown as tf.NamedTensorInfoMap }) as TensorInfo;
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
}

interface TileBackend {
  shouldExecuteOnCPU(inputs: TensorInfo[]): boolean;
  disposeData(dataId: object): boolean;
}

/**
 * Tile of rank 5 and more (the ViT's windows): tfjs' shader handles rank 4 at most and otherwise reads the tensor
 * back synchronously, which Node cannot do on a GPU (it throws). Tiles one axis at a time instead, each as a rank-3
 * tile of the view [prod(shape before), shape[k], prod(shape after)]: tiling axis by axis gives the same tensor.
 */
function highRankTile(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { reps } = args.attrs as unknown as { reps: number[] };
    const backend = args.backend as unknown as TileBackend;
    if (x.shape.length < 5 || x.dtype === 'string' || backend.shouldExecuteOnCPU([x])) return stock(args);
    const reshape = tf.getKernel(tf.Reshape, BACKEND)!.kernelFunc;
    const view = (t: TensorInfo, shape: number[]) => reshape({ inputs: { x: t }, backend: args.backend, attrs: { shape } }) as TensorInfo;
    const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
    const shape = [...x.shape];
    const temps: TensorInfo[] = [];
    let current = x;
    for (let k = 0; k < shape.length; k++) {
      if (reps[k] === 1) continue;
      const v = view(current, [prod(shape.slice(0, k)), shape[k], prod(shape.slice(k + 1))]);
      const tiled = stock({ inputs: { x: v }, backend: args.backend, attrs: { reps: [1, reps[k], 1] } }) as TensorInfo;
      temps.push(v, tiled);
      shape[k] *= reps[k];
      current = tiled;
    }
    const out = view(current, shape);
    for (const t of temps) backend.disposeData(t.dataId);
    return out;
  };
}

/** Registers the project's webgpu kernels (idempotent; `registerWebgpu` does so). */
export function registerWebgpuKernels(): void {
  replaceKernel(tf.AddN, chunkedAddN);
  replaceKernel(tf.Tile, highRankTile);
}
