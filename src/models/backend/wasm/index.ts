/** The project's own kernels for the tfjs wasm backend: Winograd convolutions, batched matmuls, fused layer ops. */
export * from './module.js';
export * from './winograd.js';
export * from './layers.js';
export * from './rotary.js';
export * from './matmul.js';
