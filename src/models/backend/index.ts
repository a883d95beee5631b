/**
 * Compute backends. `selectBackend` picks and starts one (registering the project's wasm kernels when it picks
 * wasm); the kernels module itself is imported lazily so that loading the library does not load wasm.
 */
export * from './select.js';
export { registerMissingGradients } from './gradients.js';
export { type WinogradMode, setWinogradMode, setWinogradScratchLimit, winogradMode } from './wasm/index.js';
