/**
 * Worker-thread entry point for every HDF5 operation (h5wasm is synchronous, so it never runs on the main
 * thread). Each worker has its own wasm heap and its own open-file cache. Protocol (typed by `H5Ops` in
 * `protocol.ts`): the parent posts `{ id, op, args }`; the worker answers `{ id, ok: true, value }` (typed
 * arrays in the value are transferred, not copied) or `{ id, ok: false, message }`. The HDF5 library's error stack, which h5wasm prints through
 * console.error, is captured and summarised into the error message instead of being printed.
 */
import { parentPort } from 'node:worker_threads';
import fs from 'node:fs';
import type { H5Handler, H5Handlers, H5OpName, H5Request, H5Response, H5Result } from './protocol.js';
import type { H5Module } from './read-ops.js';

if (!parentPort) throw new Error('h5worker must run in a worker thread');
const port = parentPort;

/** HDF5 error-stack text written since the current request started, as complete lines. */
const diag: string[] = [];
let partial = '';
const remember = (text: string) => {
  const lines = (partial + text).split('\n');
  partial = lines.pop()!;
  diag.push(...lines.filter(Boolean));
  if (diag.length > 200) diag.splice(0, diag.length - 200);
};
// h5wasm binds console.error when its module initialises: capture it before importing h5wasm.
console.error = (...parts: unknown[]) => remember(parts.map(String).join(' '));
// With NODERAWFS the HDF5 error stack goes to file descriptor 2 through fs.writeSync: keep it for messages.
const writeSync = fs.writeSync;
(fs as { writeSync: unknown }).writeSync = (fd: number, buffer: unknown, ...rest: unknown[]): number => {
  if (fd !== 2) return (writeSync as (...a: unknown[]) => number)(fd, buffer, ...rest);
  if (typeof buffer === 'string') {
    remember(buffer);
    return Buffer.byteLength(buffer);
  }
  const bytes = buffer as Uint8Array;
  const offset = typeof rest[0] === 'number' ? rest[0] : 0;
  const length = typeof rest[1] === 'number' ? rest[1] : bytes.length - offset;
  remember(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('utf8'));
  return length;
};

const { default: h5wasm } = await import('h5wasm/node');
const h5module = await h5wasm.ready;
const { createReadOps } = await import('./read-ops.js');
const { createWriteOps } = await import('./write-ops.js');

/** Thrown by an operation that must never be answered (the crash hook). */
const NO_ANSWER = Symbol('no answer');

/** The dispatch table: every operation of `H5Ops`, each checked against its argument and result types. */
const ops: H5Handlers = {
  ...createReadOps(h5wasm, diag, h5module as unknown as H5Module),
  ...createWriteOps(h5wasm, diag),
  __diag: () => [...diag],
  /** Test hook: makes this worker die the way a wasm abort would (an uncaught error outside any request). */
  __crash: () => {
    setImmediate(() => {
      throw new Error('deliberate crash requested by a test');
    });
    throw NO_ANSWER;
  },
};

function isOp(name: string): name is H5OpName {
  return Object.prototype.hasOwnProperty.call(ops, name);
}

/** Runs one request through the table (`op` and `args` of a request always belong to the same operation). */
function run<K extends H5OpName>(request: H5Request<K>): H5Result<K> {
  const handler: H5Handler<K> = ops[request.op];
  return handler(request.args);
}

function transferables(value: unknown, out: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (depth > 4 || value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer && !out.includes(value.buffer)) out.push(value.buffer);
    return out;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) transferables(v, out, depth + 1);
  return out;
}

const answer = (response: H5Response, transfer: ArrayBuffer[] = []) => port.postMessage(response, transfer);

port.on('message', (msg: { id: number; op: string; args: unknown }) => {
  const name = msg.op;
  if (!isOp(name)) {
    answer({ id: msg.id, ok: false, message: `unknown HDF5 worker operation "${name}"` });
    return;
  }
  if (name !== '__diag') {
    diag.length = 0;
    partial = '';
  }
  try {
    // the message came from H5Worker.call, which typed `args` by `op`
    const value = run(msg as H5Request);
    answer({ id: msg.id, ok: true, value }, transferables(value));
  } catch (err) {
    if (err === NO_ANSWER) return;
    const message = err instanceof Error ? err.message : String(err);
    answer({ id: msg.id, ok: false, message });
  }
});
port.postMessage({ ready: true });
