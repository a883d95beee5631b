/**
 * TensorBoard event files: scalar summaries that TensorBoard (and any TFRecord + protobuf reader) can read.
 *
 * File: `events.out.tfevents.<seconds>.<host>.<pid>.<tag>` (TensorBoard lists every file whose name holds
 * `tfevents`), a sequence of TFRecords, each
 *
 *   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
 *
 * with CRC32C the Castagnoli CRC (reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF) and
 * masked_crc(c) = ((c >>> 15) | (c << 17)) + 0xA282EAD8 (mod 2^32). Each record's data is one `tensorflow.Event`
 * protobuf message, encoded here by hand (only the fields written):
 *
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }
 *   Value   { string tag = 1; float simple_value = 2; }
 *
 * The first record of a file is `{wall_time, file_version: "brain.Event:2"}`; every later one holds the scalars of
 * one step. A reader stops at a torn last record (a killed writer), which TensorBoard tolerates too.
 */
import { open, mkdir, type FileHandle } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileError } from '../streams/atomic.js';

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32C (Castagnoli) of `bytes`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC32C: rotate right by 15 bits and add 0xA282EAD8 (mod 2^32). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Protobuf base-128 varint of a non-negative integer (up to 2^53). */
function varint(value: number): number[] {
  if (!Number.isInteger(value) || value < 0) throw new Error(`tensorboard: a varint must be a non-negative integer, got ${value}`);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

const text = new TextEncoder();

/** A length-delimited field (wire type 2). */
function bytesField(field: number, payload: Uint8Array | number[]): number[] {
  return [(field << 3) | 2, ...varint(payload.length), ...payload];
}

function doubleBytes(v: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return [...b];
}

function floatBytes(v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...b];
}

/** The `Event` message of a file's first record: `{wall_time, file_version: "brain.Event:2"}`. */
export function fileVersionEvent(wallTime: number): Uint8Array {
  return Uint8Array.from([0x09, ...doubleBytes(wallTime), ...bytesField(3, text.encode('brain.Event:2'))]);
}

/** The `Event` message of one step's scalars (`simple_value` summaries, in the order given). */
export function scalarEvent(step: number, wallTime: number, scalars: Readonly<Record<string, number>>): Uint8Array {
  const values = Object.entries(scalars).flatMap(([tag, v]) => bytesField(1, [...bytesField(1, text.encode(tag)), 0x15, ...floatBytes(v)]));
  return Uint8Array.from([0x09, ...doubleBytes(wallTime), 0x10, ...varint(step), ...bytesField(5, values)]);
}

/** A scalar event read back. */
export interface ScalarEvent {
  step: number;
  wallTime: number;
  /** Tag -> value (float32 precision). */
  scalars: Record<string, number>;
}

/**
 * Appends scalar events to a new event file in a directory (one file per writer; a resumed run adds a file and
 * TensorBoard merges them by step). Each `add` writes one whole record; `close` flushes and closes the file.
 */
export class TensorBoardWriter {
  private constructor(
    readonly path: string,
    private readonly file: FileHandle,
  ) {}

  /** Creates `dir` if needed and opens a new event file there, starting with the file-version record. */
  static async open(dir: string, tag = 'wellspring'): Promise<TensorBoardWriter> {
    const now = Date.now() / 1000;
    const path = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}.${tag}`);
    try {
      await mkdir(dir, { recursive: true });
      const file = await open(path, 'a');
      const writer = new TensorBoardWriter(path, file);
      await file.write(tfRecord(fileVersionEvent(now)));
      return writer;
    } catch (err) {
      throw fileError(path, 'creating the TensorBoard event file', err);
    }
  }

  /** Writes one step's scalars (wall time: now). Non-finite values are written as they are (NaN, Inf). */
  async add(step: number, scalars: Readonly<Record<string, number>>, wallTime = Date.now() / 1000): Promise<void> {
    try {
      await this.file.write(tfRecord(scalarEvent(step, wallTime, scalars)));
    } catch (err) {
      throw fileError(this.path, 'appending to', err);
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Reads a protobuf varint at `pos`; returns [value, next position]. */
function readVarint(b: Uint8Array, pos: number, where: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < b.length && i < pos + 10; i++) {
    value += (b[i]! & 0x7f) * scale;
    scale *= 0x80;
    if ((b[i]! & 0x80) === 0) return [value, i + 1];
  }
  throw new Error(`${where}: truncated varint at byte ${pos}`);
}

/** Iterates the fields of a message: [field number, wire type, value or payload]. Skips unknown wire types' data. */
function* fields(b: Uint8Array, where: string): Generator<[number, number, number | Uint8Array]> {
  let pos = 0;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (pos < b.length) {
    const [key, p] = readVarint(b, pos, where);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const [v, q] = readVarint(b, p, where);
      pos = q;
      yield [field, wire, v];
    } else if (wire === 1) {
      if (p + 8 > b.length) throw new Error(`${where}: truncated 64-bit field ${field}`);
      yield [field, wire, view.getFloat64(p, true)];
      pos = p + 8;
    } else if (wire === 5) {
      if (p + 4 > b.length) throw new Error(`${where}: truncated 32-bit field ${field}`);
      yield [field, wire, view.getFloat32(p, true)];
      pos = p + 4;
    } else if (wire === 2) {
      const [n, q] = readVarint(b, p, where);
      if (q + n > b.length) throw new Error(`${where}: field ${field} runs past the end of its message`);
      yield [field, wire, b.subarray(q, q + n)];
      pos = q + n;
    } else throw new Error(`${where}: unsupported wire type ${wire} (field ${field})`);
  }
}

/**
 * Reads the scalar events of an event file (the file-version record and non-scalar summaries are skipped).
 * Checks both CRCs of every record; a torn last record ends the file, any other damage is an error naming the
 * file and the byte offset.
 */
export function readTensorBoardScalars(path: string): ScalarEvent[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw fileError(path, 'reading', err);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const events: ScalarEvent[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) break; // torn header
    const length = Number(view.getBigUint64(pos, true));
    if (view.getUint32(pos + 8, true) !== maskedCrc32c(bytes.subarray(pos, pos + 8))) {
      throw new Error(`${path}: byte ${pos}: the record length's CRC does not match (not a TFRecord file, or damaged)`);
    }
    const end = pos + 12 + length + 4;
    if (end > bytes.length) break; // torn record
    const data = bytes.subarray(pos + 12, pos + 12 + length);
    if (view.getUint32(pos + 12 + length, true) !== maskedCrc32c(data)) {
      throw new Error(`${path}: byte ${pos}: the record data's CRC does not match (damaged)`);
    }
    const where = `${path}: record at byte ${pos}`;
    const event: ScalarEvent = { step: 0, wallTime: 0, scalars: {} };
    let summary = false;
    for (const [field, , value] of fields(data, where)) {
      if (field === 1) event.wallTime = value as number;
      else if (field === 2) event.step = value as number;
      else if (field === 5) {
        summary = true;
        for (const [vf, , v] of fields(value as Uint8Array, `${where}: summary`)) {
          if (vf !== 1) continue;
          let tag = '';
          let scalar: number | undefined;
          for (const [f, , x] of fields(v as Uint8Array, `${where}: summary value`)) {
            if (f === 1) tag = decoder.decode(x as Uint8Array);
            else if (f === 2) scalar = x as number;
          }
          if (scalar !== undefined) event.scalars[tag] = scalar;
        }
      }
    }
    if (summary) events.push(event);
    pos = end;
  }
  return events;
}
