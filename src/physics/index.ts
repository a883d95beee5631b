/**
 * Built-in physics solvers (pure TypeScript on Float64Array): 2D compressible Euler (MUSCL-Hancock + HLLC) with
 * The Well's random quadrant problems, an exact 1D Riemann solver, 2D Rayleigh-Benard convection, the project's
 * one FFT, and `simulate/`: the simulation sources that run them over worker threads into Well-format data.
 */
export * from './euler.js';
export * from './riemann.js';
export * from './quadrants.js';
export * from './fft.js';
export * from './rayleigh-benard.js';
export * from './simulate/index.js';
