/**
 * The conditioning labels of a Well file, as the emulators see them: its numeric simulation parameters (log10
 * where asked, for positive parameters spanning decades), then one `periodic_<axis>` flag per spatial axis.
 */
import type { WellMeta } from './meta.js';

/** Simulation parameters given as log10 by default (Rayleigh-Benard's and the Reynolds number). */
export const DEFAULT_LOG_LABELS: readonly string[] = ['Rayleigh', 'Prandtl', 'Reynolds'];

/** Label names and values of a file (fails, naming the file, on a non-positive parameter to take the log of). */
export function wellLabels(meta: WellMeta, logLabels: readonly string[] = DEFAULT_LOG_LABELS): { names: string[]; values: Float32Array } {
  const names: string[] = [];
  const values: number[] = [];
  for (const [name, value] of Object.entries(meta.simulationParameters)) {
    if (typeof value !== 'number') continue;
    const useLog = logLabels.includes(name);
    if (useLog && !(value > 0)) throw new Error(`${meta.path}: simulation parameter ${name} = ${value} must be positive to take its log`);
    names.push(useLog ? `log10_${name}` : name);
    values.push(useLog ? Math.log10(value) : value);
  }
  const bc = meta.boundaryTable;
  meta.spatialDims.forEach((dim, d) => {
    names.push(`periodic_${dim}`);
    values.push(bc[2 * d] === 2 && bc[2 * d + 1] === 2 ? 1 : 0);
  });
  return { names, values: Float32Array.from(values) };
}
