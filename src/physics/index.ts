/**
 * Built-in physics solvers (pure TypeScript on Float64Array): 2D compressible Euler (MUSCL-Hancock + HLLC) with
 * The Well's random quadrant problems, an exact 1D Riemann solver, 2D Rayleigh-Benard convection, steady Darcy
 * flow with random two-valued coefficients (Gaussian random fields, PCG), the project's one FFT, `simulate/`: the
 * simulation sources that run them over worker threads into Well-format data, and `residuals/`: finite-difference
 * PDE residuals of states as differentiable tfjs functions, and `observe.ts`: observation operators (subsampling,
 * block means, sensor masks) with Gaussian noise, also differentiable tfjs functions of physical states.
 */
export * from './euler.js';
export * from './riemann.js';
export * from './quadrants.js';
export * from './fft.js';
export * from './rayleigh-benard.js';
export * from './darcy.js';
export * from './simulate/index.js';
export * from './residuals/index.js';
export * from './observe.js';
