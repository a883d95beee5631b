/**
 * The project's native kernels (C++, N-API; built at install, optional): a blocked GEMM with AVX-512, AVX2+FMA
 * and portable paths chosen at run time, which the wasm backend's matmul kernels (in place of XNNPACK and the own
 * wasm GEMM) and the Winograd convolutions' per-plane products (in place of the wasm module's) use when it is
 * loaded.
 */
export * from './addon.js';
export * from './matmul.js';
