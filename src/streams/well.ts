/**
 * Stream face of the Well format (src/formats/well): the sources and transform stages a pipeline starts from.
 * - `wellWindows(source, options)`: windows (nIn input states, nOut targets) over a file, files or a split.
 * - `wellTrajectories(source, options)`: whole trajectories, frame by frame.
 * - `normalizeWindows` / `denormalizeWindows` / `selectChannels`: stages over samples.
 */
export { openWellDataset, wellWindows, wellTrajectories, wellSplitDir, resolveWellFiles } from '../formats/well/dataset.js';
export { normalizeWindows, denormalizeWindows, selectChannels, WellNormalizer } from '../formats/well/normalize.js';
