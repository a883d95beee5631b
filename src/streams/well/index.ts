/**
 * The Well data layer (reading side): `openWell` (validated metadata), window and trajectory sources over
 * files or split directories, channel selection, normalisers and their inverses, statistics (read stats.yaml,
 * compute it in one streaming pass), and the HDF5 worker pool they run on.
 */
export * from './meta.js';
export * from './dataset.js';
export * from './normalize.js';
export * from './moments.js';
export * from './stats.js';
export * from './compute-stats.js';
export { H5Pool, H5Worker, WorkerCrashError, wellPool, wellWriterWorker, closeWellPool } from './pool.js';
export type { ChannelCoefficients, WindowNormalization } from './normalize-core.js';
export type { RawGroup, RawDataset, RawNode, RawValue } from './raw.js';
