/**
 * An independent check of a column against the canonical `arrow.fixed_shape_tensor` specification
 * (arrow.apache.org/docs/format/CanonicalExtensions.html), written from the specification for the tests, not
 * sharing code with the library's reader: the field metadata `ARROW:extension:name` names the type,
 * `ARROW:extension:metadata` is a JSON object with "shape" (an array of integers) and optionally "dim_names" (one
 * string per dimension) and "permutation"; the storage is a FixedSizeList whose size is the product of the shape.
 */
import { Type, type Field, type FixedSizeList } from 'apache-arrow';

export interface SpecTensor {
  shape: number[];
  dimNames: string[] | undefined;
  listSize: number;
  valueType: string;
}

/** Returns what the field declares, or a list of the ways it breaks the specification. */
export function fixedShapeTensorOf(field: Field): SpecTensor | { problems: string[] } {
  const problems: string[] = [];
  if (field.metadata.get('ARROW:extension:name') !== 'arrow.fixed_shape_tensor') problems.push(`extension name ${field.metadata.get('ARROW:extension:name')}`);
  let parsed: { shape?: unknown; dim_names?: unknown; permutation?: unknown } = {};
  try {
    parsed = JSON.parse(field.metadata.get('ARROW:extension:metadata') ?? 'null') ?? {};
  } catch {
    problems.push('extension metadata is not JSON');
  }
  const shape = parsed.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) problems.push(`shape ${JSON.stringify(shape)}`);
  if (parsed.dim_names !== undefined && (!Array.isArray(parsed.dim_names) || parsed.dim_names.length !== (shape as unknown[]).length)) problems.push('dim_names length');
  if (field.type.typeId !== Type.FixedSizeList) problems.push(`storage ${String(field.type)}`);
  const listSize = (field.type as FixedSizeList).listSize;
  const product = Array.isArray(shape) ? (shape as number[]).reduce((a, b) => a * b, 1) : NaN;
  if (product !== listSize) problems.push(`list size ${listSize} is not the product of the shape (${product})`);
  if (problems.length > 0) return { problems };
  return { shape: shape as number[], dimNames: parsed.dim_names as string[] | undefined, listSize, valueType: String((field.type as FixedSizeList).children[0]!.type) };
}
