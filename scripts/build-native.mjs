#!/usr/bin/env node
/**
 * Builds the native kernels (src/models/backend/native/*.cc, N-API; winograd.cc includes the wasm kernels'
 * winograd.c for its transforms) into build/wellspring_native.node with the
 * system's C++ compiler, called directly (no node-gyp, so nothing is downloaded). Runs as the package's `install`
 * script and as `npm run build:native`.
 *
 * It never fails an install: on any problem (no compiler, no Node headers, a compile error, a module that does not
 * load) it prints one line, `wellspring: native kernels not built (<reason>); the wasm kernels are used`, and
 * exits 0, removing any module an earlier build left there. The module is compiled for the baseline ISA with per-function AVX2 / AVX-512 paths chosen at run time,
 * so a build is portable across x86-64 machines.
 *
 * Settings: CXX (the compiler; default: the first of g++, c++, clang++ that runs), WELLSPRING_NODE_INCLUDE (the
 * folder holding node_api.h; default: <node prefix>/include/node, /usr/include/node, /usr/local/include/node),
 * WELLSPRING_NATIVE=off (skip the build).
 *
 *   node scripts/build-native.mjs [--out <dir>] [--verbose]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const FILE = 'wellspring_native.node';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

class Skip extends Error {}

function run(cmd, args, timeoutMs) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
}

/** The first line of a tool's complaint, for the one-line message. */
function firstLine(text) {
  const line = (text ?? '').split('\n').map((l) => l.trim()).find((l) => l.length > 0);
  return line ? (line.length > 200 ? `${line.slice(0, 200)}...` : line) : 'no message';
}

function findCompiler() {
  const explicit = process.env.CXX;
  const candidates = explicit ? [explicit] : ['g++', 'c++', 'clang++'];
  for (const cxx of candidates) {
    const probe = run(cxx, ['--version'], 30_000);
    if (!probe.error && probe.status === 0) return cxx;
  }
  throw new Skip(explicit ? `the compiler CXX=${explicit} does not run` : 'no C++ compiler found (tried g++, c++, clang++; set CXX)');
}

function findHeaders() {
  const candidates = process.env.WELLSPRING_NODE_INCLUDE
    ? [process.env.WELLSPRING_NODE_INCLUDE]
    : [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
  const found = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (!found) throw new Skip(`no Node headers: node_api.h is not in ${candidates.join(', ')} (set WELLSPRING_NODE_INCLUDE)`);
  return found;
}

function build(outDir, verbose) {
  if (process.env.WELLSPRING_NATIVE === 'off') throw new Skip('WELLSPRING_NATIVE=off');
  if (process.platform === 'win32') throw new Skip('no build recipe for Windows');
  const cxx = findCompiler();
  const include = findHeaders();
  const srcDir = join(root, 'src/models/backend/native');
  const sources = existsSync(srcDir) ? readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort().map((f) => join(srcDir, f)) : [];
  if (sources.length === 0) throw new Skip(`no sources in ${srcDir}`);
  mkdirSync(outDir, { recursive: true });
  const target = join(outDir, FILE);
  const temp = join(outDir, `${FILE.replace(/\.node$/, '')}.${process.pid}.tmp.node`); // require needs the .node suffix
  // No floating-point contraction: native/winograd.cc compiles wasm/winograd.c, whose transforms then give the
  // wasm build's bits (gemm.cc's FMAs are explicit intrinsics).
  const flags = ['-O3', '-std=c++17', '-ffp-contract=off', '-fPIC', '-shared', '-fvisibility=hidden', '-Wall', '-Wextra', `-I${include}`];
  if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
  const args = [...flags, '-o', temp, ...sources];
  if (verbose) console.log(`wellspring: ${cxx} ${args.join(' ')}`);
  const compiled = run(cxx, args, 600_000);
  if (verbose && (compiled.stdout || compiled.stderr)) process.stdout.write(`${compiled.stdout ?? ''}${compiled.stderr ?? ''}`);
  if (compiled.error || compiled.status !== 0) {
    rmSync(temp, { force: true });
    throw new Skip(`${cxx} failed: ${compiled.error ? compiled.error.message : firstLine(compiled.stderr)}`);
  }
  // Load it in a fresh process before putting it in place: a module that cannot load must not be found later.
  const check = run(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(temp)}).isa())`], 60_000);
  if (check.error || check.status !== 0) {
    rmSync(temp, { force: true });
    throw new Skip(`the built module does not load: ${check.error ? check.error.message : firstLine(check.stderr)}`);
  }
  renameSync(temp, target);
  return { target, isa: check.stdout.trim() };
}

const { values } = parseArgs({ options: { out: { type: 'string' }, verbose: { type: 'boolean', default: false } } });
const outDir = resolve(values.out ?? join(root, 'build'));
try {
  const { target, isa } = build(outDir, values.verbose);
  console.log(`wellspring: native kernels built (${target}, ${isa})`);
} catch (err) {
  // The message says the wasm kernels are used: a module left from an earlier build must not be found.
  rmSync(join(outDir, FILE), { force: true });
  const reason = err instanceof Skip ? err.message : `unexpected error: ${firstLine(err instanceof Error ? err.message : String(err))}`;
  console.log(`wellspring: native kernels not built (${reason}); the wasm kernels are used`);
}
process.exit(0);
