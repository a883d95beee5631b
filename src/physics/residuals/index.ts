/**
 * Finite-difference PDE residuals R(x) of physical states, as differentiable tfjs functions (for
 * physics-informed losses and checks): compressible Euler in conservation form between frames, the
 * Rayleigh-Benard divergence and buoyancy transport, and steady Darcy flow. `residualFor` picks one from a
 * Well-style description of the states.
 */
export type { PdeResidual } from './residual.js';
export * from './differences.js';
export * from './euler.js';
export * from './rayleigh-benard.js';
export * from './darcy.js';
export * from './factory.js';
