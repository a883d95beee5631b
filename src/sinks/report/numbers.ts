/** How the report writes numbers: table cells, ranges and colour-bar ticks (HTML and PNG alike). */

/** What a table cell or range shows for a value that does not exist (NaN: undefined or never measured). */
export const MISSING_CELL = '-';

/** A number in a table cell: 3 significant digits, exponent form when tiny or huge, MISSING_CELL when not finite. */
export const fmt = (v: number): string => {
  if (!Number.isFinite(v)) return MISSING_CELL;
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
};
