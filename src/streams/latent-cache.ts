/** Stream face of the latent cache format (src/formats/latent-cache): the source of cached trajectories. */
export { readLatentCache, openLatentCache, latentCacheFiles } from '../formats/latent-cache/reader.js';
