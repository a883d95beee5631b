/**
 * The typed HDF5 worker protocol (protocol.ts): at compile time, `protocol-types.ts` is type-checked with the
 * project's compiler options (every `@ts-expect-error` in it must be an error, so a check that stops failing
 * fails here); at run time, requests go through the worker's table by name, results come back with their
 * types' shapes, and typed arrays handed over for transfer are moved, not copied.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { closeWellPool, H5Pool, H5Worker } from '../../src/formats/well/index.js';
import type { CreatePlan } from '../../src/formats/well/raw.js';
import { demoSpec, fixtures, tempDir } from './helpers.js';

t.teardown(closeWellPool);

const root = fileURLToPath(new URL('../../', import.meta.url));
const typesFile = fileURLToPath(new URL('./protocol-types.ts', import.meta.url));

function compilerOptions(): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  });
  return { ...parsed!.options, noEmit: true };
}

/** Type-checks `files` (with optional in-memory sources); returns `line: message` per diagnostic. */
function typeCheck(files: string[], virtual: Record<string, string> = {}): string[] {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name in virtual ? ts.createSourceFile(name, virtual[name]!, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name in virtual || fileExists(name);
  const program = ts.createProgram([...files, ...Object.keys(virtual)], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    return `${d.file?.fileName ?? ''}:${line}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

t.test('the operation map types calls end to end', (t) => {
  const expectations = readFileSync(typesFile, 'utf8').match(/@ts-expect-error/g)?.length ?? 0;
  t.ok(expectations >= 10, `protocol-types.ts holds ${expectations} expected errors`);
  t.same(typeCheck([typesFile]), [], 'protocol-types.ts compiles, and each expected error is one');

  // the check itself can fail: an unknown operation outside an @ts-expect-error is reported
  const probe = join(root, 'test/well/__protocol_probe__.ts');
  const diagnostics = typeCheck([], {
    [probe]: [
      "import type { H5Pool } from '../../src/formats/well/pool.js';",
      'export async function f(pool: H5Pool) {',
      "  const r = await pool.call('describe', { path: 'a' }, 'x');",
      '  const n: number = r;',
      "  await pool.call('readWindowz', {}, 'x');",
      '  return n;',
      '}',
    ].join('\n'),
  });
  t.equal(diagnostics.length, 2, diagnostics.join('\n'));
  t.match(diagnostics[0], /__protocol_probe__\.ts:4: Type 'RawGroup' is not assignable to type 'number'/);
  t.match(diagnostics[1], /__protocol_probe__\.ts:5: Argument of type '"readWindowz"' is not assignable to parameter of type/);
  t.end();
});

t.test('requests run through the table, and transfers move typed arrays', async (t) => {
  const dir = tempDir(t);
  const worker = new H5Worker();
  t.teardown(() => worker.terminate());
  const rb = join(fixtures, 'rayleigh_benard/data/train/rayleigh_benard_Rayleigh_1e6_Prandtl_1_mini.hdf5');
  const tree = await worker.call('describe', { path: rb }, `describing ${rb}`);
  t.equal(tree.kind, 'group');
  t.same(Object.keys(tree.children).sort(), ['boundary_conditions', 'dimensions', 'scalars', 't0_fields', 't1_fields', 't2_fields']);

  const spec = demoSpec(4, 3, 2);
  spec.fields = spec.fields.filter((f) => f.name === 'density');
  const plan: CreatePlan = { tmpPath: join(dir, 'w.tmp'), spec, nonFinite: 'error' };
  const handle = await worker.call('create', plan, 'creating');
  t.equal(typeof handle, 'number');
  t.equal(await worker.call('beginTrajectory', { handle }, 'writing'), 0);
  for (let k = 0; k < 2; k++) {
    const density = Float32Array.from({ length: 12 }, (_, i) => i + 100 * k);
    const written = await worker.call('writeFrame', { handle, t: k, fields: { density } }, 'writing', [density.buffer]);
    t.equal(written, k + 1);
    t.equal(density.byteLength, 0, 'the frame was transferred (detached here), not copied');
  }
  const done = await worker.call('finish', { handle, finalPath: join(dir, 'w.hdf5') }, 'finishing');
  t.match(done, { nTrajectories: 1, moments: null, nonFinite: 0 });
  const pool = new H5Pool(1);
  t.teardown(() => pool.close());
  const read = await pool.call(
    'readWindow',
    {
      path: join(dir, 'w.hdf5'),
      trajectory: 0,
      start: 0,
      count: 2,
      stride: 1,
      spatial: [4, 3],
      channels: 1,
      fields: [{ dataset: 't0_fields/density', sampleVarying: true, timeVarying: true, storedAxes: [true, true], components: 1, channelOffset: 0 }],
      nonFinite: 'error',
    },
    'reading',
  );
  t.type(read.data, Float32Array);
  t.same(Array.from(read.data), [...Array.from({ length: 12 }, (_, i) => i), ...Array.from({ length: 12 }, (_, i) => i + 100)]);
  t.same(await pool.call('__diag', {}, 'diag'), [], 'a test hook answers through the same table');
  t.equal(await pool.call('close', { path: join(dir, 'w.hdf5') }, 'closing'), true);
});
