/**
 * Saved rollouts (`saveRollouts`, src/formats/rollouts): chunks pass through unchanged and land in one Arrow file
 * per model, read back by apache-arrow's own reader (not the library's) with the tensor columns checked against the
 * canonical arrow.fixed_shape_tensor specification, and by pyarrow where installed; the writer holds one state;
 * failures and early stops leave no file.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tableFromIPC } from 'apache-arrow';
import { collect, drain, pipe, take, saveRollouts, readRollouts, openRollouts, Rng, type RolloutChunk } from '../../src/index.js';
import { fixedShapeTensorOf } from '../cache/tensor-spec.js';

const fields = ['density', 'momentum_x'];
const spatialShape = [4, 3];
const stateSize = 4 * 3 * 2;

/** Two trajectories of `leads` states for models "surrogate" (1 member) and "diffusion" (`members`), as eval orders them. */
function chunks(leads: number, members = 3, seed = 1, size = stateSize): RolloutChunk[] {
  const rng = new Rng(seed);
  const out: RolloutChunk[] = [];
  const state = () => Float32Array.from({ length: size }, () => rng.normal());
  for (const trajectory of [0, 2]) {
    for (const [model, m] of [['surrogate', 1], ['diffusion', members]] as const) {
      for (let lead = 1; lead <= leads; lead++) {
        out.push({
          model, trajectory: `euler.hdf5#${trajectory}`, fields, spatialShape, lead, truth: state(),
          ensemble: Array.from({ length: m }, state),
          origin: { file: 'euler.hdf5', trajectory, start: 0, frame: 1 + lead },
        });
      }
    }
  }
  return out;
}

t.test('round trip: chunks pass through and every state lands in its model\'s file', async (t) => {
  const dir = join(t.testdir(), 'rollouts');
  const input = chunks(3);
  const passed = await collect(pipe(input, saveRollouts(dir, { context: 2, extra: { note: 'test' } })));
  t.equal(passed.length, input.length);
  t.ok(passed.every((c, i) => c === input[i]), 'the same chunk objects, in order');
  t.same(readdirSync(dir).sort(), ['diffusion.arrow', 'surrogate.arrow'], 'one file per model, no temporary file');

  for (const [model, members] of [['surrogate', 1], ['diffusion', 3]] as const) {
    const expected = input.filter((c) => c.model === model);
    const table = tableFromIPC(readFileSync(join(dir, `${model}.arrow`))); // apache-arrow's reader
    t.equal(table.numRows, 6, `${model}: 2 trajectories x 3 leads`);
    const field = (name: string) => table.schema.fields.find((f) => f.name === name)!;
    t.same(fixedShapeTensorOf(field('truth')), { shape: [4, 3, 2], dimNames: ['x', 'y', 'channel'], listSize: 24, valueType: 'Float32' }, `${model}: truth tensor by the specification`);
    t.same(fixedShapeTensorOf(field('members')), { shape: [members, 4, 3, 2], dimNames: ['member', 'x', 'y', 'channel'], listSize: members * 24, valueType: 'Float32' }, `${model}: members tensor by the specification`);
    const md = table.schema.metadata;
    t.same([md.get('wellspring.format'), md.get('wellspring.model'), md.get('wellspring.fields'), md.get('wellspring.context'), md.get('user.note')], ['rollouts/1', model, JSON.stringify(fields), '2', 'test']);
    expected.forEach((c, r) => {
      const row = table.get(r)!;
      t.same([row.file, row.trajectory, row.start, row.lead, row.frame], ['euler.hdf5', c.origin!.trajectory, 0, c.lead, c.origin!.frame], `${model} row ${r}: origin and lead`);
      t.same(Array.from(table.getChild('truth')!.get(r)!.toArray() as Float32Array), Array.from(c.truth), `${model} row ${r}: truth`);
      const packed = Array.from(table.getChild('members')!.get(r)!.toArray() as Float32Array);
      t.same(packed, c.ensemble.flatMap((m) => Array.from(m)), `${model} row ${r}: members, back to back`);
    });
    const info = await openRollouts(join(dir, `${model}.arrow`));
    t.same([info.model, info.fields, info.context, info.stateShape, info.members, info.rows], [model, fields, 2, [4, 3, 2], members, 6]);
    const rows = await collect(readRollouts(join(dir, `${model}.arrow`)));
    t.same(rows.map((r) => [r.lead, r.origin.trajectory, Array.from(r.members[members - 1]!)]), expected.map((c) => [c.lead, c.origin!.trajectory, Array.from(c.ensemble[members - 1]!)]), `${model}: the library's reader agrees`);
  }
});

t.test('the writer holds one state: each is on disk before the next is pulled', async (t) => {
  const dir = t.testdir();
  const big = 64 * 64 * 2;
  const input = chunks(20, 4, 2, big).filter((c) => c.model === 'diffusion');
  const rowBytes = 5 * big * 4;
  let pulled = 0;
  let worst = 0;
  async function* source() {
    for (const c of input) {
      const tmp = readdirSync(dir).find((f) => f.includes('.tmp-'));
      const written = tmp ? statSync(join(dir, tmp)).size : 0;
      worst = Math.max(worst, pulled - Math.floor(written / rowBytes));
      pulled++;
      yield { ...c, spatialShape: [64, 64] };
    }
  }
  await drain(pipe(source(), saveRollouts(dir)));
  t.equal(pulled, 40);
  t.ok(worst <= 2, `states pulled but not yet on disk stayed at most 2 (${worst})`);
  t.equal((await openRollouts(join(dir, 'diffusion.arrow'))).rows, 40);
});

t.test('a failing stream, an early stop or a bad chunk leaves no file', async (t) => {
  const dir = t.testdir();
  async function* failing() {
    yield* chunks(2).slice(0, 5);
    throw new Error('decoder crashed');
  }
  await t.rejects(drain(pipe(failing(), saveRollouts(dir))), /decoder crashed/);
  t.same(readdirSync(dir), [], 'nothing after a failure');
  await drain(pipe(chunks(2), saveRollouts(dir), take(3)));
  t.same(readdirSync(dir), [], 'nothing after an early stop');
  const noOrigin = chunks(1).map(({ origin: _, ...c }) => c);
  await t.rejects(drain(pipe(noOrigin, saveRollouts(dir))), /a chunk of surrogate \(trajectory euler.hdf5#0, lead 1\) has no origin/);
  const changed = chunks(2);
  changed[1] = { ...changed[1]!, spatialShape: [3, 4] };
  await t.rejects(drain(pipe(changed, saveRollouts(dir))), /surrogate\.arrow: a chunk of trajectory euler.hdf5#0 has fields \[density,momentum_x\] on \[3,4\], the file holds \[density,momentum_x\] on \[4,3\]/);
  const fewer = chunks(2);
  fewer[3] = { ...fewer[3]!, ensemble: fewer[3]!.ensemble.slice(0, 2) };
  await t.rejects(drain(pipe(fewer, saveRollouts(dir))), /diffusion on trajectory 0 of euler.hdf5, lead 2: 2 members, the file holds 3 per state/);
  await t.rejects(drain(pipe(chunks(1).map((c) => ({ ...c, model: '../x' })), saveRollouts(dir))), /model name "\.\.\/x" cannot name a rollouts file/);
  t.same(readdirSync(dir), [], 'nothing after the refused writes');
  t.notOk(existsSync(join(dir, 'surrogate.arrow')));
});

const hasPyarrow = spawnSync('python3', ['-c', 'import pyarrow'], { encoding: 'utf8' }).status === 0;
t.test('pyarrow reads saved rollouts as tensors', { skip: hasPyarrow ? false : 'python3 with pyarrow is not installed (Debian 12 does not package it)' }, async (t) => {
  const dir = t.testdir();
  const input = chunks(3);
  await drain(pipe(input, saveRollouts(dir)));
  const script = `
import json, sys, pyarrow.ipc as ipc
t = ipc.open_file(sys.argv[1]).read_all()
members = t.column("members").combine_chunks()
nd = members.to_numpy_ndarray()
print(json.dumps({"type": members.type.extension_name, "shape": list(nd.shape), "first": nd[0, 2, 3, 2, 1].item(),
                  "lead": t.column("lead").to_pylist()}))`;
  const r = spawnSync('python3', ['-c', script, join(dir, 'diffusion.arrow')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { type: string; shape: number[]; first: number; lead: number[] };
  t.equal(out.type, 'arrow.fixed_shape_tensor');
  t.same(out.shape, [6, 3, 4, 3, 2]);
  const first = input.find((c) => c.model === 'diffusion')!;
  t.equal(out.first, first.ensemble[2]![(3 * 3 + 2) * 2 + 1], 'member 2 at (x 3, y 2, channel 1), row-major');
  t.same(out.lead, [1, 2, 3, 1, 2, 3]);
});
