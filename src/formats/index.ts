/**
 * File formats, each in one home with its schema, reader, writer and worker operations: The Well's HDF5
 * (`well/`), the Arrow latent cache (`latent-cache/`), distillation pairs (`pairs/`), saved rollouts (`rollouts/`),
 * safetensors checkpoints (`safetensors.ts`) and TensorBoard scalar event files (`tensorboard.ts`); `arrow.ts`
 * holds what the Arrow formats share (tensor columns, opening files, atomic backpressured writing).
 */
export * from './well/index.js';
export * from './latent-cache/index.js';
export * from './pairs/index.js';
export * from './rollouts/index.js';
export * from './safetensors.js';
export * from './tensorboard.js';
