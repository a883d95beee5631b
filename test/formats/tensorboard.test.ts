// TensorBoard event files, checked against references written from the specifications, not from the writer:
// CRC32C against published test vectors (RFC 3720 B.4, and the "123456789" check value), computed here by the
// bit-at-a-time definition; the framing and the Event / Summary protobuf bytes against a fixture derived by hand
// from the TFRecord format and the protobuf wire format; then a real file written and read back.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c, maskedCrc32c, tfRecord, scalarEvent, fileVersionEvent, TensorBoardWriter, readTensorBoardScalars } from '../../src/formats/tensorboard.js';

/** CRC32C bit by bit from its definition (reflected polynomial 0x82F63B78), independent of the table version. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
/** TFRecord's mask: rotate right 15, add 0xA282EAD8, written out with 64-bit arithmetic. */
const mask = (c: number): number => Number(((((BigInt(c) >> 15n) | (BigInt(c) << 17n)) & 0xffffffffn) + 0xa282ead8n) & 0xffffffffn);
const hex = (s: string): Uint8Array => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((h) => parseInt(h, 16)));
const le32 = (v: number): string => [0, 8, 16, 24].map((s) => ((v >>> s) & 0xff).toString(16).padStart(2, '0')).join('');

t.test('CRC32C matches published test vectors', async (t) => {
  const vectors: [Uint8Array, number][] = [
    [new TextEncoder().encode('123456789'), 0xe3069283],
    [new Uint8Array(32), 0x8a9136aa], // RFC 3720 B.4: 32 bytes of zeros
    [new Uint8Array(32).fill(0xff), 0x62a8ab43], // 32 bytes of ones
    [Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e], // incrementing
    [Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c], // decrementing
  ];
  for (const [bytes, expected] of vectors) {
    t.equal(crcBitwise(bytes), expected, `bitwise reference: ${expected.toString(16)}`);
    t.equal(crc32c(bytes), expected, `crc32c: ${expected.toString(16)}`);
  }
  t.equal(maskedCrc32c(new Uint8Array(32)), mask(0x8a9136aa), 'masked CRC');
});

t.test('a scalar event is framed and encoded as the hand-derived bytes', async (t) => {
  // Value {tag: "loss" (0a 04 'l' 'o' 's' 's'), simple_value: 0.5f (15, 00 00 00 3f)}        = 11 bytes
  // Summary {value: (0a 0b + 11 bytes)}                                                     = 13 bytes
  // Event {wall_time: 1.0 (09 + 00..f0 3f), step: 300 (10 ac 02), summary: (2a 0d + 13 bytes)}  = 27 bytes
  const value = '0a 04 6c6f7373 15 0000003f';
  const summary = `0a 0b ${value}`;
  const event = hex(`09 000000000000f03f 10 ac02 2a 0d ${summary}`);
  t.same(scalarEvent(300, 1.0, { loss: 0.5 }), event, 'Event / Summary / Value protobuf bytes');
  t.equal(event.length, 27);
  const length = hex('1b00000000000000'); // uint64 little-endian 27
  const record = hex(`1b00000000000000 ${le32(mask(crcBitwise(length)))} ${Buffer.from(event).toString('hex')} ${le32(mask(crcBitwise(event)))}`);
  t.same(tfRecord(event), record, 'TFRecord framing: length, masked CRC, data, masked CRC');
  // The file-version event: wall_time 2.5 (00..04 40), file_version "brain.Event:2" (1a 0d + 13 bytes).
  t.same(fileVersionEvent(2.5), hex(`09 0000000000000440 1a 0d ${Buffer.from('brain.Event:2').toString('hex')}`));
});

t.test('a written event file reads back; a torn tail is tolerated, damage is not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-'));
  const w = await TensorBoardWriter.open(join(dir, 'tb'));
  const steps = [0, 1, 2, 127, 128, 100000];
  for (const s of steps) await w.add(s, { 'train/loss': 1 / (s + 1), 'train/lr': 3e-4 }, 1700000000 + s);
  await w.close();
  const files = readdirSync(join(dir, 'tb'));
  t.equal(files.length, 1);
  t.match(files[0], /^events\.out\.tfevents\.\d+\..+\.wellspring$/, 'TensorBoard finds files named *tfevents*');
  const events = readTensorBoardScalars(w.path);
  t.same(events.map((e) => e.step), steps);
  t.equal(events[3]!.scalars['train/loss'], Math.fround(1 / 128), 'float32 value');
  t.equal(events[5]!.wallTime, 1700100000);
  // A first record that is the file-version event, checked byte by byte after its framing.
  const bytes = readFileSync(w.path);
  const firstLength = Number(bytes.readBigUInt64LE(0));
  t.equal(bytes[12], 0x09, 'first event starts with wall_time');
  t.ok(Buffer.from(bytes.subarray(12, 12 + firstLength)).includes(Buffer.from('brain.Event:2')), 'file_version record first');
  appendFileSync(w.path, Buffer.from([0x1b, 0, 0, 0])); // a torn header (killed writer)
  t.equal(readTensorBoardScalars(w.path).length, steps.length, 'torn last record ignored');
  const damaged = Buffer.from(bytes);
  damaged[damaged.length - 6] ^= 0xff;
  writeFileSync(join(dir, 'bad'), damaged);
  t.throws(() => readTensorBoardScalars(join(dir, 'bad')), /bad: byte \d+: the record data's CRC does not match/);
});
