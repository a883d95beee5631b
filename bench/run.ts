/**
 * `npm run bench`: runs every `bench/*.bench.js` module (compiled) in its own process, one after the other,
 * and passes their output through. Each benchmark prints one JSON line per figure:
 * `{"bench": "...", "figure": "...", "value": n, "unit": "...", ...context}`.
 * `npm run bench -- streams` runs only the benchmarks whose file name contains "streams".
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filter.length === 0 || filter.some((word) => f.includes(word)))
  .sort();
let failed = 0;
for (const file of files) {
  const run = spawnSync(process.execPath, ['--expose-gc', join(here, file)], { stdio: 'inherit' });
  if (run.status !== 0) {
    failed++;
    console.log(JSON.stringify({ bench: file, error: `exited with ${run.status ?? run.signal}` }));
  }
}
process.exitCode = failed > 0 ? 1 : 0;
