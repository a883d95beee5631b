/**
 * Stage-core benchmarks: per-item overhead of a 5-stage map pipeline against the same chain of ix `map`
 * operators and a plain loop, and the throughput of the worker-pool map moving 1 MB Float32Array items.
 */
import { map as ixMap } from 'ix/asynciterable/operators';
import { pipe, map, workerMap, siblingModule, drain, type Stage } from '../src/index.js';

const print = (figure: string, value: number, unit: string, extra: Record<string, unknown> = {}): void =>
  console.log(JSON.stringify({ bench: 'streams', figure, value: Number(value.toPrecision(4)), unit, ...extra }));

async function* numbers(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

async function timeChain(n: number, chain: (s: AsyncIterable<number>) => AsyncIterable<number>): Promise<number> {
  let best = Infinity;
  for (let rep = 0; rep < 7; rep++) {
    const t0 = process.hrtime.bigint();
    let sum = 0;
    for await (const x of chain(numbers(n))) sum += x;
    const ns = Number(process.hrtime.bigint() - t0);
    if (sum < 0) throw new Error('unreachable');
    best = Math.min(best, ns);
  }
  return best / n;
}

const N = 200_000;
const STAGES = 5;
const inc = (x: number): number => x + 1;
const base = await timeChain(N, (s) => s);
const ours = await timeChain(N, (s) => {
  let out = s;
  for (let k = 0; k < STAGES; k++) out = map(inc)(out);
  return out;
});
const viaIx = await timeChain(N, (s) => {
  let out: AsyncIterable<number> = s;
  for (let k = 0; k < STAGES; k++) out = (ixMap(inc) as Stage<number, number>)(out);
  return out;
});
const loop = await timeChain(N, (s) => ({
  async *[Symbol.asyncIterator]() {
    for await (const x of s) {
      let y = x;
      for (let k = 0; k < STAGES; k++) y = inc(y);
      yield y;
    }
  },
}));
const perStage = (total: number): number => (total - base) / STAGES;
print('map pipeline overhead', perStage(ours), 'ns/item/stage', { stages: STAGES, items: N });
print('ix map chain overhead', perStage(viaIx), 'ns/item/stage', { stages: STAGES, items: N });
print('plain loop overhead', perStage(loop), 'ns/item/stage', { stages: STAGES, items: N });
print('overhead ratio wellspring/ix', perStage(ours) / perStage(viaIx), 'ratio', { target: '<= 1' });

// Worker-pool map moving 1 MB items. Buffers circulate (the results' arrays are fed back as new items), so
// the figure is the cost of moving data between threads, not of allocating it.
const ITEMS = 3000;
const BYTES = 1 << 20;
const worker = siblingModule(import.meta.url, 'workers/touch');
for (const transfer of [true, false]) {
  const free: Float32Array[] = Array.from({ length: 16 }, () => new Float32Array(BYTES / 4));
  async function* items(): AsyncGenerator<{ data: Float32Array }> {
    for (let i = 0; i < ITEMS; i++) yield { data: free.pop() ?? new Float32Array(BYTES / 4) };
  }
  // warm the pool's module cache and threads once
  await drain(pipe(items(), workerMap({ filename: worker, threads: 2 })));
  const t0 = performance.now();
  let n = 0;
  for await (const out of pipe(items(), workerMap<{ data: Float32Array }, { data: Float32Array }>({ filename: worker, threads: 2, transfer }))) {
    n++;
    free.push(out.data);
  }
  const seconds = (performance.now() - t0) / 1000;
  const mode = transfer ? 'transfer' : 'copy';
  print(`workerMap 1MB items (${mode})`, n / seconds, 'items/s', { threads: 2, items: ITEMS, note: 'includes pool start-up' });
  // Each item crosses the thread boundary twice (there and back).
  print(`workerMap 1MB items (${mode}) bandwidth`, (2 * n * BYTES) / seconds / 1e9, 'GB/s', { note: 'both directions' });
}
