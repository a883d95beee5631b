/**
 * Networks as plain tfjs modules with explicit, named parameters: the DCAE autoencoder, the space-time ViT,
 * their layers, presets and losses.
 */
export * from './module.js';
export * from './layers.js';
export * from './dcae.js';
export * from './vit.js';
export * from './remat.js';
export * from './presets.js';
