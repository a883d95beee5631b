/**
 * Compute backends. `selectBackend` picks and starts one (registering the project's wasm kernels when it picks
 * wasm); `ensureBackend`, which the package entry awaits, does so only where none runs yet. The kernels module
 * itself is imported lazily, so that importing this module alone does not load wasm; likewise the optional WebGPU
 * packages load only when webgpu is tried. `nativeKernels` says whether the native GEMM (built at install) runs the
 * wasm backend's matrix products (the addon loads on first use).
 */
export * from './select.js';
export { registerMissingGradients } from './gradients.js';
export {
  type WebgpuAdapterInfo, WebgpuDeviceError, WebgpuUnavailableError, checkWebgpu, findWebgpuAdapter, webgpuAdapter,
} from './webgpu.js';
export { type WinogradMode, setWinogradMode, setWinogradScratchLimit, winogradMode } from './wasm/index.js';
export { type NativeIsa, type NativeKernelsInfo, nativeKernels, setNativeKernels } from './native/addon.js';
