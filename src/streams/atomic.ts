/**
 * Atomic file writing, the one helper every writer of the package uses: write beside the target under a
 * temporary name, fsync the file, rename it over the target (atomic on one file system), then fsync the folder
 * so the rename itself survives a crash. A reader sees the old file or the whole new one, never a part; a failed
 * write removes its temporary file and leaves the target as it was (an interrupted process leaves at most a
 * `.tmp-*` file behind).
 *
 * - `writeFileAtomic(path, data)`: the whole content at once (or streamed from an async iterable).
 * - `atomicTarget(path)`: for writers that stream into the temporary file themselves: write to `tmp`, then
 *   `commit()` (after closing the stream) or `abort()`.
 * - `writeFileAtomicSync`, `commitFileSync`: the same, synchronous (worker threads that do synchronous I/O).
 *
 * Depends on nothing but node:fs, so every folder (formats, sinks, streams, pipelines) can import it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What `writeFileAtomic` accepts: the content, or chunks of it (written as they come). */
export type AtomicData = string | Uint8Array | Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>;

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'a folder on the way does not exist',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'the target is a folder',
};

/**
 * A file-system error restated with the path and what was being done (`writing <path>: no space left on the
 * device (ENOSPC)`), keeping the original as `cause`. Errors without a system code (a failing data source, say)
 * are returned unchanged.
 */
export function fileError(path: string, doing: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (!code || !(err instanceof Error) || err.message.startsWith(`${doing} ${path}:`)) return err instanceof Error ? err : new Error(String(err));
  const what = CAUSES[code] ?? err.message.replace(/^[A-Z]+: /, '');
  const wrapped = new Error(`${doing} ${path}: ${what} (${code})`, { cause: err }) as NodeJS.ErrnoException;
  wrapped.code = code;
  return wrapped;
}

/** A fresh temporary name beside `path`: `<path>.tmp-<pid>-<random>`. */
export function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Folders cannot be opened or fsynced on some platforms and file systems (Windows; some network and FUSE file
 * systems refuse fsync on a directory); there the rename is as durable as the platform makes it.
 */
const UNSUPPORTED_DIR_SYNC = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP', 'EBADF']);

function unsupported(err: unknown): boolean {
  return UNSUPPORTED_DIR_SYNC.has((err as NodeJS.ErrnoException)?.code ?? '');
}

/** fsyncs a folder, so that a rename into it is on disk. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (!unsupported(err)) throw err;
  } finally {
    await handle?.close();
  }
}

/** Synchronous `syncDirectory`. */
export function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    if (!unsupported(err)) throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Moves a complete, closed temporary file into place: fsync it, rename it to `path`, fsync the folder. On error
 * the temporary file is removed and the target is left as it was.
 */
export async function commitFile(tmp: string, path: string): Promise<void> {
  try {
    const handle = await open(tmp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(path, 'writing', err);
  }
  await syncDirectory(dirname(path)).catch((err: unknown) => {
    throw fileError(dirname(path), 'syncing', err);
  });
}

/** Synchronous `commitFile`. */
export function commitFileSync(tmp: string, path: string): void {
  try {
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fileError(path, 'writing', err);
  }
  syncDirectorySync(dirname(path));
}

/**
 * Writes `data` to `path` (creating its folder) through a temporary file beside it: write, fsync, rename, fsync
 * the folder. If anything fails (including the data source, for streamed chunks), the temporary file is removed
 * and the error rethrown; `path` is untouched.
 */
export async function writeFileAtomic(path: string, data: AtomicData): Promise<void> {
  await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
    throw fileError(dirname(path), 'creating the folder', err);
  });
  const tmp = temporaryPath(path);
  try {
    await writeFile(tmp, data);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(path, 'writing', err);
  }
  await commitFile(tmp, path);
}

/** Synchronous `writeFileAtomic` (whole content only). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = temporaryPath(path);
  try {
    writeFileSync(tmp, data);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fileError(path, 'writing', err);
  }
  commitFileSync(tmp, path);
}

/** A temporary file that a streaming writer fills, then commits into place or aborts. */
export interface AtomicTarget {
  /** The final path. */
  readonly path: string;
  /** Where to write (beside `path`). */
  readonly tmp: string;
  /** fsyncs the (closed) temporary file, renames it to `path` and fsyncs the folder; removes it on failure. */
  commit(): Promise<void>;
  /** Removes the temporary file (if any); `path` is left as it was. */
  abort(): Promise<void>;
}

/**
 * A temporary file beside `path` for a writer that streams into it: write everything to `tmp` and close it,
 * then `commit()`; on failure `abort()`. The folder must exist. `tmp` overrides the temporary name (it must be
 * in the same folder).
 *
 * ```ts
 * const target = atomicTarget('out/frames.csv');
 * const out = createWriteStream(target.tmp);
 * // ... write, end, wait for 'finish'
 * await target.commit();
 * ```
 */
export function atomicTarget(path: string, options: { tmp?: string } = {}): AtomicTarget {
  const tmp = options.tmp ?? temporaryPath(path);
  return {
    path,
    tmp,
    commit: () => commitFile(tmp, path),
    abort: () => rm(tmp, { force: true }),
  };
}
