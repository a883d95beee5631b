/**
 * Writing files so that a reader never sees a half-written one: write beside the target under a temporary
 * name, then rename (atomic on one file system). An interrupted run leaves at most a `.tmp-*` file behind.
 */
import { mkdir, rename, rm, writeFile, appendFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Writes `data` to `path` (creating its folder) through a temporary file beside it, then renames it into place. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await mkdir(dirname(path), { recursive: true });
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Appends one JSON object as a line to a JSONL file (creating it). Lines are whole: one write each. */
export async function appendJsonLine(path: string, record: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, `${JSON.stringify(record)}\n`);
}
