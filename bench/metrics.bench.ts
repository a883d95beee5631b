/**
 * Metric sink benchmarks (one JSON line per figure):
 * - memory: heap held by the reducer after 4, 16 and 64 trajectories (after GC; run with --expose-gc, as
 *   bench/run.ts does), and the reducer's own count of numbers held: flat in the number of trajectories;
 * - throughput: frames scored per second for 64x64 (M = 8) and 256x256 (M = 16) frames, with and without the
 *   Wasserstein-1 sort, on 1 and 2 worker threads, and the time to render a report.
 * The machine is shared (2 cores, several engineers at once): timings are noisy.
 */
import { MetricsReducer, reduceMetrics, scoreFrame, summarize, syntheticRollouts, type RolloutChunk } from '../src/sinks/metrics/index.js';
import { renderReport } from '../src/sinks/report/index.js';

const bench = 'metrics';
const emit = (figure: string, value: number, unit: string, context: Record<string, unknown> = {}): void =>
  console.log(JSON.stringify({ bench, figure, value: Number(value.toPrecision(4)), unit, ...context }));

const gc = (globalThis as { gc?: () => void }).gc;
const heapMb = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

async function memory(): Promise<void> {
  const shape = { leads: 20, members: 4, height: 32, width: 32, fields: ['a', 'b'], chunk: 5 };
  const before = heapMb();
  const heaps: number[] = [];
  const counts = [4, 16, 64];
  for (const trajectories of counts) {
    const reducer = new MetricsReducer({ snapshotLeads: [1, 20] });
    for await (const chunk of syntheticRollouts({ ...shape, trajectories, seed: trajectories })) reducer.add(chunk);
    const heap = heapMb() - before;
    heaps.push(heap);
    const streamedMb = (trajectories * shape.leads * shape.height * shape.width * shape.fields.length * (shape.members + 1) * 4) / 2 ** 20;
    emit('reducer_heap', heap, 'MiB', { trajectories, state_numbers: reducer.stateSize(), streamed_MiB: Number(streamedMb.toFixed(1)), gc: Boolean(gc) });
    // Keep the reducer alive until measured.
    if (reducer.result().rows.length === 0) throw new Error('no rows');
  }
  const slope = (heaps[2]! - heaps[0]!) / (counts[2]! - counts[0]!);
  emit('reducer_heap_per_trajectory', slope * 1024, 'KiB/trajectory', { note: 'about 0 when flat; noise is GC slack' });
}

async function throughput(): Promise<void> {
  for (const { size, members, frames } of [
    { size: 64, members: 8, frames: 64 },
    { size: 256, members: 16, frames: 6 },
  ]) {
    for (const skipW1 of [false, true]) {
      const items: RolloutChunk[] = [];
      for await (const c of syntheticRollouts({ trajectories: 1, leads: frames, members, height: size, width: size, fields: ['a'] })) items.push(c);
      const reducer = new MetricsReducer({ skipW1, noSnapshots: true });
      const start = performance.now();
      for (const c of items) reducer.add(c);
      const seconds = (performance.now() - start) / 1000;
      emit('frames_per_second', frames / seconds, 'frames/s', { grid: `${size}x${size}`, members, w1: !skipW1 });
      emit('input_rate', (frames * size * size * (members + 1) * 4) / 2 ** 20 / seconds, 'MiB/s', { grid: `${size}x${size}`, members, w1: !skipW1 });
    }
  }
  // The same 64x64 stream scored by reduceMetrics on 1 and 2 worker threads (the machine has 2 cores).
  const frames = 96;
  const chunks: RolloutChunk[] = [];
  for await (const c of syntheticRollouts({ trajectories: 4, leads: frames / 4, members: 8, height: 64, width: 64, fields: ['a'], chunk: 6 })) chunks.push(c);
  for (const threads of [1, 2]) {
    const start = performance.now();
    await reduceMetrics(chunks, { threads, noSnapshots: true });
    const seconds = (performance.now() - start) / 1000;
    emit('frames_per_second_threads', frames / seconds, 'frames/s', { grid: '64x64', members: 8, threads, note: 'input generated beforehand; includes starting the pool' });
  }
  // One Euler-sized frame (512 x 512, 16 members) to put the per-frame cost in context.
  const n = 512 * 512;
  const truth = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 0.001));
  const members = Array.from({ length: 16 }, (_, m) => Float64Array.from(truth, (v, i) => v + 0.01 * Math.sin(i * 0.37 + m)));
  const start = performance.now();
  scoreFrame(truth, members, [512, 512]);
  emit('frame_512x512_m16', (performance.now() - start) / 1000, 's', { note: 'one field, one lead time, all metrics' });
}

async function report(): Promise<void> {
  const reducer = new MetricsReducer({ snapshotLeads: [1, 50, 100] });
  for await (const c of syntheticRollouts({ trajectories: 2, leads: 100, members: 4, height: 32, width: 32, fields: ['density', 'pressure', 'energy'], chunk: 20 })) reducer.add(c);
  const saved = summarize(reducer.result());
  const start = performance.now();
  const html = await renderReport(saved);
  emit('report_render', (performance.now() - start) / 1000, 's', { leads: 100, fields: 3, html_MiB: Number((html.length / 2 ** 20).toFixed(2)) });
}

await memory();
await throughput();
await report();
