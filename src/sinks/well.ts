/** Sink face of the Well format (src/formats/well): a stream of trajectories into a file or a dataset root. */
export { writeWell, writeWellDataset } from '../formats/well/writer.js';
