// Errors name the stage where they started and close upstream; ordered stages keep input order under random delays.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  pipe, map, batch, prefetch, concurrentMap, workerMap, merge, zip, broadcast, collect, drain, siblingModule, StageError,
} from '../../src/index.js';
import { counting, jitter } from './helpers.js';

const workerFile = siblingModule(import.meta.url, 'workers/double');
type Task = { index: number; data: Float32Array; delayMs?: number; fail?: boolean; crash?: boolean };
type Result = { index: number; data: Float32Array };

async function failure(p: Promise<unknown>): Promise<StageError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof StageError)) throw new Error(`expected a StageError, got ${String(err)}`);
  return err;
}

t.test('an error in a middle stage names it and closes the source', async (t) => {
  const src = counting(100);
  const err = await failure(
    drain(pipe(src, map((x: number) => x), prefetch(3), concurrentMap(async (x: number) => {
      if (x === 7) throw new Error('item 7 is bad');
      return x;
    }, { concurrency: 2, name: 'decode' }), batch(4))),
  );
  t.equal(err.stage, 'decode');
  t.match(err.message, /item 7 is bad/);
  await sleep(10);
  t.ok(src.closed, 'source closed');
});

t.test('an error in the source is blamed on the source, not on the stages it passes through', async (t) => {
  async function* broken() {
    yield 1;
    throw new Error('disk on fire');
  }
  const err = await failure(drain(pipe(broken(), map((x: number) => x, 'first'), batch(2), prefetch(2))));
  t.equal(err.stage, 'source');
  t.match(err.message, /disk on fire/);
});

t.test('combinators name the failing input', async (t) => {
  async function* broken() {
    yield 1;
    throw new Error('nope');
  }
  const other = counting(50);
  const err = await failure(drain(merge(other, broken())));
  t.equal(err.stage, 'source 1');
  t.ok(other.closed, 'the other input was closed');
  t.equal((await failure(drain(zip(counting(5), broken())))).stage, 'source 1');
  const [a, b] = broadcast(broken(), 2);
  const errs = await Promise.all([failure(drain(a!)), failure(drain(b!))]);
  t.same(errs.map((e) => e.stage), ['broadcast source', 'broadcast source'], 'every consumer sees the error');
});

t.test('a worker that throws rejects with the stage name; a crashed worker does not hang', async (t) => {
  const tasks = (bad: Partial<Task>) =>
    Array.from({ length: 12 }, (_, i): Task => ({ index: i, data: new Float32Array(4), ...(i === 5 ? bad : {}) }));
  const thrown = await failure(drain(pipe(tasks({ fail: true }), workerMap<Task, Result>({ filename: workerFile, threads: 2, name: 'encode' }))));
  t.equal(thrown.stage, 'encode');
  t.match(thrown.message, /bad item 5/);
  const crashed = await failure(drain(pipe(tasks({ crash: true }), workerMap<Task, Result>({ filename: workerFile, threads: 2 }))));
  t.equal(crashed.stage, 'workerMap');
  t.match(crashed.message, /exit|terminated|code 3/i);
});

t.test('ordered stages keep input order under random delays', async (t) => {
  const n = 60;
  const delays = jitter(11, 6);
  const viaConcurrent = await collect(pipe(counting(n), concurrentMap(async (x: number) => {
    await sleep(delays());
    return x;
  }, { concurrency: 5 })));
  t.same(viaConcurrent, Array.from({ length: n }, (_, i) => i), 'concurrentMap');
  const viaPrefetch = await collect(pipe(counting(n, { delayMs: jitter(3, 3) }), prefetch(4), map(async (x: number) => {
    await sleep(delays());
    return x;
  })));
  t.same(viaPrefetch, Array.from({ length: n }, (_, i) => i), 'prefetch');
  const d = jitter(5, 8);
  const tasks = Array.from({ length: 24 }, (_, i): Task => ({ index: i, data: new Float32Array([i]), delayMs: d() }));
  const viaWorkers = await collect(pipe(tasks, workerMap<Task, Result>({ filename: workerFile, threads: 2, concurrency: 6 })));
  t.same(viaWorkers.map((r) => r.index), tasks.map((_, i) => i), 'workerMap');
  t.same(viaWorkers.map((r) => r.data[0]), tasks.map((_, i) => 2 * i), 'workerMap results');
});

t.test('workerMap moves typed arrays both ways instead of copying', async (t) => {
  const data = new Float32Array(1 << 18).fill(1.5);
  const [out] = await collect(pipe([{ index: 0, data }], workerMap<Task, Result>({ filename: workerFile, threads: 1 })));
  t.equal(data.byteLength, 0, 'the input array was transferred (detached here)');
  t.equal(out!.data.length, 1 << 18);
  t.equal(out!.data[123], 3);
  const kept = new Float32Array(8).fill(1);
  await collect(pipe([{ index: 0, data: kept }], workerMap<Task, Result>({ filename: workerFile, threads: 1, transfer: false })));
  t.equal(kept.length, 8, 'transfer: false copies instead');
});
