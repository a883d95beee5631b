/** Training utilities: optimisers (AdamW, SOAP, PSGD-Kron), schedules, clipping, EMA, the training-step stage, checkpoints. */
// The trainer's RNG (StepContext.rng) is the project's shared generator.
export { Rng, type RngState } from '../../streams/random.js';
export * from './optim.js';
export * from './optimizer.js';
export * from './soap.js';
export * from './psgd-kron.js';
export { symmetricEigen, orthonormalize, invertUpperTriangular, type SymmetricEigen } from './linalg.js';
export * from './types.js';
export * from './trainer.js';
export * from './checkpoint.js';
export * from './parallel.js';
export * from './fused.js';
export { sizeAt, slotOf } from './layout.js';
export { batchSize, sliceBatch, computeGradients } from './gradients.js';
export * from './compare.js';
