// The published shape: `import ... from 'wellspring'` resolves to the compiled root entry, and the `wellspring`
// binary lists its subcommands. Needs the build (`npm test` runs it first); skipped with a reason without it.
import t from 'tap';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const built = existsSync(`${root}dist/src/index.js`) && existsSync(`${root}dist/pipelines/cli.js`);

t.test('the root entry exports the public API', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const api = (await import('wellspring')) as Record<string, unknown>;
  for (const name of ['pipe', 'compose', 'map', 'batch', 'window', 'shuffle', 'prefetch', 'concurrentMap', 'merge', 'zip', 'broadcast', 'workerMap', 'progress', 'drain', 'collect', 'reduce', 'forEach', 'selectBackend']) {
    t.type(api[name], 'function', name);
  }
});

t.test('the CLI prints its commands and rejects unknown ones', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const help = spawnSync(process.execPath, [`${root}dist/pipelines/cli.js`, '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /Usage: wellspring <command>/);
  const bad = spawnSync(process.execPath, [`${root}dist/pipelines/cli.js`, 'frobnicate'], { encoding: 'utf8' });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
});
