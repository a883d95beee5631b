/**
 * Named network configurations. Each preset is a function of overrides returning a full config, so
 * `createDcae(presets['dcae-small']({ inChannels: 4, periodic: [false, true] }))` keeps the architecture and
 * adapts it to a dataset.
 */
import type { DcaeConfig } from './dcae.js';
import type { VitConfig } from './vit.js';

/** Latent channels of `dcae-small` unless overridden: 64x64x5 Euler states -> 8x8x16 latents (20x compression). */
export const DCAE_SMALL_LATENT_CHANNELS = 16;

export const presets = {
  /** 64x64 inputs, 4 levels of widths [32, 64, 128, 256], 1 residual block per level, 8x8 latents. */
  'dcae-small': (overrides: Partial<DcaeConfig> = {}): DcaeConfig => ({
    inChannels: 5,
    latentChannels: DCAE_SMALL_LATENT_CHANNELS,
    channels: [32, 64, 128, 256],
    blocks: 1,
    inputSize: [64, 64],
    dropout: 0.05,
    ...overrides,
  }),
  /**
   * Width 256, 6 blocks, 4 heads, over windows of 5 frames of 8x8 latent tokens (the `dcae-small` latents).
   * Gradient checkpointing is on: at batch 32 the tape would otherwise hold several gigabytes, past the wasm
   * backend's 4 GB heap (measured: 1.5 GB of live tensors at batch 8 without it, 76 MB with it).
   */
  'vit-small': (overrides: Partial<VitConfig> = {}): VitConfig => ({
    channels: DCAE_SMALL_LATENT_CHANNELS,
    width: 256,
    depth: 6,
    heads: 4,
    ffnFactor: 4,
    embeddingFeatures: 256,
    tokens: [5, 8, 8],
    checkpointing: true,
    ...overrides,
  }),
} as const;

export type PresetName = keyof typeof presets;
