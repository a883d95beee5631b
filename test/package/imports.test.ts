// The house rules, checked on the compiled import graph (`npm test` builds first; skipped without the build):
// nothing under src/ (worker modules included) imports from pipelines/, and no job imports another job's file
// except the demo and the study, whose work is running the other jobs in order.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'dist');
const built = existsSync(join(dist, 'src', 'index.js'));

function jsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...jsFiles(p));
    else if (e.name.endsWith('.js')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of a compiled file: static imports and re-exports, import() and new URL(..., import.meta.url). */
function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = new Set<string>();
  const patterns = [/\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/g, /\bimport\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g, /\bimport\s+['"](\.{1,2}\/[^'"]+)['"]/g, /new URL\(\s*['"`](\.{1,2}\/[^'"`$]+)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.add(m[1]!);
  return [...specs].map((s) => resolve(dirname(file), s));
}

t.test('no module under src/ imports from pipelines/', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const files = jsFiles(join(dist, 'src'));
  t.ok(files.length > 50, `${files.length} compiled modules under dist/src`);
  const bad: string[] = [];
  for (const f of files) {
    for (const target of relativeImports(f)) {
      if (!target.startsWith(join(dist, 'src'))) bad.push(`${relative(dist, f)} -> ${relative(dist, target)}`);
    }
  }
  t.same(bad, [], 'every import of dist/src stays inside dist/src');
});

t.test('no job imports another job (the demo, the study and piddm-darcy, which generates its data, run them)', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  const jobs = join(dist, 'pipelines', 'jobs');
  const shared = new Set(['training.js', 'index.js']);
  const jobFiles = readdirSync(jobs).filter((f) => f.endsWith('.js') && !shared.has(f));
  t.ok(jobFiles.includes('evaluate.js') && jobFiles.includes('train-ae.js'), 'the job files are where the layout says');
  const bad: string[] = [];
  for (const name of jobFiles.filter((f) => !['demo.js', 'study.js', 'piddm-darcy.js'].includes(f))) {
    for (const target of relativeImports(join(jobs, name))) {
      if (dirname(target) === jobs && jobFiles.includes(target.slice(jobs.length + 1))) bad.push(`${name} -> ${relative(jobs, target)}`);
    }
  }
  t.same(bad, [], 'jobs import the library and the shared training loop only');
});

t.test('the checker sees a planted upward import', { skip: built ? false : 'run `npm run build` first' }, async (t) => {
  // The worker-model module is loaded by URL; its compiled text must be read like any other import.
  const worker = join(dist, 'src', 'models', 'worker-models.js');
  const targets = relativeImports(worker).map((p) => relative(dist, p));
  t.ok(targets.some((p) => p.startsWith('src/models/')), `worker-models imports are read: ${targets.slice(0, 3).join(', ')}`);
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const dir = mkdtempSync(join(root, '.tap', 'imports-'));
  const planted = join(dir, 'planted.js');
  writeFileSync(planted, "import { x } from '../../dist/pipelines/cli.js';\nconst u = new URL('./worker.js', import.meta.url);\n");
  t.same(relativeImports(planted).map((p) => relative(root, p)), ['dist/pipelines/cli.js', relative(root, join(dir, 'worker.js'))]);
});
