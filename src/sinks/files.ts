/**
 * Files written so that a reader never sees a half-written one. The atomic writing itself (temporary name,
 * fsync, rename, fsync of the folder) lives in `streams/atomic.ts`, where every folder can import it; it is
 * re-exported here with the other file sinks.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileError } from '../streams/atomic.js';

export {
  atomicTarget,
  commitFile,
  commitFileSync,
  fileError,
  writeFileAtomic,
  writeFileAtomicSync,
  type AtomicData,
  type AtomicTarget,
} from '../streams/atomic.js';

/** Appends one JSON object as a line to a JSONL file (creating it). Lines are whole: one write each. */
export async function appendJsonLine(path: string, record: unknown): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, `${JSON.stringify(record)}\n`);
  } catch (err) {
    throw fileError(path, 'appending to', err);
  }
}
