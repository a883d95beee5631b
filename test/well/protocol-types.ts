/**
 * Compile-time checks of the HDF5 worker protocol, type-checked (never run) by protocol.test.ts: each
 * `@ts-expect-error` line must be an error, and everything else must compile.
 */
import type { H5Pool, H5Worker } from '../../src/formats/well/pool.js';
import type { H5Args, H5Handlers, H5OpName, H5Result } from '../../src/formats/well/protocol.js';
import type { FinishResult, MomentsResult, RawGroup, WindowReadPlan, WindowReadResult } from '../../src/formats/well/raw.js';
import type { createReadOps } from '../../src/formats/well/read-ops.js';
import type { createWriteOps } from '../../src/formats/well/write-ops.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(check: Equal<A, B>) => check;

export async function checks(pool: H5Pool, worker: H5Worker, plan: WindowReadPlan): Promise<void> {
  // results are inferred from the operation name
  const window = await pool.call('readWindow', plan, 'reading');
  same<typeof window, WindowReadResult>(true);
  const tree = await pool.call('describe', { path: '/a.hdf5' }, 'describing');
  same<typeof tree, RawGroup>(true);
  const finished = await worker.call('finish', { handle: 1, finalPath: '/a.hdf5' }, 'finishing');
  same<typeof finished, FinishResult>(true);
  same<H5Result<'moments'>, MomentsResult>(true);
  same<H5Args<'readWindow'>, WindowReadPlan>(true);
  same<typeof window, RawGroup>(
    // @ts-expect-error a result is not any other operation's result
    true,
  );

  // @ts-expect-error an unknown operation name does not compile
  await pool.call('readWindows', plan, 'reading');
  // @ts-expect-error nor on a single worker
  await worker.call('noSuchOp', {}, 'x');
  // @ts-expect-error the argument is checked against the operation
  await pool.call('readWindow', { path: '/a.hdf5' }, 'reading');
  // @ts-expect-error another operation's argument is refused
  await pool.call('moments', plan, 'reading');
  // @ts-expect-error a writer's argument is not a reader's
  await worker.call('describe', { handle: 1 }, 'reading');
  // @ts-expect-error the label is required
  await pool.call('describe', { path: '/a.hdf5' });
  // @ts-expect-error broadcast is typed the same way
  await pool.broadcast('close', { handle: 1 }, 'closing');
  await pool.broadcast('close', { path: '/a.hdf5' }, 'closing');
}

// the implementations are checked against the map: read and write ops together are exactly the handlers
type Implemented = ReturnType<typeof createReadOps> & ReturnType<typeof createWriteOps>;
same<Exclude<H5OpName, keyof Implemented>, '__diag' | '__crash'>(true);
same<Exclude<keyof Implemented, H5OpName>, never>(true);
export const table = (read: ReturnType<typeof createReadOps>, write: ReturnType<typeof createWriteOps>): H5Handlers => ({
  ...read,
  ...write,
  __diag: () => [],
  __crash: () => {
    throw new Error('never answers');
  },
});
// a handler with the wrong result type is refused
export const wrong: Pick<H5Handlers, 'describe'> = {
  // @ts-expect-error describe answers a RawGroup
  describe: () => 42,
};
