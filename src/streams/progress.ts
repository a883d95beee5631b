/**
 * Progress reporting and cancellation stages.
 */
import { StageError, named, type Stage } from './core.js';

export interface ProgressInfo {
  label: string;
  /** Items seen so far. */
  count: number;
  /** Expected total, when known. */
  total?: number;
  /** Seconds since the first pull. */
  elapsed: number;
  /** Items per second over the whole run. */
  rate: number;
  /** Estimated seconds left (needs `total`). */
  eta?: number;
  /** True on the final report. */
  done: boolean;
  /** What `detail` made of the latest item (e.g. `loss 0.0123`), shown at the end of the line. */
  detail?: string;
}

export interface ProgressOptions {
  /** What is counted, shown first on the line (default `items`). */
  label?: string;
  /** Expected number of items, for a percentage and an ETA. */
  total?: number;
  /** Minimum milliseconds between reports (default 1000). */
  intervalMs?: number;
  /**
   * Where reports go. Default: a line on stderr (rewritten in place on a terminal). Pass a function to receive
   * them instead, or `false` for none.
   */
  report?: ((info: ProgressInfo) => void) | false;
  /** Units counted per item (e.g. a batch's size), default 1. */
  weight?: (item: unknown) => number;
  /** A short text about the latest item, appended to each report (called only when a report is made). */
  detail?: (item: unknown) => string;
}

/** `1m05s`, `42s`, `2h03m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One human-readable progress line: `encode 120/400 (30%) 12.5/s elapsed 9s ETA 22s`. */
export function formatProgress(info: ProgressInfo): string {
  const rate = info.rate >= 100 ? info.rate.toFixed(0) : info.rate.toPrecision(3);
  const count = info.total !== undefined ? `${info.count}/${info.total} (${Math.floor((100 * info.count) / Math.max(info.total, 1))}%)` : `${info.count}`;
  const eta = info.done ? 'done' : info.eta !== undefined ? `ETA ${formatDuration(info.eta)}` : '';
  const detail = info.detail ? ` ${info.detail}` : '';
  return `${info.label} ${count} ${rate}/s elapsed ${formatDuration(info.elapsed)} ${eta}`.trimEnd() + detail;
}

function stderrReporter(): (info: ProgressInfo) => void {
  const tty = process.stderr.isTTY === true;
  return (info) => {
    const line = formatProgress(info);
    if (tty) process.stderr.write(`\r\x1b[K${line}${info.done ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  };
}

/**
 * Passes items through unchanged and reports progress (count, rate, ETA) at most every `intervalMs`, plus a
 * final report when the stream ends. Holds nothing (with `detail`, a reference to the latest item).
 */
export function progress<A>(options: ProgressOptions = {}): Stage<A, A> {
  const label = options.label ?? 'items';
  const interval = options.intervalMs ?? 1000;
  const report = options.report === false ? undefined : (options.report ?? stderrReporter());
  return named('progress', async function* (source) {
    const start = performance.now();
    let last = start;
    let count = 0;
    let latest: { item: unknown } | undefined;
    const info = (now: number, done: boolean): ProgressInfo => {
      const elapsed = (now - start) / 1000;
      const rate = elapsed > 0 ? count / elapsed : 0;
      const eta = options.total !== undefined && rate > 0 ? Math.max(options.total - count, 0) / rate : undefined;
      const detail = options.detail && latest ? options.detail(latest.item) : undefined;
      return { label, count, total: options.total, elapsed, rate, eta, done, ...(detail !== undefined ? { detail } : {}) };
    };
    for await (const item of source) {
      count += options.weight ? options.weight(item) : 1;
      if (options.detail) latest = { item };
      const now = performance.now();
      if (report && now - last >= interval) {
        last = now;
        report(info(now, false));
      }
      yield item;
    }
    report?.(info(performance.now(), true));
  });
}

/** The error a pipeline rejects with when its AbortSignal fires. */
export class AbortedError extends Error {
  override readonly name = 'AbortError';
  constructor(reason: unknown) {
    super(`aborted${reason instanceof Error ? `: ${reason.message}` : reason ? `: ${String(reason)}` : ''}`, {
      cause: reason,
    });
  }
}

/**
 * Stops the stream when `signal` aborts: the consumer's pending pull rejects at once with an AbortedError, and
 * the source is closed (its `finally` runs as soon as any pull in flight settles). Holds nothing.
 */
export function abortable<A>(signal: AbortSignal): Stage<A, A> {
  return (source) => ({
    async *[Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(new AbortedError(signal.reason));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => undefined);
      let pending: Promise<IteratorResult<A>> | undefined;
      let done = false;
      try {
        for (;;) {
          pending = it.next();
          const r = await Promise.race([pending, aborted]);
          pending = undefined;
          if (r.done) {
            done = true;
            return;
          }
          yield r.value;
        }
      } catch (err) {
        if (err instanceof AbortedError || err instanceof StageError) throw err;
        throw new StageError('source', err);
      } finally {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        if (!done) {
          // Do not make the consumer wait for a pull in flight: close the source once it settles.
          const close = (): Promise<unknown> => Promise.resolve(it.return?.()).catch(() => undefined);
          if (pending) void pending.then(close, close);
          else await close();
        }
      }
    },
  });
}
