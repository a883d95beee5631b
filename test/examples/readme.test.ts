// Every ```ts block of README.md is a complete program: each is written out as a module, type-checked with the
// project's TypeScript under its strict tsconfig, then run with node in a directory holding a tiny dataset and
// tiny trained runs at the paths the README uses (data/euler, runs/ae, runs/cache, runs/surrogate,
// runs/diffusion, made through the CLI). README.md is the only source of the examples: a block that does not
// compile or throws fails here, naming its README line. Blocks import 'wellspring-latent', which resolves to
// this package (its "exports" self-reference, to dist/): needs the build (`npm test` builds first); skipped with
// a reason without it.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/pipelines/cli.js');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const built = existsSync(join(root, 'dist/src/index.d.ts')) && existsSync(cli);

interface Block {
  /** 1-based, in README order. */
  index: number;
  /** README line of the block's first code line. */
  line: number;
  code: string;
}

/** The ```ts (or ```typescript) blocks of a markdown text; other fenced blocks are skipped whole. */
function typescriptBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let fence: { ts: boolean; line: number; code: string[] } | null = null;
  lines.forEach((text, i) => {
    if (fence) {
      if (/^```\s*$/.test(text)) {
        if (fence.ts) blocks.push({ index: blocks.length + 1, line: fence.line, code: fence.code.join('\n') + '\n' });
        fence = null;
      } else fence.code.push(text);
    } else if (text.startsWith('```')) {
      fence = { ts: /^```(ts|typescript)\s*$/.test(text), line: i + 2, code: [] };
    }
  });
  if (fence) throw new Error(`README.md: the fenced block opened at line ${(fence as { line: number }).line - 1} is never closed`);
  return blocks;
}

/** Runs the compiled CLI; throws with its stderr when it fails. */
function wellspring(cwd: string, args: string[]): void {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, WELLSPRING_BACKEND: 'wasm' } });
  if (r.status !== 0) throw new Error(`wellspring ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-800)}`);
}

/** The tiny dataset and runs the README's blocks read, made through the CLI like a user would (about 10 s). */
function prepare(dir: string): void {
  wellspring(dir, ['generate', 'euler', '--out', 'data/euler', '--resolution', '16', '--trajectories', '10', '--steps', '12', '--seed', '1']);
  // The Well data layer's example reads a download of The Well's Euler dataset: the tiny one stands in for it.
  mkdirSync(join(dir, 'datasets'));
  symlinkSync(join('..', 'data', 'euler'), join(dir, 'datasets', 'euler_multi_quadrants_periodicBC'), 'dir');
  const tinyAe = ['--set', 'train.steps=30', '--set', 'train.warmup=5', '--set', 'train.batchSize=8', '--set', 'train.lr=0.003', '--set', 'model.channels=[16,32]', '--set', 'model.latentChannels=4', '--set', 'valid.frames=12', '--set', 'train.workers=1'];
  wellspring(dir, ['train-ae', '--data', 'data/euler', '--run', 'runs/ae', ...tinyAe]);
  wellspring(dir, ['cache', '--ae', 'runs/ae', '--data', 'data/euler', '--run', 'runs/cache', '--set', 'splits.train=1']);
  const tinyVit = ['--set', 'train.workers=1', '--set', 'train.steps=12', '--set', 'train.warmup=2', '--set', 'train.batchSize=4', '--set', 'model.width=32', '--set', 'model.depth=1', '--set', 'model.heads=2', '--set', 'train.shuffleBuffer=16'];
  wellspring(dir, ['train-surrogate', '--cache', 'runs/cache', '--run', 'runs/surrogate', ...tinyVit]);
  wellspring(dir, ['train-diffusion', '--cache', 'runs/cache', '--run', 'runs/diffusion', ...tinyVit, '--set', 'sampling.steps=4']);
}

/** `tsc` diagnostics of the example modules, by block index, with positions given as README lines. */
function typeCheck(dir: string, blocks: Block[]): { byBlock: Map<number, string[]>; other: string[]; status: number | null } {
  const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
  const byBlock = new Map<number, string[]>();
  const other: string[] = [];
  for (const text of `${r.stdout}${r.stderr}`.split('\n')) {
    if (!text.trim()) continue;
    const m = /^examples[\\/]readme-(\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(text);
    const block = m ? blocks[Number(m[1]) - 1] : undefined;
    if (!m || !block) {
      // Continuation lines of a multi-line message belong to the previous diagnostic.
      const last = [...byBlock.values()].at(-1);
      if (/^\s/.test(text) && last) last[last.length - 1] += `\n${text}`;
      else other.push(text);
      continue;
    }
    const list = byBlock.get(block.index) ?? [];
    list.push(`README.md:${block.line + Number(m[2]) - 1}:${m[3]}: ${m[4]}`);
    byBlock.set(block.index, list);
  }
  return { byBlock, other, status: r.status };
}

t.test('the TypeScript blocks of README.md compile under strict and run', { skip: built ? false : 'run `npm run build` first', timeout: 300_000 }, async (t) => {
  const blocks = typescriptBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
  t.ok(blocks.length >= 6, `README.md has its TypeScript examples (${blocks.length} blocks)`);
  for (const b of blocks) t.match(b.code, /from 'wellspring-latent'/, `block ${b.index} (README line ${b.line}) imports the package by its npm name`);

  // Inside the project (.tap/fixtures), so that 'wellspring-latent' resolves to this package through its
  // self-reference and '@tensorflow/tfjs' to the same copy the package uses.
  const dir = t.testdir();
  if (!relative(root, dir) || relative(root, dir).startsWith(`..${sep}`)) throw new Error(`test directory ${dir} is outside the project ${root}`);
  mkdirSync(join(dir, 'examples'));
  for (const b of blocks) writeFileSync(join(dir, 'examples', `readme-${b.index}.ts`), b.code);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: join(root, 'tsconfig.json'),
      compilerOptions: { rootDir: '.', outDir: 'out', declaration: false, sourceMap: false },
      include: ['examples'],
    }),
  );

  const started = performance.now();
  prepare(dir);
  t.comment(`tiny dataset and runs made in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const t1 = performance.now();
  const checked = typeCheck(dir, blocks);
  t.comment(`type-checked in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  t.same(checked.other, [], 'tsc reports nothing outside the examples');
  t.equal(checked.status === 0, checked.byBlock.size === 0 && checked.other.length === 0, 'tsc exit status agrees with its diagnostics');

  for (const b of blocks) {
    await t.test(`block ${b.index} (README line ${b.line})`, async (t) => {
      t.same(checked.byBlock.get(b.index) ?? [], [], 'compiles under the strict tsconfig');
      const js = join(dir, 'out', 'examples', `readme-${b.index}.js`);
      if (!existsSync(js)) return void t.fail(`tsc emitted no ${relative(dir, js)}`);
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [js], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      const where = r.error ? ` (${r.error.message})` : '';
      t.equal(r.status, 0, `runs to the end${r.status === 0 ? '' : `${where}: ${r.stderr.slice(-1500)}`}`);
      t.comment(`ran in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    });
  }
});
