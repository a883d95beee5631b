/**
 * The safetensors file format (the format PyTorch users load with `safetensors.torch.load_file`), written and
 * read here without dependencies:
 *
 * ```
 * [8 bytes]  N, the header length, unsigned 64-bit little-endian
 * [N bytes]  a UTF-8 JSON object, padded with spaces to a multiple of 8 bytes:
 *              { "<tensor name>": { "dtype": "F32", "shape": [3, 3, 5, 32], "data_offsets": [begin, end] }, ...,
 *                "__metadata__": { "<key>": "<string value>", ... } }
 * [rest]     the tensors' raw little-endian bytes, row-major (C order), back to back; data_offsets are byte
 *            offsets relative to the start of this section, and every byte belongs to exactly one tensor
 * ```
 * Supported dtypes: F32, F64, I32, I64 (read as numbers), U8, BOOL. Metadata values must be strings.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileAtomic } from '../streams/atomic.js';

export type SafetensorsDtype = 'F32' | 'F64' | 'I32' | 'I64' | 'U8' | 'BOOL';

/** One tensor as stored: dtype, shape and its values. */
export interface StoredTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

export interface SafetensorsContent {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1, BOOL: 1 };

function checkHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');
}

/** Serialises tensors and metadata into one safetensors buffer. */
export function encodeSafetensors(tensors: Map<string, StoredTensor>, metadata: Record<string, string> = {}): Buffer {
  checkHost();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is reserved and cannot name a tensor');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count) {
      throw new Error(`safetensors: tensor "${name}" has ${t.data.length} values for shape [${t.shape}] (${count})`);
    }
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, count * BYTES[t.dtype]);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([head, Buffer.from(json, 'utf8'), ...parts]);
}

/** Parses a safetensors buffer; `source` names the file in errors. Tensor data is copied out of `bytes`. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors buffer'): SafetensorsContent {
  checkHost();
  const fail = (where: string, what: string): never => {
    throw new Error(`${source}: ${where}: ${what}`);
  };
  if (bytes.length < 8) fail('file', `too short for a safetensors header (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > bytes.length) fail('header length', `${n} bytes announced, only ${bytes.length - 8} present`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8'));
  } catch (err) {
    fail('header', `not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header', 'expected a JSON object');
  const entries = header as Record<string, unknown>;
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, StoredTensor>();
  const spans: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(entries)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) fail('__metadata__', 'expected an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k}`, `expected a string, got ${typeof v}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e.dtype as SafetensorsDtype;
    if (typeof dtype !== 'string' || !(dtype in BYTES)) {
      fail(`${name}.dtype`, `expected one of ${Object.keys(BYTES).join(', ')}, got ${JSON.stringify(e.dtype)}`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
      fail(`${name}.shape`, `expected an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isInteger(o) || o < 0)) {
      fail(`${name}.data_offsets`, `expected [begin, end], got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype]) {
      fail(`${name}.data_offsets`, `span of ${end - begin} bytes for ${dtype}[${shape}] (${count * BYTES[dtype]} expected)`);
    }
    if (end > dataLength) fail(`${name}.data_offsets`, `end ${end} past the data section (${dataLength} bytes)`);
    spans.push([begin, end, name]);
    // Uint8Array's slice copies (Buffer's would return a view into a shared pool).
    const copy = Uint8Array.prototype.slice.call(bytes, dataStart + begin, dataStart + end).buffer;
    const data =
      dtype === 'F32'
        ? new Float32Array(copy)
        : dtype === 'F64'
          ? new Float64Array(copy)
          : dtype === 'I32'
            ? new Int32Array(copy)
            : dtype === 'I64'
              ? new BigInt64Array(copy)
              : new Uint8Array(copy);
    tensors.set(name, { dtype, shape: shape as number[], data });
  }
  spans.sort((a, b) => a[0] - b[0]);
  let cursor = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== cursor) fail(`${name}.data_offsets`, `starts at ${begin}, expected ${cursor} (gap or overlap)`);
    cursor = end;
  }
  if (cursor !== dataLength) fail('data section', `${dataLength - cursor} trailing bytes belong to no tensor`);
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (`writeFileAtomic`: temporary name beside it, fsync, rename, fsync of the folder). */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, StoredTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads a whole safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  return decodeSafetensors(await readFile(path), path);
}

/** The id of a weights file: the first 16 hex digits of the SHA-256 of its bytes (runs record each other's ids). */
export async function weightsId(path: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  return createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 16);
}
