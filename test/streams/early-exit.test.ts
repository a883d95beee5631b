// Early exit: leaving a pipeline (break, or an AbortSignal) runs every upstream finally, closes worker pools and
// leaves no live threads.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  pipe, map, filter, tap, batch, unbatch, window, prefetch, concurrentMap, shuffle, progress, abortable, workerMap,
  merge, zip, interleave, broadcast, take, siblingModule, AbortedError, drain,
} from '../../src/index.js';
import { counting, endless } from './helpers.js';

const workerFile = siblingModule(import.meta.url, 'workers/double');

function finallyProbe<A>(log: string[], name: string) {
  return (source: AsyncIterable<A>): AsyncIterable<A> => ({
    async *[Symbol.asyncIterator]() {
      try {
        yield* source;
      } finally {
        log.push(name);
      }
    },
  });
}

t.test('break runs every upstream finally through a long chain', async (t) => {
  const log: string[] = [];
  const src = endless();
  const chain = pipe(
    src,
    finallyProbe<number>(log, 'a'),
    map((x: number) => x + 1),
    prefetch(4),
    finallyProbe<number>(log, 'b'),
    concurrentMap(async (x: number) => x, { concurrency: 3 }),
    shuffle(4, 7),
    window(3),
    unbatch(),
    batch(2),
    filter(() => true),
    tap(() => undefined),
    progress({ report: false }),
    finallyProbe<number[]>(log, 'c'),
  );
  let n = 0;
  for await (const _ of chain) if (++n === 10) break;
  await sleep(10);
  t.ok(src.closed, 'source finally ran');
  t.same(log, ['a', 'b', 'c'], 'every stage closed (return() reaches the source first, then unwinds)');
});

t.test('an AbortSignal stops a pipeline at once and closes the source', async (t) => {
  const src = counting(1000, { delayMs: () => 5 });
  const ac = new AbortController();
  const seen: number[] = [];
  setTimeout(() => ac.abort(new Error('user pressed Ctrl-C')), 40);
  const err = await drain(pipe(src, tap((x: number) => void seen.push(x)), abortable(ac.signal))).catch((e: unknown) => e);
  t.type(err, AbortedError);
  t.match((err as Error).message, /Ctrl-C/);
  await sleep(20);
  t.ok(src.closed, 'source finally ran');
  t.ok(seen.length > 0 && seen.length < 1000);
});

t.test('combinators close all their inputs on early exit', async (t) => {
  const a = endless();
  const b = endless();
  for await (const _ of merge(a, b)) break;
  t.ok(a.closed && b.closed, 'merge');
  const c = endless();
  const d = endless();
  for await (const _ of zip(c, d)) break;
  t.ok(c.closed && d.closed, 'zip');
  const e = endless();
  const f = endless();
  // (a generator that was never pulled has no finally to run, so take one item from each)
  for await (const _ of pipe(interleave(e, f), take(2)));
  t.ok(e.closed && f.closed, 'interleave');
  const g = endless();
  const [x, y] = broadcast(g, 2, { bufferSize: 4 });
  for await (const _ of x!) break;
  t.notOk(g.closed, 'broadcast source stays open while a consumer remains');
  for await (const _ of pipe(y!, take(20)));
  t.ok(g.closed, 'closed when the last consumer leaves');
});

function liveWorkers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Worker' || r === 'MessagePort').length;
}

t.test('leaving a workerMap early destroys its pool: no live threads', async (t) => {
  const before = liveWorkers();
  const src = counting(Array.from({ length: 100 }, (_, i) => ({ index: i, data: new Float32Array(16).fill(i) })));
  let n = 0;
  for await (const out of pipe(src, workerMap<{ index: number; data: Float32Array }, { index: number; data: Float32Array }>({ filename: workerFile, threads: 2 }))) {
    t.equal(out.data[0], 2 * out.index);
    if (++n === 5) break;
  }
  t.ok(src.closed, 'source finally ran');
  await sleep(50);
  t.equal(liveWorkers(), before, 'no worker threads or ports left');
});
