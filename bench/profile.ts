/**
 * Timing helpers of the benchmarks. `timeCall`: the wall time of one synchronous tensor-producing call, its result
 * read back. Kernel profile of one call (compute: a training step; diffusion: a denoiser call): tfjs'
 * `tf.profile` times every kernel (on wasm, the wall time of each synchronous kernel call), summed here by op.
 * Kernels that the project's own kernels call through tfjs (e.g. Transpose or Conv2D inside a gradient kernel)
 * count in their caller's time too, so shares can add up to more than 1.
 */
import * as tf from '@tensorflow/tfjs';

/** Kernel time by op over one profiled step, largest first, as ms and share of the step's wall time. */
export async function profileStep(run: () => Promise<unknown>, top = 10): Promise<{ stepMs: number; kernels: Array<[string, number, number]> }> {
  const t0 = performance.now();
  const prof = await tf.profile(async () => {
    await run();
  });
  const stepMs = performance.now() - t0;
  const byOp = new Map<string, number>();
  // Registered kernels only: tf.profile also lists op scopes (`fusedConv2d__op`, custom gradients' scopes), which
  // wrap kernels listed on their own.
  const backend = tf.getBackend();
  for (const k of prof.kernels) {
    if (tf.getKernel(k.name, backend)) byOp.set(k.name, (byOp.get(k.name) ?? 0) + (k.kernelTimeMs as number));
  }
  const kernels = [...byOp.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => [name, Math.round(ms), Number((ms / stepMs).toFixed(3))] as [string, number, number]);
  return { stepMs, kernels };
}


/** Wall time (ms) of one call of `f`, including reading its result back (so lazy backends finish); the result is disposed. */
export function timeCall(f: () => tf.Tensor): number {
  const t0 = performance.now();
  const out = f();
  out.dataSync();
  const ms = performance.now() - t0;
  out.dispose();
  return ms;
}
