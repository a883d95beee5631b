/**
 * The flat float32 layout of named parameters: each parameter's name, shape and offset (in floats), in the map's
 * order. The data-parallel workers share weights and gradients in this layout, and the fused optimiser step
 * (fused.ts) keeps its moments and EMA in it.
 */
import type * as tf from '@tensorflow/tfjs';

/** Layout of the flat float32 buffers: each parameter's name, shape and offset (in floats). */
export interface ParameterLayout {
  names: string[];
  shapes: number[][];
  offsets: number[];
  total: number;
}

/** The layout of `params`, parameter after parameter in the map's order. */
export function layoutOf(params: Map<string, tf.Variable>): ParameterLayout {
  const names: string[] = [];
  const shapes: number[][] = [];
  const offsets: number[] = [];
  let total = 0;
  for (const [name, p] of params) {
    names.push(name);
    shapes.push(p.shape.slice());
    offsets.push(total);
    total += p.size;
  }
  return { names, shapes, offsets, total };
}

/** Number of floats of parameter `i`. */
export function sizeAt(layout: ParameterLayout, i: number): number {
  return (i + 1 < layout.offsets.length ? layout.offsets[i + 1] : layout.total) - layout.offsets[i];
}

/** Parameter `i`'s part of a flat buffer (a view, no copy). */
export function slotOf(layout: ParameterLayout, flat: Float32Array, i: number): Float32Array {
  return flat.subarray(layout.offsets[i], layout.offsets[i] + sizeAt(layout, i));
}
