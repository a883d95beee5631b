/**
 * The saved-rollouts format: Arrow IPC files of decoded rollouts, one file per model, one row per predicted state
 * with its truth, ensemble members, lead and origin, the tensors as Arrow's canonical `arrow.fixed_shape_tensor`.
 * `schema.ts` defines the rows and metadata, `writer.ts` the stage that saves a stream of rollout chunks (atomically,
 * one state at a time), `reader.ts` streams rows back.
 */
export * from './schema.js';
export * from './writer.js';
export * from './reader.js';
