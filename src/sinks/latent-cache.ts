/** Sink face of the latent cache format (src/formats/latent-cache): encoded trajectories into an Arrow file. */
export { writeLatentCache } from '../formats/latent-cache/writer.js';
