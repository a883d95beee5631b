/**
 * `wellspring inspect <file>`: a readable summary of a Well HDF5 file (grid, time, fields and channels,
 * scalars, boundary conditions), or its validated metadata as JSON with `--json`.
 */
import { statSync } from 'node:fs';
import { UsageError, parseCommandArgs, type Command } from '../cli/command.js';
import { openWell, type WellFieldInfo, type WellMeta } from '../../src/formats/well/index.js';

const help = `Usage: wellspring inspect <file.hdf5> [--json]

Reads the structure of a Well file (attributes and small metadata only, never the field data) and checks it
against the format: shapes against n_trajectories, time and grid, field lists, boundary conditions.

Options:
  --json       print the validated metadata as JSON (coordinates summarised as first/last/count)
  -h, --help   this help

Example:
  wellspring inspect datasets/euler_multi_quadrants_periodicBC/data/train/euler_multi_quadrants_periodicBC_gamma_1.4_Air_2.hdf5`;

function range(a: Float32Array): { first: number; last: number; count: number } {
  return { first: a[0] ?? NaN, last: a[a.length - 1] ?? NaN, count: a.length };
}

/** Metadata as plain JSON (typed arrays summarised or listed). */
export function metaToJson(meta: WellMeta): unknown {
  return {
    path: meta.path,
    datasetName: meta.datasetName,
    gridType: meta.gridType,
    nSpatialDims: meta.nSpatialDims,
    spatialDims: meta.spatialDims,
    spatialShape: meta.spatialShape,
    coords: Object.fromEntries(meta.spatialDims.map((d, i) => [d, range(meta.coords[i]!)])),
    nTrajectories: meta.nTrajectories,
    nSteps: meta.nSteps,
    time: { ...range(meta.time), sampleVarying: meta.timeSampleVarying },
    channels: meta.layout.names,
    constantChannels: meta.constantLayout.names,
    fields: meta.fields,
    constantFields: meta.constantFields,
    scalars: meta.scalars,
    constantScalars: meta.constantScalars,
    simulationParameters: meta.simulationParameters,
    boundaryConditions: meta.boundaryConditions.map(({ mask, ...rest }) => ({ ...rest, maskTrueCount: mask.filter(Boolean).length })),
    boundaryTable: meta.spatialDims.map((d, i) => ({ dim: d, low: meta.boundaryTable[2 * i], high: meta.boundaryTable[2 * i + 1] })),
  };
}

const CODE_NAMES = ['WALL', 'OPEN', 'PERIODIC'];

function fieldLine(f: WellFieldInfo): string {
  const flags = [f.sampleVarying ? 'per-trajectory' : 'shared', f.timeVarying ? 'time-varying' : 'constant'];
  if (f.dimVarying.some((v) => !v)) flags.push(`dim_varying [${f.dimVarying.join(', ')}]`);
  if (f.symmetric) flags.push('symmetric');
  if (f.antisymmetric) flags.push('antisymmetric');
  return `  t${f.order} ${f.name.padEnd(16)} [${f.shape.join(', ')}]  ${flags.join(', ')}  -> ${f.channelNames.join(', ')}`;
}

export function formatMeta(meta: WellMeta): string {
  const bytes = statSync(meta.path).size;
  const num = (x: number | undefined) => (x === undefined ? '?' : String(Number(x.toPrecision(7))));
  const t = meta.time;
  const dt = t.length > 1 ? t[1]! - t[0]! : NaN;
  const lines = [
    `${meta.path}  (${(bytes / 1e6).toFixed(1)} MB)`,
    `dataset      ${meta.datasetName}  (${meta.gridType} grid)`,
    `grid         ${meta.spatialDims.map((d, i) => `${d} ${meta.spatialShape[i]} [${num(meta.coords[i]![0])} .. ${num(meta.coords[i]!.at(-1))}]`).join(' x ')}`,
    `trajectories ${meta.nTrajectories}`,
    `time         ${meta.nSteps} steps, t = ${num(t[0])} .. ${num(t[t.length - 1])}${Number.isFinite(dt) ? `, dt = ${dt.toPrecision(4)}` : ''}${meta.timeSampleVarying ? ' (per trajectory)' : ''}`,
    `channels     ${meta.layout.names.length}: ${meta.layout.names.join(', ')}`,
    'fields:',
    ...meta.fields.map(fieldLine),
  ];
  if (meta.constantFields.length > 0) lines.push('constant fields:', ...meta.constantFields.map(fieldLine));
  const scalars = [...meta.scalars, ...meta.constantScalars];
  if (scalars.length > 0) {
    lines.push('scalars:');
    for (const s of scalars) {
      const v = s.values.length === 1 ? String(s.values[0]) : `${s.values.length} values`;
      lines.push(`  ${s.name.padEnd(16)} ${v}  (${s.dtype}${s.timeVarying ? ', time-varying' : ''}${s.sampleVarying ? ', per-trajectory' : ''})`);
    }
  }
  lines.push('boundary conditions:');
  for (const b of meta.boundaryConditions) lines.push(`  ${b.name.padEnd(20)} ${b.bcType.padEnd(9)} dims ${b.dims.join(', ')}  mask true at ${b.mask.filter(Boolean).length}/${b.mask.length}`);
  meta.spatialDims.forEach((d, i) => {
    lines.push(`  table ${d}: low ${CODE_NAMES[meta.boundaryTable[2 * i]!]}, high ${CODE_NAMES[meta.boundaryTable[2 * i + 1]!]}`);
  });
  return lines.join('\n');
}

export const command: Command = {
  name: 'inspect',
  summary: 'Summarise and validate a Well HDF5 file (--json for machines)',
  help,
  async run(argv) {
    const parsed = parseCommandArgs(argv, { json: { type: 'boolean' } });
    if (parsed.positionals.length !== 1) throw new UsageError('expected exactly one file');
    // idle HDF5 workers are unref'd: they never hold the process open, so they are not closed here
    const meta = await openWell(parsed.positionals[0]!);
    console.log(parsed.values.json ? JSON.stringify(metaToJson(meta), null, 2) : formatMeta(meta));
    return 0;
  },
};
