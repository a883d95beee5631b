/**
 * Simulation sources and the dataset generator for the built-in systems (Euler multi-quadrants and
 * Rayleigh-Benard convection), writing data that downstream stages cannot tell from The Well's.
 */
export * from './systems.js';
export * from './source.js';
export * from './generate.js';
export * from './cache.js';
