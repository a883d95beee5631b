/**
 * Simulation sources for the built-in systems (Euler multi-quadrants, Rayleigh-Benard convection, Darcy flow), writing
 * data that downstream stages cannot tell from The Well's. The dataset-generation job that runs them over worker
 * threads is pipelines/jobs/generate.ts.
 */
export * from './systems.js';
export * from './source.js';
export * from './cache.js';
