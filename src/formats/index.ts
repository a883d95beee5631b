/**
 * File formats, each in one home with its schema, reader, writer and worker operations: The Well's HDF5
 * (`well/`), the Arrow latent cache (`latent-cache/`), distillation pairs (`pairs/`) and safetensors checkpoints (`safetensors.ts`).
 */
export * from './well/index.js';
export * from './latent-cache/index.js';
export * from './pairs/index.js';
export * from './safetensors.js';
