// The CLI explains itself: --version prints package.json's version; every setting in a command's --help has a
// description; train-surrogate lists (and accepts) only its own settings, not the diffusion-only ones.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { main, loadCommands } from '../../pipelines/cli.js';
import { settingsHelp } from '../../pipelines/cli/config.js';
import { trainAeDefaults } from '../../pipelines/jobs/train-ae.js';
import { trainEmulatorDefaults, DIFFUSION_ONLY_SETTINGS } from '../../pipelines/jobs/train-emulator.js';
import { evaluateDefaults } from '../../pipelines/jobs/evaluate.js';
import { cacheDefaults } from '../../pipelines/jobs/cache.js';
import { distillDefaults } from '../../pipelines/jobs/distill.js';
import { demoDefaults } from '../../pipelines/jobs/demo.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs the CLI's main with console.log / console.error captured. */
async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const code = await main(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Dotted paths of every setting (leaf) of a defaults object. */
function leaves(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? leaves(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

/** The settings block of a help text as dotted key -> description (the text after the value). */
function helpSettings(help: string): Map<string, string> {
  const block = help.slice(help.indexOf('Settings and defaults:\n') + 'Settings and defaults:\n'.length).split('\n');
  const out = new Map<string, string>();
  const stack: string[] = [];
  for (const line of block) {
    const m = /^( +)([A-Za-z0-9_]+):(?: (\S+|"[^"]*"|\[[^\]]*\]))?(?:\s{2,}(.*))?$/.exec(line);
    if (!m) break;
    const depth = (m[1]!.length - 2) / 2;
    stack.length = depth;
    if (m[3] === undefined) stack.push(m[2]!);
    else out.set([...stack, m[2]!].join('.'), (m[4] ?? '').trim());
  }
  return out;
}

t.test('--version prints the version of package.json', async (t) => {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await capture([flag]);
    t.equal(r.code, 0);
    t.equal(r.out, version, `${flag}: ${version}`);
  }
  t.match((await capture(['--help'])).out, /Exit codes: 0 done; 1 failed .* 2 bad command line/s, 'the overview documents the exit codes');
});

t.test('every setting of every command is listed with a description', async (t) => {
  const commands = await loadCommands();
  const expected: Record<string, Record<string, unknown>> = {
    'train-ae': trainAeDefaults,
    'train-diffusion': trainEmulatorDefaults,
    eval: evaluateDefaults,
    cache: cacheDefaults,
    distill: distillDefaults,
    demo: demoDefaults,
  };
  for (const [name, defaults] of Object.entries(expected)) {
    const listed = helpSettings(commands.get(name)!.help);
    t.same([...listed.keys()].sort(), leaves(defaults).sort(), `${name}: every setting listed`);
    const bare = [...listed].filter(([, d]) => d.length < 8).map(([k]) => k);
    t.same(bare, [], `${name}: every setting has a description`);
  }
});

t.test('train-surrogate lists and accepts only its own settings', async (t) => {
  const commands = await loadCommands();
  const surrogate = helpSettings(commands.get('train-surrogate')!.help);
  const diffusion = helpSettings(commands.get('train-diffusion')!.help);
  for (const key of DIFFUSION_ONLY_SETTINGS) {
    t.notOk([...surrogate.keys()].some((k) => k === key || k.startsWith(`${key}.`)), `train-surrogate does not list ${key}`);
    t.ok([...diffusion.keys()].some((k) => k === key || k.startsWith(`${key}.`)), `train-diffusion lists ${key}`);
  }
  const own = leaves(trainEmulatorDefaults).filter((k) => !DIFFUSION_ONLY_SETTINGS.some((d) => k === d || k.startsWith(`${d}.`)));
  t.same([...surrogate.keys()].sort(), own.sort(), 'and every other emulator setting');
  const refused = await capture(['train-surrogate', '--run', join(t.testdir(), 'r'), '--set', 'sampling.steps=4']);
  t.equal(refused.code, 2, 'a diffusion-only setting is a usage error for the surrogate');
  t.match(refused.err, /unknown key "sampling"/);
});

t.test('the settings block: values, groups and descriptions in columns', async (t) => {
  const text = settingsHelp({ a: '', b: { c: [1, 2], d: true } }, { a: 'the a', b: { c: 'the c', d: 'the d' } });
  t.equal(text, ['  a: ""        the a', '  b:', '    c: [1, 2]  the c', '    d: true    the d'].join('\n'));
  t.match(settingsHelp({ s: 'a: b' }, { s: 'quoted' }), /s: "a: b"/, 'a string YAML would misread is quoted');
});
