/**
 * Kernels the project registers on the wasm backend: gradients tfjs-backend-wasm 4.22.0 lacks, and faster
 * replacements for slow ones. Importing this module registers them (idempotent).
 */
export {};
