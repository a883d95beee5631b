/** The safetensors writer and reader: byte layout checked by hand, round trip, and errors naming what is wrong. */
import t from 'tap';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors, type StoredTensor } from '../../src/formats/safetensors.js';

const tensors = new Map<string, StoredTensor>([
  ['a.weight', { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, -6.5]) }],
  ['b', { dtype: 'I32', shape: [3], data: new Int32Array([7, -8, 9]) }],
  ['scalar', { dtype: 'F64', shape: [], data: new Float64Array([Math.PI]) }],
  ['flags', { dtype: 'U8', shape: [2, 1], data: new Uint8Array([1, 0]) }],
]);

t.test('byte layout follows the format', async (t) => {
  const bytes = encodeSafetensors(tensors, { step: '12', note: 'hello' });
  const n = Number(bytes.readBigUInt64LE(0));
  t.equal(n % 8, 0, 'header padded to a multiple of 8 bytes');
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  t.same(header.__metadata__, { step: '12', note: 'hello' });
  t.same(header['a.weight'], { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  t.same(header.b, { dtype: 'I32', shape: [3], data_offsets: [24, 36] });
  t.same(header.scalar, { dtype: 'F64', shape: [], data_offsets: [36, 44] });
  t.same(header.flags, { dtype: 'U8', shape: [2, 1], data_offsets: [44, 46] });
  const data = bytes.subarray(8 + n);
  t.equal(data.length, 46);
  t.equal(data.readFloatLE(20), -6.5, 'raw little-endian float32');
  t.equal(data.readInt32LE(28), -8, 'raw little-endian int32');
  t.equal(data.readDoubleLE(36), Math.PI);
});

t.test('round trip through a file, written atomically', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-st-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'x.safetensors');
  await writeSafetensors(path, tensors, { k: 'v' });
  await writeSafetensors(path, tensors, { k: 'w' }); // overwrite in place
  t.same(await readdir(dir), ['x.safetensors'], 'no temporary file left');
  const back = await readSafetensors(path);
  t.same(back.metadata, { k: 'w' });
  for (const [name, v] of tensors) {
    const got = back.tensors.get(name)!;
    t.equal(got.dtype, v.dtype, `${name} dtype`);
    t.same(got.shape, v.shape, `${name} shape`);
    t.same(Array.from(got.data as Float32Array), Array.from(v.data as Float32Array), `${name} values`);
  }
});

t.test('bad files fail with the file and the place named', async (t) => {
  const good = encodeSafetensors(tensors);
  t.throws(() => decodeSafetensors(good.subarray(0, 5), 'f.safetensors'), /f\.safetensors: file: too short/);
  const truncated = good.subarray(0, good.length - 3);
  t.throws(() => decodeSafetensors(truncated, 'f.safetensors'), /f\.safetensors: (flags|data section|.*data_offsets)/);
  const withHeader = (header: unknown, data = Buffer.alloc(0)) => {
    const json = Buffer.from(JSON.stringify(header));
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([head, json, data]);
  };
  t.throws(() => decodeSafetensors(withHeader({ w: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)), 'g'), /g: w\.dtype: expected one of F32/);
  t.throws(() => decodeSafetensors(withHeader({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, Buffer.alloc(4)), 'g'), /g: w\.data_offsets: span of 4 bytes for F32\[2\] \(8 expected\)/);
  t.throws(() => decodeSafetensors(withHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, Buffer.alloc(8)), 'g'), /g: w\.data_offsets: starts at 4, expected 0/);
  t.throws(() => decodeSafetensors(withHeader({ __metadata__: { a: 1 } }), 'g'), /g: __metadata__\.a: expected a string/);
  const notJson = Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x}')]);
  t.throws(() => decodeSafetensors(notJson, 'g'), /g: header: not valid JSON/);
  t.throws(() => encodeSafetensors(new Map([['w', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]])), /tensor "w" has 2 values for shape \[3\]/);
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-st-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'bad.safetensors'), notJson);
  await t.rejects(readSafetensors(join(dir, 'bad.safetensors')), /bad\.safetensors: header: not valid JSON/);
  t.ok((await readFile(join(dir, 'bad.safetensors'))).length > 0);
});
