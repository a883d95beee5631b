/**
 * The Well data layer (reading side): HDF5 worker pool, statistics (stats.yaml, pooled moments).
 */
export * from './moments.js';
export * from './stats.js';
export { H5Pool, H5Worker, WorkerCrashError, wellPool, closeWellPool } from './pool.js';
