/**
 * The plain-data shapes that cross between the HDF5 worker threads and the main thread: a file's structure as
 * read (before validation), and the read plans the main thread sends. No h5wasm types leak out of the workers.
 */

/** An attribute value as read: ints become numbers, bool enums 0/1, arrays plain arrays. */
export type RawValue = string | number | (string | number)[] | { unreadable: string };

export interface RawDataset {
  kind: 'dataset';
  shape: number[];
  maxshape: (number | null)[] | null;
  chunks: number[] | null;
  /** h5wasm dtype string (`<f`, `<d`, `<q`, `S`, `unknown` for enums ...). */
  dtype: string;
  filters: string[];
  attrs: Record<string, RawValue>;
  /** The values, only for small metadata datasets (coordinates, time, masks, scalars). */
  value?: number[];
}

export interface RawGroup {
  kind: 'group';
  attrs: Record<string, RawValue>;
  /** Children in HDF5 link-name order. */
  children: Record<string, RawNode>;
}

export type RawNode = RawGroup | RawDataset | { kind: 'other' };

import type { WindowNormalization } from './normalize-core.js';
import type { MomentSet } from './moments.js';
import type { WellFileSpec } from './spec.js';

/** One field dataset's part in a window read. */
export interface FieldReadPlan {
  /** HDF5 path, e.g. `t1_fields/momentum`. */
  dataset: string;
  sampleVarying: boolean;
  /** Whether the field has a time axis (constant fields do not). */
  timeVarying: boolean;
  /** Per spatial axis of the output grid: true when the axis is stored (false: broadcast). */
  storedAxes: boolean[];
  /** Number of tensor components (1, D, D*D). */
  components: number;
  /** First output channel of this field. */
  channelOffset: number;
}

/** Read `count` frames `start, start + stride, ...` of a trajectory, channel-last `(count, *spatial, C)`. */
export interface WindowReadPlan {
  path: string;
  trajectory: number;
  start: number;
  count: number;
  stride: number;
  spatial: number[];
  channels: number;
  fields: FieldReadPlan[];
  /** 'error': throw on NaN/Inf naming the dataset and frame; 'count': return the count. */
  nonFinite: 'error' | 'count';
  /** Normalise in the worker after assembling (see normalize-core.ts). */
  normalize?: WindowNormalization;
}

export interface WindowReadResult {
  data: Float32Array;
  nonFinite: number;
}

/** Moments of fields of one file, read in blocks of frames. */
export interface MomentsPlan {
  path: string;
  nTrajectories: number;
  nSteps: number;
  /** Trajectories `[from, to)` to pool; fields that are not sample-varying are read only when `from` is 0. */
  trajectories: [number, number];
  fields: {
    name: string;
    dataset: string;
    sampleVarying: boolean;
    timeVarying: boolean;
    components: number;
    /** Stored values per frame (spatial x components). */
    frameSize: number;
    /** Optional pointwise transform applied before the moments (`log1p`). */
    transform?: 'log1p';
  }[];
  /** Upper bound on values per read (bounds worker memory). */
  maxValuesPerRead: number;
  nonFinite: 'error' | 'count';
}

export interface MomentsResult {
  moments: MomentSet;
  nonFinite: number;
}

/** Creates a Well file under `tmpPath` (the writer's `create` operation). */
export interface CreatePlan {
  tmpPath: string;
  spec: WellFileSpec;
  /** gzip level 1-9, or 0 / undefined for none. */
  compression?: number;
  /** Frames per chunk along the time axis (default 1: one chunk per frame and trajectory). */
  chunkFrames?: number;
  computeStats?: boolean;
  nonFinite: 'error' | 'count';
}

/** What a finished write reports. */
export interface FinishResult {
  nTrajectories: number;
  bytes: number;
  moments: MomentSet | null;
  nonFinite: number;
}
