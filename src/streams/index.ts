/**
 * The ground floor every layer builds on: the stage core (pipe, compose, named stages, errors), general-purpose
 * operators and sinks' building blocks, the seeded generator and seed derivation, atomic writes, augmentations.
 * Format-specific sources (Well windows and trajectories, latent-cache rows) live with their formats in
 * src/formats; simulation sources in src/physics/simulate.
 */
export * from './core.js';
export * from './basic.js';
export * from './shuffle.js';
export * from './random.js';
export * from './concurrency.js';
export * from './combine.js';
export * from './progress.js';
export * from './transfer.js';
export * from './workers.js';
export * from './augment.js';
