/**
 * Moving typed arrays between threads without copying: find the ArrayBuffers behind the typed arrays of a
 * value, and wrap a worker's result so piscina transfers them back.
 */
import { Piscina } from 'piscina';

/**
 * The distinct ArrayBuffers behind the typed arrays (and bare ArrayBuffers) in `value`, searched through arrays
 * and plain objects up to `depth` levels. SharedArrayBuffers are skipped (they are shared, not moved).
 */
export function transferablesOf(value: unknown, depth = 3): ArrayBuffer[] {
  const found = new Set<ArrayBuffer>();
  const visit = (v: unknown, level: number): void => {
    if (v === null || typeof v !== 'object') return;
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof ArrayBuffer) found.add(v.buffer);
      return;
    }
    if (v instanceof ArrayBuffer) {
      found.add(v);
      return;
    }
    if (level >= depth) return;
    const values = Array.isArray(v) ? v : Object.getPrototypeOf(v) === Object.prototype ? Object.values(v) : [];
    for (const item of values) visit(item, level + 1);
  };
  visit(value, 0);
  return [...found];
}

/**
 * For use inside a worker module: `return transferResult({ frames, stats })` sends the result back with its
 * typed arrays moved, not copied (they become unusable in the worker).
 */
export function transferResult<T>(value: T): T {
  const movable = { [Piscina.transferableSymbol]: transferablesOf(value), [Piscina.valueSymbol]: value };
  return Piscina.move(movable as unknown as Parameters<typeof Piscina.move>[0]) as unknown as T;
}
