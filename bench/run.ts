/**
 * `npm run bench`: runs every `bench/*.bench.js` module (compiled) in its own process, one after the other,
 * and passes their output through. Each benchmark prints one JSON line per figure:
 * `{"bench": "...", "figure": "...", "value": n, "unit": "...", ...context}`.
 * `npm run bench -- streams` runs only the benchmarks whose file name contains "streams".
 * The 1-minute load average seen before the first benchmark goes to every benchmark in BENCH_START_LOAD (the load
 * rule of bench/conditions.ts judges the machine before the benchmarks, not after the previous one).
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filter.length === 0 || filter.some((word) => f.includes(word)))
  .sort();
const env = { ...process.env, BENCH_START_LOAD: process.env.BENCH_START_LOAD ?? String(loadavg()[0]) };
let failed = 0;
for (const file of files) {
  const run = spawnSync(process.execPath, ['--expose-gc', join(here, file)], { stdio: 'inherit', env });
  if (run.status !== 0) {
    failed++;
    console.log(JSON.stringify({ bench: file, error: `exited with ${run.status ?? run.signal}` }));
  }
}
process.exitCode = failed > 0 ? 1 : 0;
