import t from 'tap';
import { map as ixMap, filter as ixFilter } from 'ix/asynciterable/operators';
import { pipe, compose, map, filter, tap, take, skip, batch, unbatch, window, StageError } from '../../src/index.js';
import { collect, reduce, forEach, drain } from '../../src/index.js';
import { counting } from './helpers.js';

t.test('map, filter, tap apply in order with indices', async (t) => {
  const seen: number[] = [];
  const out = await collect(
    pipe(
      [1, 2, 3, 4, 5, 6],
      map((x, i) => x * 10 + i),
      filter((x) => x % 20 !== 0),
      tap((x) => void seen.push(x)),
      map(async (x) => x + 0.5),
    ),
  );
  t.same(seen, [10, 21, 32, 43, 54, 65].filter((x) => x % 20 !== 0));
  t.same(out, seen.map((x) => x + 0.5));
});

t.test('async predicates and async taps are awaited', async (t) => {
  const out = await collect(pipe([1, 2, 3, 4], filter(async (x) => x > 2), tap(async () => undefined)));
  t.same(out, [3, 4]);
});

t.test('take closes the source after n items; skip drops n', async (t) => {
  const src = counting(100);
  t.same(await collect(pipe(src, take(3))), [0, 1, 2]);
  t.equal(src.pulled, 3, 'pulled exactly n');
  t.ok(src.closed, 'source finally ran');
  t.same(await collect(pipe([1, 2, 3, 4], skip(2))), [3, 4]);
  t.same(await collect(pipe([1, 2], take(0))), []);
  t.throws(() => take(-1), RangeError);
});

t.test('batch groups items, keeps or drops the last partial batch', async (t) => {
  t.same(await collect(pipe([1, 2, 3, 4, 5], batch(2))), [[1, 2], [3, 4], [5]]);
  t.same(await collect(pipe([1, 2, 3, 4, 5], batch(2, { dropLast: true }))), [[1, 2], [3, 4]]);
  t.same(await collect(pipe([1, 2, 3, 4, 5], batch(2), unbatch())), [1, 2, 3, 4, 5]);
  t.throws(() => batch(0), RangeError);
});

t.test('window yields sliding windows with a stride', async (t) => {
  const xs = [0, 1, 2, 3, 4, 5, 6];
  t.same(await collect(pipe(xs, window(3))), [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]);
  t.same(await collect(pipe(xs, window(3, 2))), [[0, 1, 2], [2, 3, 4], [4, 5, 6]]);
  t.same(await collect(pipe(xs, window(2, 3))), [[0, 1], [3, 4]]);
  t.same(await collect(pipe(xs, window(3, 3))), [[0, 1, 2], [3, 4, 5]]);
  const windows = await collect(pipe(xs, window(2)));
  windows[0]![0] = 99;
  t.equal(windows[1]![0], 1, 'windows are independent arrays');
});

t.test('ix operators are stages too, and compose mixes them', async (t) => {
  const stage = compose(ixMap((x: number) => x + 1), filter((x: number) => x % 2 === 0), ixFilter((x: number) => x > 2));
  t.same(await collect(pipe([1, 2, 3, 4, 5], stage)), [4, 6]);
});

t.test('sinks: reduce, forEach, drain', async (t) => {
  t.equal(await reduce([1, 2, 3], (acc, x) => acc + x, 0), 6);
  const seen: number[] = [];
  await forEach([1, 2], async (x, i) => void seen.push(x * 10 + i));
  t.same(seen, [10, 21]);
  t.equal(await drain(pipe(counting(7), map((x) => x))), 7);
  const ac = new AbortController();
  ac.abort();
  await t.rejects(drain(counting(3), ac.signal));
});

t.test('map keeps order when next() is called concurrently', async (t) => {
  const it = pipe(counting(5), map(async (x) => { await new Promise((r) => setTimeout(r, (5 - x) * 3)); return x; }))[Symbol.asyncIterator]();
  const results = await Promise.all([it.next(), it.next(), it.next(), it.next(), it.next(), it.next()]);
  t.same(results.map((r) => r.value), [0, 1, 2, 3, 4, undefined]);
  t.ok(results[5]!.done);
});

t.test('a thrown error names its stage', async (t) => {
  const err = await pipe([1, 2, 3], map((x) => { if (x === 2) throw new Error('boom'); return x; }, 'scale'), batch(2))
    [Symbol.asyncIterator]().next().catch((e: unknown) => e);
  t.type(err, StageError);
  t.equal((err as StageError).stage, 'scale');
  t.match((err as Error).message, /stage "scale" failed: boom/);
});

t.test('seed derivations are pure functions of their parts, with the arithmetic the runs were made with', async (t) => {
  const { mixSeed, copySeed, rolloutSeed, epochSeed, contextSeed, memberSeed, pairSeed, trajectorySeed, seededPermutation, ensembleMemberSeed } = await import('../../src/streams/random.js');
  t.equal(mixSeed(0, 1), mixSeed(0, 1));
  t.not(mixSeed(0, 1), mixSeed(1, 0), 'order matters');
  t.equal(rolloutSeed(2, 5), 2 * 7919 + 5);
  t.equal(rolloutSeed(-1, 0), (-7919 >>> 0), '32-bit');
  t.equal(copySeed(3, 4), 3 * 1_000_003 + 4);
  t.equal(epochSeed(5, 2), 5 + 2 * 0x9e3779b9);
  t.equal(contextSeed(7, 3), mixSeed(7 ^ 0x51ed, 3));
  t.equal(memberSeed(1), (2654435761 + 12345) >>> 0);
  t.equal(pairSeed(7, 3), mixSeed(7 ^ 0x9a1e, 3));
  t.not(pairSeed(1, 0), contextSeed(1, 0), 'pair noise and context draws are separate streams');
  t.equal(ensembleMemberSeed(7, 3), mixSeed(7 ^ 0xe45e, 3));
  t.equal(new Set(Array.from({ length: 1000 }, (_, m) => ensembleMemberSeed(7, m))).size, 1000, 'every member its own stream');
  t.not(ensembleMemberSeed(7, 0), ensembleMemberSeed(8, 0), 'and another per rollout seed');
  const s = trajectorySeed(2 ** 40 + 3, 9);
  t.ok(Number.isSafeInteger(s) && s >= 0 && s < 2 ** 53);
  t.not(trajectorySeed(1, 0), trajectorySeed(1, 1));
  const p = seededPermutation(50, 11);
  t.same([...p].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i), 'a permutation');
  t.same(seededPermutation(50, 11), p, 'reproducible');
});
