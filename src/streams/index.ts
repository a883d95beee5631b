/** Sources and transform stages: the stage core, general-purpose operators, Well readers and simulators. */
export * from './core.js';
export * from './basic.js';
export * from './shuffle.js';
export * from './random.js';
export * from './concurrency.js';
export * from './combine.js';
export * from './progress.js';
export * from './transfer.js';
export * from './workers.js';
export * from './well.js';
export * from './simulate/index.js';
export * from './latent-cache.js';
export * from './augment.js';
