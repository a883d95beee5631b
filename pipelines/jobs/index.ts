/**
 * The end-to-end jobs, one per file, each a composition of library stages over a run directory (see
 * pipelines/cli/run-dir.ts): `generateDataset` (simulate a Well-format dataset), `trainAutoencoder`,
 * `cacheLatents` (encode every split to Arrow), `trainEmulator` (surrogate or diffusion), `evaluate` (roll out,
 * decode, score, report; `mergeEvaluation` pools shards), `makePairs` / `trainStudent` (distillation), `runDemo` (all of them on a small default) and `runStudy` (compression
 * rates x seeds x emulators, tabulated as the reference study's main table). The
 * commands in pipelines/commands parse arguments over these; programs can call them directly.
 */
export { generateDataset, parameterSets, ALL_GAMMAS, type GenerateDatasetOptions, type GenerateDatasetResult } from './generate.js';
export { trainAutoencoder, trainAeDefaults, validateAutoencoder, type TrainAeConfig, type ReconstructionMetrics } from './train-ae.js';
export { cacheLatents, cacheDefaults, type CacheConfig, type CacheResult } from './cache.js';
export { trainEmulator, trainEmulatorDefaults, type TrainEmulatorConfig } from './train-emulator.js';
export { evaluate, evaluateDefaults, mergeEvaluation, type EvaluateConfig } from './evaluate.js';
export { distillDefaults, makePairs, trainStudent, type DistillConfig } from './distill.js';
export { runStudy, studyDefaults, STUDY_PRESETS, STUDY_STAGES, type StudyConfig, type StudyStage, type StudyResult, type RunStudyOptions } from './study.js';
export { runDemo, demoDefaults, formatSummary, type DemoConfig, type DemoSummary } from './demo.js';
