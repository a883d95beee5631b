/** Training utilities: seeded RNG, AdamW, schedules, clipping, EMA, the training-step stage, checkpoints. */
export * from './rng.js';
export * from './optim.js';
export * from './trainer.js';
export * from './checkpoint.js';
export * from './safetensors.js';
export * from './parallel.js';
export { batchSize, sliceBatch, computeGradients } from './gradients.js';
