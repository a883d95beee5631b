/**
 * The HDF5 worker protocol as one typed map. `H5Ops` names every operation a worker runs with the type of its
 * argument and of its result; the client (`H5Worker.call`, `H5Pool.call`) takes the operation name and infers
 * both from it, so a misspelt name or a wrong argument is a compile error, and the worker (`h5worker.ts`) builds
 * its dispatch table as `H5Handlers`, so the read and write implementations (`read-ops.ts`, `write-ops.ts`) are
 * checked against the same map: a missing, extra or mistyped operation does not compile either.
 *
 * The map is types only: nothing here runs, and no h5wasm type appears in it (arguments and results are
 * plain data that survive structured cloning; typed arrays in them are transferred, not copied).
 */
import type {
  CreatePlan,
  FinishResult,
  MomentsPlan,
  MomentsResult,
  RawGroup,
  WindowReadPlan,
  WindowReadResult,
} from './raw.js';

/** Per operation: the argument the main thread posts and the value the worker answers with. */
export interface H5Ops {
  /** The structure of a file (groups, datasets, attributes, small metadata values), before validation. */
  describe: { args: { path: string }; result: RawGroup };
  /** Frames of a trajectory, assembled channel-last (and normalised when asked). */
  readWindow: { args: WindowReadPlan; result: WindowReadResult };
  /** Moments of fields over trajectories of one file. */
  moments: { args: MomentsPlan; result: MomentsResult };
  /** Closes a file in this worker's open-file cache (true, whether or not it was open). */
  close: { args: { path: string }; result: boolean };
  /** Creates a Well file under a temporary name; answers the writer's handle. */
  create: { args: CreatePlan; result: number };
  /** Starts the next trajectory; answers its index. */
  beginTrajectory: { args: { handle: number }; result: number };
  /** Writes frame `t` of the current trajectory; answers the frames written so far. */
  writeFrame: { args: { handle: number; t: number; fields: Record<string, Float32Array> }; result: number };
  /** Writes the constant fields of the current trajectory. */
  writeConstants: { args: { handle: number; fields: Record<string, Float32Array> }; result: boolean };
  /** Closes the file and renames it to `finalPath`. */
  finish: { args: { handle: number; finalPath: string }; result: FinishResult };
  /** Closes and deletes the temporary file; false when the handle was unknown. */
  abort: { args: { handle: number }; result: boolean };
  /** Test hook: the HDF5 error-stack lines captured during the last request. */
  __diag: { args: Record<string, never>; result: string[] };
  /** Test hook: the worker dies the way a wasm abort would; there is never an answer. */
  __crash: { args: Record<string, never>; result: never };
}

export type H5OpName = keyof H5Ops;
export type H5Args<K extends H5OpName> = H5Ops[K]['args'];
export type H5Result<K extends H5OpName> = H5Ops[K]['result'];

/** The worker-side implementation of one operation (synchronous: h5wasm is). */
export type H5Handler<K extends H5OpName> = (args: H5Args<K>) => H5Result<K>;

/** Implementations of the operations `K` (all of them by default: the worker's dispatch table). */
export type H5Handlers<K extends H5OpName = H5OpName> = { [P in K]: H5Handler<P> };

/** The operations implemented by `read-ops.ts` and by `write-ops.ts`. */
export type H5ReadOpName = 'describe' | 'readWindow' | 'moments' | 'close';
export type H5WriteOpName = 'create' | 'beginTrajectory' | 'writeFrame' | 'writeConstants' | 'finish' | 'abort';

/** A request as posted to a worker (one member per operation, so `op` and `args` always agree). */
export type H5Request<K extends H5OpName = H5OpName> = { [P in K]: { id: number; op: P; args: H5Args<P> } }[K];

/** A worker's answer to request `id`. */
export type H5Response<K extends H5OpName = H5OpName> =
  | { id: number; ok: true; value: H5Result<K> }
  | { id: number; ok: false; message: string };

