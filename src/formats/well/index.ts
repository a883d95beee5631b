/**
 * The Well format, in one place: the file schema (`spec.ts`), validated metadata (`meta.ts`), sample types
 * (`sample.ts`), the HDF5 worker and its typed operation map (`protocol.ts`, `h5worker.ts`, `read-ops.ts`,
 * `write-ops.ts`, `pool.ts`), the reader (`dataset.ts`: the sources `wellWindows` and `wellTrajectories` over
 * files or split directories), the writer (`writer.ts`: the sinks `writeWell`, `writeWellDataset`), `stats.yaml`
 * (`stats.ts`, `moments.ts`, `compute-stats.ts`), the normalisers (`normalize.ts`) and conditioning labels
 * (`labels.ts`). The sink face is `src/sinks/well.ts`.
 */
export * from './spec.js';
export * from './meta.js';
export * from './dataset.js';
export * from './normalize.js';
export * from './moments.js';
export * from './stats.js';
export * from './compute-stats.js';
export * from './writer.js';
export * from './labels.js';
export { H5Pool, H5Worker, WorkerCrashError, wellPool, wellWriterWorker, closeWellPool } from './pool.js';
export type { H5Ops, H5OpName, H5Args, H5Result } from './protocol.js';
export type { ChannelCoefficients, WindowNormalization } from './normalize-core.js';
export type { RawGroup, RawDataset, RawNode, RawValue } from './raw.js';
