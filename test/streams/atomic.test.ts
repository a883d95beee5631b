/**
 * The atomic-write helper (src/streams/atomic.ts): the target appears whole or not at all, a failed write
 * (a data source that throws mid-stream, a rename that cannot happen, an aborted streaming writer) leaves the
 * target unchanged and no temporary file behind, and both the file and its folder are fsynced (observed through
 * mocked fs modules).
 */
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicTarget, commitFile, commitFileSync, writeFileAtomic, writeFileAtomicSync } from '../../src/streams/atomic.js';

async function scratch(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wellspring-atomic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const temporaries = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.includes('.tmp-'));

t.test('writes whole files, replacing the target, with no temporary left', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'sub', 'a.json');
  await writeFileAtomic(path, '{"v":1}');
  t.equal(await readFile(path, 'utf8'), '{"v":1}', 'creates the folder and the file');
  await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  t.same([...(await readFile(path))], [1, 2, 3], 'replaces it');
  async function* chunks(): AsyncGenerator<string> {
    yield 'a,';
    yield 'b';
  }
  await writeFileAtomic(path, chunks());
  t.equal(await readFile(path, 'utf8'), 'a,b', 'streamed chunks');
  writeFileAtomicSync(path, 'sync');
  t.equal(await readFile(path, 'utf8'), 'sync', 'synchronous variant');
  t.same(await temporaries(join(dir, 'sub')), []);
});

t.test('a source that throws mid-stream leaves the target unchanged and no temporary', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'b.csv');
  await writeFile(path, 'old');
  let sawTemporary = false;
  async function* failing(): AsyncGenerator<string> {
    yield 'x'.repeat(100_000);
    sawTemporary = (await temporaries(dir)).length === 1;
    throw new Error('source failed');
  }
  await t.rejects(writeFileAtomic(path, failing()), /source failed/);
  t.ok(sawTemporary, 'the data went to a temporary file beside the target');
  t.equal(await readFile(path, 'utf8'), 'old', 'target unchanged');
  t.same(await temporaries(dir), [], 'temporary removed');
});

t.test('a rename that fails (target is a non-empty folder) removes the temporary', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'taken');
  await mkdir(path);
  await writeFile(join(path, 'keep'), 'k');
  await t.rejects(writeFileAtomic(path, 'data'));
  t.throws(() => writeFileAtomicSync(path, 'data'));
  t.equal(await readFile(join(path, 'keep'), 'utf8'), 'k', 'target unchanged');
  t.same(await temporaries(dir), [], 'no temporary left (async and sync)');
});

t.test('atomicTarget: a streaming writer commits or aborts', async (t) => {
  const dir = await scratch(t);
  const path = join(dir, 'c.arrow');
  await writeFile(path, 'old');
  const aborted = atomicTarget(path);
  const out = createWriteStream(aborted.tmp);
  out.write('partial');
  out.destroy();
  await finished(out).catch(() => undefined);
  await aborted.abort();
  t.equal(await readFile(path, 'utf8'), 'old', 'abort leaves the target');
  t.same(await temporaries(dir), [], 'abort removes the temporary');

  const target = atomicTarget(path);
  t.match(target.tmp, /c\.arrow\.tmp-\d+-/);
  const out2 = createWriteStream(target.tmp);
  out2.end('new');
  await finished(out2);
  t.equal(await readFile(path, 'utf8'), 'old', 'nothing under the final name before commit');
  await target.commit();
  t.equal(await readFile(path, 'utf8'), 'new');
  t.same(await temporaries(dir), []);

  await t.rejects(commitFile(join(dir, 'missing.tmp-1'), path), { code: 'ENOENT' });
  t.throws(() => commitFileSync(join(dir, 'missing.tmp-1'), path), { code: 'ENOENT' });
  t.equal(await readFile(path, 'utf8'), 'new', 'a failed commit leaves the target');
});

t.test('the file and its folder are fsynced before and after the rename', async (t) => {
  const dir = await scratch(t);
  const events: string[] = [];
  const fds = new Map<number, string>();
  const name = (p: unknown) => (String(p) === dir ? 'dir' : String(p).includes('.tmp-') ? 'tmp' : String(p));
  const mocked = await t.mockImport<typeof import('../../src/streams/atomic.js')>('../../src/streams/atomic.js', {
    'node:fs/promises': {
      ...fsp,
      open: async (path: fs.PathLike, flags?: string | number) => {
        const handle = await fsp.open(path, flags);
        const sync = handle.sync.bind(handle);
        handle.sync = async () => {
          events.push(`fsync ${name(path)}`);
          return sync();
        };
        return handle;
      },
      rename: async (from: fs.PathLike, to: fs.PathLike) => {
        events.push(`rename ${name(from)}`);
        return fsp.rename(from, to);
      },
    },
    'node:fs': {
      ...fs,
      openSync: (path: fs.PathLike, flags?: fs.OpenMode) => {
        const fd = fs.openSync(path, flags);
        fds.set(fd, name(path));
        return fd;
      },
      fsyncSync: (fd: number) => {
        events.push(`fsyncSync ${fds.get(fd)}`);
        fs.fsyncSync(fd);
      },
      renameSync: (from: fs.PathLike, to: fs.PathLike) => {
        events.push(`renameSync ${name(from)}`);
        fs.renameSync(from, to);
      },
    },
  });
  await mocked.writeFileAtomic(join(dir, 'a'), 'a');
  t.same(events, ['fsync tmp', 'rename tmp', 'fsync dir'], 'writeFileAtomic');
  events.length = 0;
  mocked.writeFileAtomicSync(join(dir, 'b'), 'b');
  t.same(events, ['fsyncSync tmp', 'renameSync tmp', 'fsyncSync dir'], 'writeFileAtomicSync');
  events.length = 0;
  const target = mocked.atomicTarget(join(dir, 'c'));
  await writeFile(target.tmp, 'c');
  await target.commit();
  t.same(events, ['fsync tmp', 'rename tmp', 'fsync dir'], 'atomicTarget commit');
  events.length = 0;
  fs.writeFileSync(join(dir, 'd.tmp-1'), 'd');
  mocked.commitFileSync(join(dir, 'd.tmp-1'), join(dir, 'd'));
  t.same(events, ['fsyncSync tmp', 'renameSync tmp', 'fsyncSync dir'], 'commitFileSync');
  t.same((await readdir(dir)).sort(), ['a', 'b', 'c', 'd']);
});
