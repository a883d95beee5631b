/**
 * Pooled moments (count, mean, sum of squared deviations) per tensor component, accumulated block by block and
 * merged with Chan et al.'s parallel update in float64. Each block's own mean and M2 are computed in two passes
 * over the block, so the result is numerically stable even for fields with a large mean and a small spread.
 * Plain data (no classes) so accumulators cross worker boundaries by structured clone.
 */

/** Moments of one tensor field: one entry per component (1, D or D*D), pooled over every other axis. */
export interface FieldMoments {
  /** Number of values pooled per component. */
  count: number;
  mean: number[];
  /** Sum of squared deviations from the mean (variance = m2 / count). */
  m2: number[];
}

/** Moments of every field of a dataset: plain values and one-step time differences (`delta`). */
export interface MomentSet {
  fields: Record<string, FieldMoments>;
  deltas: Record<string, FieldMoments>;
}

export function emptyMoments(components: number): FieldMoments {
  return { count: 0, mean: new Array<number>(components).fill(0), m2: new Array<number>(components).fill(0) };
}

/** Merges `b` into `a` (Chan's parallel formula), in place; returns `a`. */
export function mergeMoments(a: FieldMoments, b: FieldMoments): FieldMoments {
  if (b.count === 0) return a;
  if (a.mean.length !== b.mean.length) {
    throw new Error(`cannot merge moments with ${a.mean.length} and ${b.mean.length} components`);
  }
  const n = a.count + b.count;
  for (let c = 0; c < a.mean.length; c++) {
    const delta = b.mean[c]! - a.mean[c]!;
    a.mean[c] = a.mean[c]! + (delta * b.count) / n;
    a.m2[c] = a.m2[c]! + b.m2[c]! + (delta * delta * a.count * b.count) / n;
  }
  a.count = n;
  return a;
}

/**
 * Adds a block of interleaved values (component fastest: `values[i * components + c]`) to `acc`. When `minus`
 * is given, the block is `values - minus` elementwise (a one-step time difference), computed in float64.
 */
export function addBlock(
  acc: FieldMoments,
  values: ArrayLike<number>,
  components: number,
  minus?: ArrayLike<number>,
): void {
  const n = values.length / components;
  if (n === 0) return;
  const mean = new Float64Array(components);
  const m2 = new Float64Array(components);
  if (minus) {
    for (let i = 0, k = 0; i < n; i++) for (let c = 0; c < components; c++, k++) mean[c]! += values[k]! - minus[k]!;
    for (let c = 0; c < components; c++) mean[c]! /= n;
    for (let i = 0, k = 0; i < n; i++)
      for (let c = 0; c < components; c++, k++) {
        const d = values[k]! - minus[k]! - mean[c]!;
        m2[c]! += d * d;
      }
  } else {
    for (let i = 0, k = 0; i < n; i++) for (let c = 0; c < components; c++, k++) mean[c]! += values[k]!;
    for (let c = 0; c < components; c++) mean[c]! /= n;
    for (let i = 0, k = 0; i < n; i++)
      for (let c = 0; c < components; c++, k++) {
        const d = values[k]! - mean[c]!;
        m2[c]! += d * d;
      }
  }
  mergeMoments(acc, { count: n, mean: Array.from(mean), m2: Array.from(m2) });
}

/** Merges every field of `b` into `a`, in place; returns `a`. */
export function mergeMomentSets(a: MomentSet, b: MomentSet): MomentSet {
  for (const kind of ['fields', 'deltas'] as const) {
    for (const [name, m] of Object.entries(b[kind])) {
      const target = a[kind][name];
      if (target) mergeMoments(target, m);
      else a[kind][name] = { count: m.count, mean: [...m.mean], m2: [...m.m2] };
    }
  }
  return a;
}
