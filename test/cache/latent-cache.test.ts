import t from 'tap';
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Field, RecordBatch, Schema, tableFromIPC, tableToIPC, Table } from 'apache-arrow';
import { fixedShapeTensorOf } from './tensor-spec.js';
import {
  writeLatentCache, readLatentCache, openLatentCache, LatentCacheError, collect, Rng,
  type CachedTrajectory, type LatentCacheMeta,
} from '../../src/index.js';

const meta: LatentCacheMeta = {
  autoencoder: 'ae-run-7f3a',
  normalisation: { kind: 'zscore', mean: { density: 1.5 } },
  labelNames: ['gamma', 'periodic'],
  split: 'train',
  source: 'euler_mini.hdf5',
  extra: { note: 'test' },
};

function trajectories(n: number, shape: [number, number, number, number], seed = 1): CachedTrajectory[] {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => ({
    latents: Float32Array.from({ length: size }, () => rng.uniform() * 2 - 1),
    shape,
    labels: new Float32Array([1.4 + i, i % 2]),
    origin: { file: 'euler_mini.hdf5', trajectory: i >> 1, augmentation: i & 1, transform: i & 1 ? 'flip:x' : '' },
  }));
}

t.test('round trip: values, shapes, labels, origins and metadata', async (t) => {
  const dir = t.testdir();
  const rows = trajectories(5, [4, 3, 2, 5]);
  const copies = rows.map((r) => ({ ...r, latents: r.latents.slice(), labels: r.labels.slice() }));
  const path = join(dir, 'train', 'euler.arrow');
  const result = await writeLatentCache(rows, { path, meta, rowsPerBatch: 2 });
  t.same(result, { path, trajectories: 5, shape: [4, 3, 2, 5] });
  const back = await collect(readLatentCache(path, { autoencoder: 'ae-run-7f3a' }));
  t.equal(back.length, 5);
  back.forEach((row, i) => {
    t.same(row.shape, [4, 3, 2, 5]);
    t.same(Array.from(row.latents), Array.from(copies[i]!.latents), `latents ${i} exact`);
    t.same(Array.from(row.labels), Array.from(copies[i]!.labels));
    t.same(row.origin, copies[i]!.origin);
  });
  const info = await openLatentCache(path);
  t.equal(info.trajectories, 5);
  t.same(info.labelNames, meta.labelNames);
  t.same(info.normalisation, meta.normalisation);
  t.equal(info.split, 'train');
  t.same(info.extra, { note: 'test' });
  t.same(readdirSync(join(dir, 'train')), ['euler.arrow'], 'no temporary file left');
});

t.test('the writer pulls rows only as fast as it writes them', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'big.arrow');
  const rowBytes = 4 * 16 * 32 * 32 * 8; // 512 KB per trajectory
  let pulled = 0;
  let worst = 0;
  async function* slowSource() {
    for (const row of trajectories(24, [16, 32, 32, 8], 3)) {
      const tmp = readdirSync(dir).find((f) => f.includes('.tmp-'));
      const written = tmp ? statSync(join(dir, tmp)).size : 0;
      worst = Math.max(worst, pulled - Math.floor(written / rowBytes));
      pulled++;
      yield row;
    }
  }
  await writeLatentCache(slowSource(), { path, meta });
  t.equal(pulled, 24);
  t.ok(worst <= 6, `rows pulled but not yet on disk stayed small (${worst})`);
});

t.test('bad rows stop the write and leave nothing under the final name', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'bad.arrow');
  const rows = trajectories(3, [2, 2, 2, 2]);
  rows[2] = { ...rows[2]!, shape: [2, 2, 2, 3], latents: new Float32Array(24) };
  await t.rejects(writeLatentCache(rows, { path, meta }), /trajectory 1 of euler_mini.hdf5 .*differs from the file's \[2,2,2,2\]/);
  t.notOk(existsSync(path));
  t.same(readdirSync(dir), [], 'temporary file removed');
  const nan = trajectories(2, [2, 2, 2, 2]);
  nan[1]!.latents[5] = NaN;
  // shape [2, 2, 2, 2]: flat index 5 is state 0, latent pixel (1, 0), channel 1
  await t.rejects(writeLatentCache(nan, { path, meta }), /trajectory 0 of euler_mini.hdf5 \(augmentation 1\): column latents holds NaN at state 0, latent pixel \(1, 0\), channel 1 \(flat index 5\)/);
  const infLabel = trajectories(1, [2, 2, 2, 2]);
  infLabel[0]!.labels[1] = Infinity;
  await t.rejects(writeLatentCache(infLabel, { path, meta }), /column labels holds Infinity at entry 1/);
  t.same(readdirSync(dir), [], 'nothing written by the refused writes');
  await t.rejects(writeLatentCache([], { path, meta }), /no trajectories/);
  await t.rejects(writeLatentCache(trajectories(1, [1, 1, 1, 1]), { path, meta: { ...meta, labelNames: ['one'] } }), /2 labels but meta.labelNames has 1/);
});

t.test('reading checks the format and the autoencoder before any row', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'c.arrow');
  await writeLatentCache(trajectories(2, [1, 2, 2, 1]), { path, meta });
  await t.rejects(collect(readLatentCache(path, { autoencoder: 'other-run' })), /made by autoencoder "ae-run-7f3a", expected "other-run"/);
  const junk = join(dir, 'junk.arrow');
  writeFileSync(junk, 'this is not arrow');
  await t.rejects(collect(readLatentCache(junk)), LatentCacheError);
  await t.rejects(openLatentCache(join(dir, 'missing.arrow')), /cannot open latent cache/);
});

t.test('the latents column is an arrow.fixed_shape_tensor, seen by apache-arrow\'s own reader', async (t) => {
  const path = join(t.testdir(), 'ext.arrow');
  const rows = trajectories(3, [4, 3, 2, 5], 4);
  const expected = rows.map((r) => Array.from(r.latents));
  await writeLatentCache(rows, { path, meta, rowsPerBatch: 2 });
  const table = tableFromIPC(readFileSync(path)); // apache-arrow's reader, not the library's
  const field = table.schema.fields.find((f) => f.name === 'latents')!;
  t.same(fixedShapeTensorOf(field), { shape: [4, 3, 2, 5], dimNames: ['time', 'h', 'w', 'channel'], listSize: 120, valueType: 'Float32' }, 'the canonical extension, by the specification');
  t.equal(field.metadata.get('shape'), '[4,3,2,5]', 'the older shape entry is still written, for readers of the older layout');
  const column = table.getChild('latents')!;
  t.equal(column.length, 3);
  for (let i = 0; i < 3; i++) t.same(Array.from(column.get(i)!.toArray() as Float32Array), expected[i], `row ${i}: row-major (T, h, w, c) values`);
});

t.test('cache files written before the extension type still read', async (t) => {
  const old = fileURLToPath(new URL('../fixtures/latent-cache/old-format.arrow', import.meta.url));
  const field = tableFromIPC(readFileSync(old)).schema.fields.find((f) => f.name === 'latents')!;
  t.equal(field.metadata.get('ARROW:extension:name'), undefined, 'the fixture has the old layout (no extension)');
  const info = await openLatentCache(old);
  t.same(info.shape, [3, 2, 2, 2]);
  t.equal(info.autoencoder, 'ae-old-format');
  const back = await collect(readLatentCache(old, { autoencoder: 'ae-old-format' }));
  t.equal(back.length, 2);
  back.forEach((row, i) => {
    t.same(row.shape, [3, 2, 2, 2]);
    t.same(Array.from(row.latents), Array.from({ length: 24 }, (_, k) => i * 100 + k + 0.25), `row ${i} values`);
    t.same(Array.from(row.labels), [Math.fround(1.4), i]);
  });
});

t.test('a latents column whose extension shape and older shape entry disagree is refused', async (t) => {
  const dir = t.testdir();
  const good = join(dir, 'good.arrow');
  await writeLatentCache(trajectories(1, [2, 2, 2, 2]), { path: good, meta });
  const table = tableFromIPC(readFileSync(good));
  const rewrite = (name: string, edit: (md: Map<string, string>) => void) => {
    const fields = table.schema.fields.map((f) => {
      if (f.name !== 'latents') return f;
      const md = new Map(f.metadata);
      edit(md);
      return new Field(f.name, f.type, f.nullable, md);
    });
    const schema = new Schema(fields, table.schema.metadata);
    const path = join(dir, name);
    writeFileSync(path, tableToIPC(new Table(schema, table.batches.map((b) => new RecordBatch(schema, b.data))), 'file'));
    return path;
  };
  const conflicting = rewrite('conflict.arrow', (md) => md.set('shape', '[2,2,4,1]'));
  await t.rejects(openLatentCache(conflicting), /conflict\.arrow: latents field metadata "shape" \[2,2,4,1\] differs from its arrow.fixed_shape_tensor shape \[2,2,2,2\]/);
  const wrongSize = rewrite('size.arrow', (md) => md.set('ARROW:extension:metadata', '{"shape":[2,2,2,3]}'));
  await t.rejects(openLatentCache(wrongSize), /size\.arrow: column latents: arrow.fixed_shape_tensor shape \[2,2,2,3\] holds 24 values, the storage lists 16/);
  const permuted = rewrite('perm.arrow', (md) => md.set('ARROW:extension:metadata', '{"shape":[2,2,2,2],"permutation":[1,0,2,3]}'));
  await t.rejects(openLatentCache(permuted), /perm\.arrow: column latents: arrow.fixed_shape_tensor with permutation \[1,0,2,3\] is not supported/);
  const extensionOnly = rewrite('ext-only.arrow', (md) => md.delete('shape'));
  t.same((await openLatentCache(extensionOnly)).shape, [2, 2, 2, 2], 'the extension alone suffices');
});

const hasPyarrow = spawnSync('python3', ['-c', 'import pyarrow'], { encoding: 'utf8' }).status === 0;
t.test('pyarrow reads the cache (shapes and values)', { skip: hasPyarrow ? false : 'python3 with pyarrow is not installed (Debian 12 does not package it)' }, async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'py.arrow');
  const rows = trajectories(3, [2, 3, 3, 2]);
  const expected = rows.map((r) => Array.from(r.latents.slice(0, 4)));
  await writeLatentCache(rows, { path, meta });
  const script = `
import json, sys, pyarrow as pa, pyarrow.ipc as ipc
t = ipc.open_file(sys.argv[1]).read_all()
field = t.schema.field("latents")
shape = json.loads(field.metadata[b"shape"])
col = t.column("latents").combine_chunks()
tensor = isinstance(field.type, pa.ExtensionType) and field.type.extension_name == "arrow.fixed_shape_tensor"
nd = col.to_numpy_ndarray() if tensor else None
storage = col.storage if isinstance(col, pa.ExtensionArray) else col
print(json.dumps({"rows": t.num_rows, "shape": shape, "tensor": tensor, "ndshape": list(nd.shape) if tensor else None,
                  "head": [r[:4] for r in storage.to_pylist()]}))`;
  const run = spawnSync('python3', ['-c', script, path], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as { rows: number; shape: number[]; tensor: boolean; ndshape: number[] | null; head: number[][] };
  t.equal(out.rows, 3);
  t.same(out.shape, [2, 3, 3, 2]);
  t.ok(out.tensor, 'pyarrow sees the fixed_shape_tensor extension type');
  t.same(out.ndshape, [3, 2, 3, 3, 2], 'as a (rows, T, h, w, c) ndarray');
  out.head.forEach((h, i) => h.forEach((v, j) => t.ok(Math.abs(v - expected[i]![j]!) < 1e-7)));
});

t.test('a cache file holding NaN (damaged, or written by another tool) is refused at read, naming the row', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'nan.arrow');
  const rows = trajectories(3, [2, 2, 2, 2], 7);
  const marker = 1234.5678;
  rows[2]!.latents[9] = marker; // state 1, latent pixel (0, 0), channel 1
  await writeLatentCache(rows, { path, meta });
  const bytes = readFileSync(path);
  const needle = Buffer.from(new Float32Array([marker]).buffer);
  const at = bytes.indexOf(needle);
  t.ok(at > 0, 'the marker value is found in the file');
  bytes.set(Buffer.from(new Float32Array([NaN]).buffer), at);
  writeFileSync(path, bytes);
  const seen: number[] = [];
  await t.rejects(
    (async () => {
      for await (const row of readLatentCache(path)) seen.push(row.origin.trajectory);
    })(),
    /nan\.arrow: row 2 \(trajectory 1 of euler_mini\.hdf5\): column latents holds NaN at state 1, latent pixel \(0, 0\), channel 1 \(flat index 9\)/,
  );
  t.same(seen, [0, 0], 'the rows before the damaged one were read');
});
