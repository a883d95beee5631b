/**
 * The latent cache format: Arrow IPC files of encoded trajectories. `schema.ts` defines the rows and metadata,
 * `reader.ts` streams rows out, `writer.ts` writes a stream of rows (atomically, with backpressure), `merge.ts` joins shard files.
 */
export * from './schema.js';
export * from './reader.js';
export * from './writer.js';
export * from './merge.js';
