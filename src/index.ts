/**
 * wellspring: latent diffusion emulators of physical systems, built as a streaming dataflow of async-iterable
 * stages. Everything public is exported from here: `import { pipe, map, batch } from 'wellspring-latent'`.
 *
 * Folders: `streams` (sources and transform stages), `formats` (The Well, the latent cache, safetensors: one
 * home per file format), `models` (backends, networks, diffusion, training, trained runs), `sinks` (writers,
 * metric reducers, reports), `physics` (the built-in solvers).
 */
import { ensureBackend } from './models/backend/select.js';

export * from './streams/index.js';
export * from './formats/index.js';
export * from './sinks/index.js';
export * from './models/index.js';
export * from './physics/index.js';

// The fastest backend that starts (or `WELLSPRING_BACKEND`, or one the user set first) runs before any user op,
// so no library path falls silently to the pure-JS backend.
await ensureBackend();
