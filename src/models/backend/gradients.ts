/**
 * Gradients tfjs-core 4.22.0 lacks on every backend, registered globally (backend-independent, written with tf ops):
 * `DepthToSpace` (pixel shuffle), `StridedSlice` (positive strides, no new axes), and zero gradients for the
 * comparison ops so that `tf.where(x.greater(0), a, b)` differentiates with respect to `x` through `a` and `b`.
 * `selectBackend` registers them whatever backend it picks; registration is idempotent and never overrides a
 * gradient that already exists.
 */
import * as tf from '@tensorflow/tfjs';
import type { DepthToSpaceAttrs, GradConfig, StridedSliceAttrs } from '@tensorflow/tfjs';

/** Gradient of depthToSpace (NHWC): the inverse rearrangement, as reshape + transpose. */
const depthToSpaceGrad: GradConfig = {
  kernelName: tf.DepthToSpace,
  gradFunc: (dy, _saved, attrs) => {
    const { blockSize: k, dataFormat } = attrs as unknown as DepthToSpaceAttrs;
    if (dataFormat !== 'NHWC') throw new Error(`depthToSpace gradient: only NHWC is supported, got ${dataFormat}`);
    const g = dy as tf.Tensor4D;
    const [n, h, w, c] = g.shape;
    return {
      x: () =>
        g
          .reshape([n, h / k, k, w / k, k, c])
          .transpose([0, 1, 3, 2, 4, 5])
          .reshape([n, h / k, w / k, k * k * c]),
    };
  },
};

/** Gradient of stridedSlice for positive strides without new/shrink axes: zeros with dy scattered back. */
/** The resolved begin/size/strides of a StridedSlice of `shape` (shared by its gradient and the wasm kernel). */
export function stridedSliceInfo(shape: number[], a: StridedSliceAttrs) {
  return tf.slice_util.sliceInfo(shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
}

const stridedSliceGrad: GradConfig = {
  kernelName: tf.StridedSlice,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const a = attrs as unknown as StridedSliceAttrs;
    const info = stridedSliceInfo(x.shape, a);
    if (info.strides.some((s) => s <= 0) || a.newAxisMask !== 0) {
      throw new Error('stridedSlice gradient: only positive strides without newAxisMask are supported');
    }
    return {
      x: () => {
        const box = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
        let g = (dy as tf.Tensor).reshape(box);
        for (let axis = 0; axis < x.rank; axis++) {
          const step = info.strides[axis];
          const n = box[axis];
          if (n === 0) return tf.zerosLike(x);
          const shape = g.shape;
          if (step > 1) {
            // Interleave step-1 zeros after each element along `axis`, then drop the trailing ones.
            const expanded = g.reshape([...shape.slice(0, axis + 1), 1, ...shape.slice(axis + 1)]);
            const padding = expanded.shape.map((): [number, number] => [0, 0]);
            padding[axis + 1] = [0, step - 1];
            const spread = tf.pad(expanded, padding).reshape([
              ...shape.slice(0, axis),
              n * step,
              ...shape.slice(axis + 1),
            ]);
            const begin = shape.map(() => 0);
            const size = spread.shape.slice();
            size[axis] = (n - 1) * step + 1;
            g = tf.slice(spread, begin, size);
          }
          const before = info.begin[axis];
          const after = x.shape[axis] - before - g.shape[axis];
          if (before !== 0 || after !== 0) {
            const padding = g.shape.map((): [number, number] => [0, 0]);
            padding[axis] = [before, after];
            g = tf.pad(g, padding);
          }
        }
        return g;
      },
    };
  },
};

const zeroGrad = (kernelName: string): GradConfig => ({
  kernelName,
  gradFunc: (dy) => ({ a: () => tf.zerosLike(dy as tf.Tensor), b: () => tf.zerosLike(dy as tf.Tensor) }),
});

function registerGradientOnce(config: GradConfig): void {
  if (tf.getGradient(config.kernelName) === undefined) tf.registerGradient(config);
}

/** Registers the gradients above (idempotent). */
export function registerMissingGradients(): void {
  registerGradientOnce(depthToSpaceGrad);
  registerGradientOnce(stridedSliceGrad);
  for (const name of [tf.Greater, tf.GreaterEqual, tf.Less, tf.LessEqual, tf.Equal, tf.NotEqual]) {
    registerGradientOnce(zeroGrad(name));
  }
}
