/** Sinks: the ends of pipelines (drain, collect, reduce), Well writers, metric reducers, reports, and provenance records. */
export * from './basic.js';
export * from './files.js';
export * from './latent-cache.js';
export * from './rollouts.js';
export * from './well.js';
export * from './metrics/index.js';
export * from './report/index.js';
export * from './provenance.js';
