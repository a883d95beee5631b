/**
 * Symmetry augmentations of 2D channel-last fields, as the reference uses for autoencoder training and latent
 * caching: flips, a transposition (square grids) and rolls along periodic axes. They act on physical fields, so a
 * vector field's components follow the geometry: a flip along x negates the x component, a transposition swaps
 * the x and y components.
 */
import type { Rng } from './random.js';

/** One spatial transform of an (H, W, C) grid; axis 0 is H (the first spatial dim, "x"), axis 1 is W ("y"). */
export interface GridTransform {
  /** Mirror along axis 0 / axis 1. */
  flip: [boolean, boolean];
  /** Swap the two axes (square grids only). */
  transpose: boolean;
  /** Cyclic shift along axis 0 / axis 1 (periodic axes only), in grid cells. */
  roll: [number, number];
}

export const IDENTITY_TRANSFORM: GridTransform = { flip: [false, false], transpose: false, roll: [0, 0] };

/** How channels transform: for each channel, its vector component axis (0, 1) or null for scalars. */
export interface ChannelGeometry {
  /** `component[c]`: spatial axis the channel is a component along, or null for a scalar channel. */
  component: (0 | 1 | null)[];
  /** `partner[c]`: the channel holding the other component of the same vector (for transposition), or -1. */
  partner: number[];
}

/**
 * Channel geometry from a Well channel layout: fields with two components (`momentum_x`, `momentum_y`) are
 * vectors; anything else is treated as scalars (order-2 tensors are rejected, their rule is not implemented).
 */
export function channelGeometry(layout: { fields: string[]; components: number[] }): ChannelGeometry {
  const C = layout.fields.length;
  const component: (0 | 1 | null)[] = new Array(C).fill(null);
  const partner = new Array<number>(C).fill(-1);
  const byField = new Map<string, number[]>();
  layout.fields.forEach((f, c) => byField.set(f, [...(byField.get(f) ?? []), c]));
  for (const [field, channels] of byField) {
    if (channels.length === 1) continue;
    if (channels.length !== 2) {
      throw new Error(`augment: field "${field}" has ${channels.length} components; only scalars and 2D vectors can be augmented`);
    }
    const [a, b] = channels as [number, number];
    component[a] = layout.components[a] === 0 ? 0 : 1;
    component[b] = layout.components[b] === 0 ? 0 : 1;
    partner[a] = b;
    partner[b] = a;
  }
  return { component, partner };
}

export interface RandomTransformOptions {
  /** Which axes are periodic (rolls only happen there). */
  periodic: [boolean, boolean];
  /** Grid size [H, W] (rolls are drawn in [0, size); transposition needs H = W). */
  size: [number, number];
  /** Allow flips (default true), transposition (default true, square grids only), rolls (default true). */
  flips?: boolean;
  transpose?: boolean;
  rolls?: boolean;
}

/** Draws a transform uniformly over the allowed symmetries. */
export function randomTransform(random: Rng, options: RandomTransformOptions): GridTransform {
  const flips = options.flips ?? true;
  const canTranspose = (options.transpose ?? true) && options.size[0] === options.size[1];
  const rolls = options.rolls ?? true;
  return {
    flip: [flips && random.uniform() < 0.5, flips && random.uniform() < 0.5],
    transpose: canTranspose && random.uniform() < 0.5,
    roll: [0, 1].map((a) => (rolls && options.periodic[a] ? random.int(options.size[a]!) : 0)) as [number, number],
  };
}

/** `flip:x;transpose;roll:y=3` (axis names given), or '' for the identity. */
export function describeTransform(t: GridTransform, axisNames: [string, string] = ['x', 'y']): string {
  const parts: string[] = [];
  t.flip.forEach((f, a) => f && parts.push(`flip:${axisNames[a]}`));
  if (t.transpose) parts.push('transpose');
  t.roll.forEach((r, a) => r !== 0 && parts.push(`roll:${axisNames[a]}=${r}`));
  return parts.join(';');
}

/**
 * Applies `t` to frames (N, H, W, C), channel-last, returning a new array. Order: flips, then transposition, then
 * rolls (output index = transformed input index). Vector components are negated / swapped with the geometry.
 */
export function applyTransform(data: Float32Array, shape: readonly [number, number, number, number], t: GridTransform, geometry: ChannelGeometry): Float32Array {
  const [N, H, W, C] = shape;
  if (data.length !== N * H * W * C) throw new Error(`augment: ${data.length} values do not fit shape [${shape}]`);
  if (t.transpose && H !== W) throw new Error(`augment: cannot transpose a ${H}x${W} grid`);
  const out = new Float32Array(data.length);
  // Per output channel: source channel and sign.
  const source = new Int32Array(C);
  const sign = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    const axis = geometry.component[c] ?? null;
    // A flip negates the component along the flipped axis (axes taken before transposition).
    const flipped = axis !== null && t.flip[axis];
    if (t.transpose && axis !== null) {
      // output component along axis a comes from the input component along the other axis
      const from = geometry.partner[c]!;
      const fromAxis = geometry.component[from]!;
      source[c] = from;
      sign[c] = t.flip[fromAxis] ? -1 : 1;
    } else {
      source[c] = c;
      sign[c] = flipped ? -1 : 1;
    }
  }
  const frame = H * W * C;
  for (let n = 0; n < N; n++) {
    const base = n * frame;
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        // output (i, j) <- rolled back, then un-transposed, then un-flipped input position
        let a = (i - t.roll[0] + H) % H;
        let b = (j - t.roll[1] + W) % W;
        if (t.transpose) [a, b] = [b, a];
        if (t.flip[0]) a = H - 1 - a;
        if (t.flip[1]) b = W - 1 - b;
        const o = base + (i * W + j) * C;
        const s = base + (a * W + b) * C;
        for (let c = 0; c < C; c++) out[o + c] = sign[c]! * data[s + source[c]!]!;
      }
    }
  }
  return out;
}
