// Backpressure: after k items are consumed, a counting source has been pulled at most k + the stage's declared
// bound (in source items), however slow the consumer; run-ahead stages never exceed their bound.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipe, map, filter, batch, window, prefetch, concurrentMap, shuffle, type Stage } from '../../src/index.js';
import { endless, jitter } from './helpers.js';

/** Consumes `k` items slowly from `stage(endless source)` and returns the largest pulled - consumed gap seen. */
async function maxLead<B>(stage: Stage<number, B>, k: number, itemsPerOutput: number, delay?: () => number) {
  const src = endless();
  let consumed = 0;
  let worst = -Infinity;
  for await (const _ of pipe(src, stage)) {
    consumed++;
    if (delay) await sleep(delay());
    else await sleep(0);
    worst = Math.max(worst, src.pulled - consumed * itemsPerOutput);
    if (consumed >= k) break;
  }
  await sleep(5);
  worst = Math.max(worst, src.pulled - consumed * itemsPerOutput);
  t.ok(src.closed, 'source closed after break');
  return worst;
}

t.test('pass-through stages pull one item per item', async (t) => {
  t.equal(await maxLead(map((x: number) => x), 50, 1), 0);
  t.equal(await maxLead(filter(() => true), 50, 1), 0);
});

t.test('batch and window pull only what they yield', async (t) => {
  t.equal(await maxLead(batch(4), 20, 4), 0);
  // a window of 5 with stride 1 needs 4 extra items before its first output
  t.equal(await maxLead(window(5), 20, 1), 4);
  t.equal(await maxLead(shuffle(8, 1), 30, 1), 8);
});

for (const n of [1, 3, 8]) {
  t.test(`prefetch(${n}) runs at most ${n} ahead`, async (t) => {
    const lead = await maxLead(prefetch(n), 40, 1, jitter(n, 4));
    t.ok(lead <= n, `lead ${lead} <= ${n}`);
    t.ok(lead >= n - 1, `it does run ahead (lead ${lead})`);
  });
}

for (const c of [1, 4]) {
  t.test(`concurrentMap(concurrency ${c}) keeps at most ${c} in flight`, async (t) => {
    let running = 0;
    let peak = 0;
    const slow = async (x: number) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(2 + (x % 3));
      running--;
      return x;
    };
    const lead = await maxLead(concurrentMap(slow, { concurrency: c }), 30, 1);
    t.ok(peak <= c, `peak in flight ${peak} <= ${c}`);
    t.equal(peak, c, 'and uses all its slots');
    t.ok(lead <= c, `pulled ahead ${lead} <= ${c}`);
  });
}
