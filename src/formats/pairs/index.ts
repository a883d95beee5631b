/**
 * The distillation pairs format: Arrow IPC files of (noise, teacher sample) pairs with their context and labels.
 * `schema.ts` defines the rows and metadata, `reader.ts` streams pair batches out (refusing another teacher's),
 * `writer.ts` writes a stream of them (atomically, with backpressure).
 */
export * from './schema.js';
export * from './reader.js';
export * from './writer.js';
