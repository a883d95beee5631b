/**
 * wellspring: latent diffusion emulators of physical systems, built as a streaming dataflow of async-iterable
 * stages. Everything public is exported from here: `import { pipe, map, batch } from 'wellspring'`.
 */
export * from './streams/index.js';
export * from './sinks/index.js';
export * from './models/index.js';
export * from './physics/index.js';
