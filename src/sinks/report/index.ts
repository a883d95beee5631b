/**
 * Report sinks: a self-contained HTML report (inline SVG plots rendered with Vega-Lite, base64 PNG frames) and
 * labelled frame-grid PNGs with colour bars, from a stream of rollouts or from a saved results directory; the study report (tables
 * over seeds, VRMSE against compression, spread/skill by band).
 */
export { reportSink, renderSavedReport, writeFrameGrids, slug, REPORT_FILE, FRAME_LOG_FILE, type ReportSinkOptions, type ReportFiles } from './sink.js';
export { renderReport, reportPlots, reportFigures, MISSING_CELL, type ReportOptions, type ReportFigures, type OmittedPlot } from './html.js';
export {
  renderSvg,
  errorVsLead,
  spreadSkillVsLead,
  powerSpectra,
  spectralErrorBands,
  leadData,
  powerSpectraData,
  spectralErrorData,
  metricLabel,
  type Plot,
  type PlotDatum,
} from './plots.js';
export { renderStudyReport, metricVsCompression, spreadSkillByBand, studyData, type StudyReportInput } from './study.js';
export {
  colormaps,
  colorize,
  colorbar,
  tickLabels,
  resample,
  encodePng,
  valueRanges,
  snapshotPanels,
  frameGridImage,
  frameGridPng,
  displaySize,
  type Rgba,
  type Lut,
  type SnapshotPanels,
  type ValueRanges,
  type FrameGrid,
  type ColorbarPlacement,
} from './images.js';
