/** Compute layer and emulators: backends and kernels, networks, training utilities, diffusion and rollouts. */
export * from './backend/index.js';
export * from './nn/index.js';
export * from './train/index.js';
export * from './diffusion/index.js';
