// The published shape: `import ... from 'wellspring-latent'` (the npm name; `wellspring` belongs to an
// unrelated package) resolves to the compiled root entry, and the `wellspring`
// binary lists its subcommands. Needs the build (`npm test` runs it first); skipped with a reason without it.
import t from 'tap';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const built = existsSync(`${root}dist/src/index.js`) && existsSync(`${root}dist/pipelines/cli.js`);

t.test('the root entry exports the public API', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const api = (await import('wellspring-latent')) as Record<string, unknown>;
  for (const name of ['pipe', 'compose', 'map', 'batch', 'window', 'shuffle', 'prefetch', 'concurrentMap', 'merge', 'zip', 'broadcast', 'workerMap', 'progress', 'drain', 'collect', 'reduce', 'forEach', 'selectBackend', 'ensureBackend', 'loadAutoencoder', 'loadEmulator', 'encodeTrajectories', 'rolloutLatents', 'decodeStates', 'withTruth', 'readLatentCache', 'writeLatentCache', 'reportSink']) {
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

t.test('the package ships the build, docs and the native kernels\' sources, not TypeScript sources, tests, fixtures or benchmarks', async (t) => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr.slice(-400));
  const [pack] = JSON.parse(r.stdout) as { name: string; files: { path: string }[] }[];
  t.equal(pack!.name, 'wellspring-latent');
  const paths = pack!.files.map((f) => f.path);
  t.ok(paths.includes('package.json') && paths.includes('README.md'), 'package.json and README');
  if (built) t.ok(paths.includes('dist/src/index.js') && paths.includes('dist/pipelines/cli.js'), 'the compiled entry and CLI');
  // The install script builds the native kernels from their C/C++ sources, so those (and only those) ship.
  const nativeInputs = (p: string) => p === 'scripts/build-native.mjs' || /^src\/models\/backend\/(native|wasm)\/[^/]+\.(cc|c|h)$/.test(p);
  t.ok(paths.includes('scripts/build-native.mjs') && paths.includes('src/models/backend/native/gemm.cc') && paths.includes('src/models/backend/wasm/winograd.c'), 'the native build script and its C/C++ sources');
  const stray = paths.filter((p) => (/^(test|bench|src|pipelines|scripts)\//.test(p) && !nativeInputs(p)) || p.startsWith('dist/bench/') || p.includes('fixtures'));
  t.same(stray, [], 'no TypeScript sources, tests, fixtures or benchmarks');
});
