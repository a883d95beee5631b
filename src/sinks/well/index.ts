/**
 * Well-format writers: `writeWell` (a sink writing a stream of trajectories into one HDF5 file) and
 * `writeWellDataset` (a dataset root with train/valid/test splits and stats.yaml), plus the file spec types.
 */
export * from './spec.js';
export {
  writeWell,
  writeWellDataset,
  validateWellSpec,
  channelsToFields,
  timeVaryingFields,
  splitFor,
  WellFileWriter,
  WELL_SPLITS,
  type WellFrame,
  type WellTrajectory,
  type WellSplit,
  type WriteWellOptions,
  type WriteWellResult,
  type WriteWellDatasetOptions,
  type WriteWellDatasetResult,
} from './write.js';
