import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipe, shuffle, merge, interleave, zip, broadcast, collect, take } from '../../src/index.js';
import { counting, endless, jitter } from './helpers.js';

t.test('seeded shuffle: a permutation, reproducible for a seed, different across seeds', async (t) => {
  const xs = Array.from({ length: 500 }, (_, i) => i);
  const a = await collect(pipe(xs, shuffle(64, 42)));
  const b = await collect(pipe(xs, shuffle(64, 42)));
  const c = await collect(pipe(xs, shuffle(64, 43)));
  t.same([...a].sort((p, q) => p - q), xs, 'permutation');
  t.same(a, b, 'same seed, same order');
  t.not(a.join(), c.join(), 'another seed, another order');
  t.not(a.join(), xs.join(), 'actually shuffled');
  const full = await collect(pipe(xs.slice(0, 10), shuffle(100, 1)));
  t.same([...full].sort((p, q) => p - q), xs.slice(0, 10), 'buffer larger than the stream');
});

t.test('a buffer as large as the stream shuffles uniformly (position of item 0 over many seeds)', async (t) => {
  const n = 8;
  const counts = new Array(n).fill(0);
  const trials = 4000;
  for (let s = 0; s < trials; s++) {
    const out = await collect(pipe(Array.from({ length: n }, (_, i) => i), shuffle(n, s)));
    counts[out.indexOf(0)]++;
  }
  // chi-square with 7 degrees of freedom: 99.9% quantile is 24.3
  const expected = trials / n;
  const chi2 = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
  t.ok(chi2 < 24.3, `chi2 ${chi2.toFixed(2)} < 24.3`);
});

t.test('merge yields every item of every source, each source in its own order', async (t) => {
  const out = await collect(merge(counting(['a0', 'a1', 'a2'], { delayMs: jitter(1, 5) }), counting(['b0', 'b1'], { delayMs: jitter(2, 5) }), []));
  t.same([...out].sort(), ['a0', 'a1', 'a2', 'b0', 'b1']);
  t.same(out.filter((x) => x.startsWith('a')), ['a0', 'a1', 'a2']);
  const a = endless();
  const b = endless();
  let k = 0;
  for await (const _ of merge(a, b)) if (++k === 20) break;
  t.ok(a.pulled + b.pulled <= 20 + 2, 'merge pulls at most one ahead per source');
});

t.test('interleave is round-robin; zip pairs and stops at the shortest', async (t) => {
  t.same(await collect(interleave([1, 2, 3], ['a'], [10, 20])), [1, 'a', 10, 2, 20, 3]);
  const short = counting(2);
  const long = counting(10);
  t.same(await collect(zip(short, long, ['x', 'y', 'z'])), [[0, 0, 'x'], [1, 1, 'y']]);
  t.ok(long.closed, 'zip closes the longer sources');
});

t.test('broadcast: every consumer sees every item; the slowest gates the source', async (t) => {
  const src = endless();
  const [fast, slow] = broadcast(src, 2, { bufferSize: 5 });
  let fastSeen = 0;
  let slowSeen = 0;
  let worstLead = 0;
  const fastRun = (async () => {
    for await (const x of fast!) {
      t.equal(x, fastSeen, 'fast in order');
      fastSeen++;
      worstLead = Math.max(worstLead, src.pulled - slowSeen);
      if (fastSeen === 40) break;
    }
  })();
  const slowRun = (async () => {
    for await (const x of slow!) {
      t.equal(x, slowSeen, 'slow in order');
      slowSeen++;
      await sleep(2);
      worstLead = Math.max(worstLead, src.pulled - slowSeen);
      if (slowSeen === 60) break;
    }
  })();
  await Promise.all([fastRun, slowRun]);
  t.ok(worstLead <= 5, `source never ran more than bufferSize ahead of the slowest (${worstLead})`);
  t.ok(src.closed);
  const [only] = broadcast([1, 2], 1);
  t.same(await collect(only!), [1, 2]);
  t.throws(() => {
    const [x] = broadcast([1], 1);
    x![Symbol.asyncIterator]();
    x![Symbol.asyncIterator]();
  }, /only once/);
  const [p, q] = broadcast(counting(7), 2, { bufferSize: 2 });
  const both = await Promise.all([collect(p!), collect(pipe(q!, take(7)))]);
  t.same(both[0], both[1]);
});
