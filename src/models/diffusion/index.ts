/** Latent emulators: noise schedules, formulations, denoisers, samplers, guidance, surrogates, rollouts, training windows. */
export * from './random.js';
export * from './schedule.js';
export * from './formulation.js';
export * from './denoiser.js';
export * from './samplers.js';
export * from './guidance.js';
export * from './emulator.js';
export * from './rollout.js';
export * from './windows.js';
export * from './distill.js';
