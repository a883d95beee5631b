/**
 * Worker-thread entry point for every HDF5 operation (h5wasm is synchronous, so it never runs on the main
 * thread). Each worker has its own wasm heap and its own open-file cache. Protocol: the parent posts
 * `{ id, op, args }`; the worker answers `{ id, ok: true, value }` (typed arrays in the value are transferred,
 * not copied) or `{ id, ok: false, message }`. The HDF5 library's error stack, which h5wasm prints through
 * console.error, is captured and summarised into the error message instead of being printed.
 */
import { parentPort } from 'node:worker_threads';

if (!parentPort) throw new Error('h5worker must run in a worker thread');
const port = parentPort;

const diag: string[] = [];
// h5wasm binds console.error when its module initialises: capture it before importing h5wasm.
console.error = (...parts: unknown[]) => {
  diag.push(parts.map(String).join(' '));
  if (diag.length > 200) diag.splice(0, diag.length - 200);
};

const { default: h5wasm } = await import('h5wasm/node');
await h5wasm.ready;
const { createReadOps } = await import('./read-ops.js');
const { createWriteOps } = await import('../../sinks/well/write-ops.js');

type Op = (args: never) => unknown;
const ops: Record<string, Op> = {
  ...(createReadOps(h5wasm, diag) as unknown as Record<string, Op>),
  ...(createWriteOps(h5wasm, diag) as unknown as Record<string, Op>),
  /** Test hook: makes this worker die the way a wasm abort would (an uncaught error outside any request). */
  __crash: (() => {
    setImmediate(() => {
      throw new Error('deliberate crash requested by a test');
    });
    return new Promise(() => {});
  }) as Op,
};

function transferables(value: unknown, out: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (depth > 4 || value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer && !out.includes(value.buffer)) out.push(value.buffer);
    return out;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) transferables(v, out, depth + 1);
  return out;
}

port.on('message', (msg: { id: number; op: string; args: unknown }) => {
  const op = ops[msg.op];
  if (!op) {
    port.postMessage({ id: msg.id, ok: false, message: `unknown HDF5 worker operation "${msg.op}"` });
    return;
  }
  diag.length = 0;
  try {
    const value = op(msg.args as never);
    if (value instanceof Promise) return; // only the crash hook
    port.postMessage({ id: msg.id, ok: true, value }, transferables(value));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    port.postMessage({ id: msg.id, ok: false, message });
  }
});
port.postMessage({ ready: true });
