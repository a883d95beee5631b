/**
 * Built-in physics solvers (pure TypeScript on Float64Array): 2D compressible Euler (MUSCL-Hancock + HLLC) with
 * The Well's random quadrant problems, an exact 1D Riemann solver, and 2D Rayleigh-Benard convection.
 */
export * from './euler.js';
export * from './riemann.js';
export * from './quadrants.js';
export * from './fft.js';
export * from './rayleigh-benard.js';
