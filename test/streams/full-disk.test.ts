// A full disk, for real: a small tmpfs (mounted when the tests run as root; skipped with a reason otherwise).
// Every writer fails with the path and the cause named, leaves nothing under the final name and no temporary.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/streams/atomic.js';
import { writeLatentCache } from '../../src/formats/latent-cache/index.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { appendJsonLine } from '../../src/sinks/files.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'ws-full-'));
const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint]).status === 0;
if (mounted) t.teardown(() => void spawnSync('umount', [mountPoint]));
const skip = mounted ? false : 'needs root to mount a small tmpfs';

const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes('.tmp-'));

t.test('writeFileAtomic on a full disk: the old file stays, no temporary, the path and ENOSPC named', { skip }, async (t) => {
  const dir = join(mountPoint, 'atomic');
  mkdirSync(dir);
  const path = join(dir, 'results.json');
  await writeFileAtomic(path, '{"old": true}');
  await t.rejects(writeFileAtomic(path, new Uint8Array(1 << 20)), { code: 'ENOSPC', message: `writing ${path}: no space left on the device (ENOSPC)` });
  t.equal(readFileSync(path, 'utf8'), '{"old": true}', 'the previous file is intact');
  t.same(leftovers(dir), []);
});

t.test('latent cache, checkpoint and log writes on a full disk', { skip }, async (t) => {
  const dir = join(mountPoint, 'writers');
  mkdirSync(dir);
  const rows = Array.from({ length: 8 }, (_, i) => ({
    latents: new Float32Array(16 * 8 * 8 * 16).fill(i),
    shape: [16, 8, 8, 16] as [number, number, number, number],
    labels: Float32Array.of(1),
    origin: { file: 'f.hdf5', trajectory: i, augmentation: 0, transform: '' },
  }));
  const cache = join(dir, 'train.arrow');
  await t.rejects(
    writeLatentCache(rows, { path: cache, meta: { autoencoder: 'a', normalisation: null, labelNames: ['x'], split: 'train', source: 'f.hdf5' } }),
    { code: 'ENOSPC', message: new RegExp(`^writing ${cache}: no space left on the device`) },
  );
  t.notOk(existsSync(cache), 'no cache file under the final name');
  t.same(leftovers(dir), [], 'no temporary left');

  const checkpoint = join(dir, 'last.safetensors');
  const tensors = new Map([['w', { dtype: 'F32' as const, shape: [1 << 17], data: new Float32Array(1 << 17) }]]);
  await t.rejects(writeSafetensors(checkpoint, tensors), { code: 'ENOSPC', message: new RegExp(`^writing ${checkpoint}: no space left`) });
  t.notOk(existsSync(checkpoint));
  t.same(leftovers(dir), []);

  writeFileSync(join(dir, 'filler'), Buffer.alloc(0));
  const fill = () => {
    try {
      writeFileSync(join(dir, 'filler'), Buffer.alloc(1 << 20));
    } catch {
      /* the disk is now full */
    }
  };
  fill();
  await t.rejects(appendJsonLine(join(dir, 'log.jsonl'), { event: 'step', step: 1, pad: 'x'.repeat(8192) }), { message: new RegExp(`^appending to ${join(dir, 'log.jsonl')}: no space left`) });
});

t.test('a report that runs out of room names the files written and those missing', { skip }, async (t) => {
  const { syntheticRollouts } = await import('../../src/sinks/metrics/synthetic.js');
  const { reportSink } = await import('../../src/sinks/report/index.js');
  const { statSync } = await import('node:fs');
  const { parseBands } = await import('../../src/sinks/metrics/index.js');
  const options = { trajectories: 2, leads: 6, members: 2, height: 16, width: 16, fields: ['u', 'v'] };
  const reference = join(mkdtempSync(join(tmpdir(), 'ws-report-')), 'ok');
  await reportSink(syntheticRollouts(options), { dir: reference, bands: parseBands('1-3,4-6') });
  const size = (f: string) => statSync(join(reference, f)).size;
  const { rmSync } = await import('node:fs');
  rmSync(join(mountPoint, 'writers'), { recursive: true, force: true }); // the earlier test filled the disk
  const dir = join(mountPoint, 'report');
  mkdirSync(dir);
  // Leave room for results.json and snapshots.json only (tmpfs counts 4 KiB pages).
  const room = Math.ceil(size('results.json') / 4096) * 4096 + Math.ceil(size('snapshots.json') / 4096) * 4096 + 4096;
  const free = () => {
    const out = spawnSync('df', ['--output=avail', '-B1', mountPoint], { encoding: 'utf8' }).stdout.trim().split('\n');
    return Number(out[out.length - 1]);
  };
  writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(Math.max(0, free() - room)));
  const err = await reportSink(syntheticRollouts(options), { dir, bands: parseBands('1-3,4-6') }).then(
    () => null,
    (e: Error & { written?: string[]; missing?: string[] }) => e,
  );
  t.ok(err, 'the report sink fails');
  t.equal(err!.name, 'PartialWriteError');
  t.match(err!.message, new RegExp(`no space left on the device \\(ENOSPC\\); in ${dir}, written: results\\.json, snapshots\\.json; not written: metrics\\.csv, metrics\\.arrow, report\\.html`));
  t.same(readdirSync(dir).sort(), ['results.json', 'snapshots.json'], 'every file is whole or absent');
  t.same(leftovers(dir), []);
});
