/**
 * Compute layer, emulators and trained runs: backends and kernels, networks, training utilities, diffusion and
 * rollouts, and the library face of trained runs (`autoencoder.ts`: load, encode, decode; `emulators.ts`: build,
 * load; `emulate.ts`: the stages from cached trajectories to scored rollout chunks; `baselines.ts`: the reference
 * predictors scored beside them; `rollout-workers.ts`: ensemble rollouts over worker threads). `worker-models.ts`
 * is the module the data-parallel training workers load and the rollout workers build from.
 */
export * from './backend/index.js';
export * from './nn/index.js';
export * from './train/index.js';
export * from './diffusion/index.js';
export * from './autoencoder.js';
export * from './emulators.js';
export * from './emulate.js';
export { RolloutWorkers, type RolloutModel, type RolloutWorkersOptions } from './rollout-workers.js';
export { rolloutWorkers } from './worker-models.js';
export * from './baselines.js';
