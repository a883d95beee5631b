/**
 * Metric sinks: streaming scores of rollouts against the truth (per model, field and lead time), lead-band and
 * over-field aggregates, the results directory (JSON, CSV, Arrow) they are saved to, and the study table (a metric
 * by lead band, mean and std over seeds, per compression and model).
 */
export { fftnReal, fftnRealPair, fftnInPlace, type ComplexArray } from '../../physics/fft.js';
export {
  fftfreqF32,
  wellBinning,
  isotropicBinning,
  isotropicPowerSpectrum,
  isotropicCrossCorrelation,
  SPECTRAL_BANDS,
  type WellBinning,
  type IsotropicBinning,
} from './spectra.js';
export {
  METRICS,
  scoreFrame,
  fairCrps,
  pooledW1,
  wasserstein1Sorted,
  type MetricName,
  type Convention,
  type FrameMetricsOptions,
  type FrameScores,
} from './frame.js';
export type { MetricSummary } from './types.js';
export {
  MetricsReducer,
  reduceMetrics,
  type RolloutChunk,
  type FrameRecord,
  type MetricsOptions,
  type LeadRow,
  type SpectrumRow,
  type FrameSnapshot,
  type MetricsResult,
} from './reducer.js';
export {
  aggregate,
  mergeResults,
  parseBands,
  poolSummaries,
  bandLabel,
  DEFAULT_BANDS,
  ALL_FIELDS,
  type LeadBand,
  type BandRow,
  type Aggregates,
} from './aggregate.js';
export {
  summarize,
  writeResults,
  PartialWriteError,
  readResults,
  longTable,
  toCsv,
  toArrow,
  RESULTS_FILE,
  SNAPSHOTS_FILE,
  CSV_FILE,
  ARROW_FILE,
  TABLE_SCHEMA,
  type SavedResults,
  type TableRow,
} from './results.js';
export {
  ResidualReducer,
  sortResidualRows,
  DATA_MODEL,
  PDE_RESIDUAL,
  type ResidualRow,
  type ResidualBandRow,
  type ResidualResult,
} from './residual.js';
export { residualBands, mergeResidualResults } from './aggregate.js';
export {
  studyTable,
  formatStudyTable,
  formatCell,
  compressionLabel,
  type StudyEvaluation,
  type StudyCell,
  type StudyRow,
  type StudyTable,
} from './study.js';
export { syntheticRollouts, type SyntheticOptions } from './synthetic.js';
export { scoreChunk, type PreparedChunk, type ScoreOptions, type ChunkScores, type SnapshotPlane } from './score.js';
