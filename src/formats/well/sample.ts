/**
 * The sample types of the Well reader (a window of frames with its grids and origin), shared by the reader
 * (dataset.ts) and the normalisers (normalize.ts).
 */
import type { ChannelLayout } from './meta.js';

/** A dense array, row-major. */
export interface WellArray<T extends Float32Array | Float64Array = Float32Array> {
  data: T;
  shape: number[];
}

export interface WellOrigin {
  /** Path of the file the sample comes from. */
  file: string;
  fileIndex: number;
  trajectory: number;
  /** First frame of the window. */
  t0: number;
  dt: number;
  /** Global sample index in the dataset. */
  index: number;
}

/** Applied normalisation, recorded on a sample so that it can be undone (see normalize.ts). */
export interface AppliedNormalization {
  kind: 'zscore' | 'rms';
  delta: boolean;
  transforms: Record<string, 'log1p'>;
}

/**
 * One sample, keyed like the reference loader's output (camelCase). `spaceGrid` and `boundaryConditions` are
 * shared by every sample of a file: treat them as read-only.
 */
export interface WellSample {
  /** `(nIn, *spatial, C)` */
  inputFields: WellArray;
  /** `(nOut, *spatial, C)` */
  outputFields: WellArray;
  /** `(*spatial, C_const)`, when the file has constant fields. */
  constantFields?: WellArray;
  /** `(nIn, S)` / `(nOut, S)`, when the file has time-varying scalars. */
  inputScalars?: WellArray;
  outputScalars?: WellArray;
  /** `(S_const)`, in the stored dtype (float64 for h5py-written files). */
  constantScalars?: WellArray<Float32Array | Float64Array>;
  /** `(nSpatialDims, 2)`: WALL 0, OPEN 1, PERIODIC 2. */
  boundaryConditions: WellArray;
  /** `(*spatial, nSpatialDims)`, meshgrid "ij". */
  spaceGrid: WellArray;
  /** Window times minus the window's first time, float32. */
  inputTimeGrid: WellArray;
  outputTimeGrid: WellArray;
  layout: ChannelLayout;
  constantLayout: ChannelLayout;
  origin: WellOrigin;
  /** Non-finite values read (only non-zero with `nonFinite: 'count'`). */
  nonFinite: number;
  normalization?: AppliedNormalization;
}
