/*
 * Axis permutation (permute.h). The trailing axes that the permutation leaves in place form contiguous runs in
 * both arrays (copied with memcpy: the DCAE's patchify / unpatchify, [B*H/2, 2, W/2, 2, C] -> [.., W/2, 2, 2, C],
 * moves runs of 2C floats); without such axes the innermost output axis is a strided gather. The outer output
 * index runs as an odometer with the source offset kept incrementally. A plain copy: exact.
 *
 * Why: the wasm backend's stock Transpose took about 4.6 ns per element on those rank-5 permutations (2-5 ms per
 * step of the demo's autoencoder); runs of 32 floats copy at memory speed.
 */
#include "permute.h"

#include <cstring>
#include <vector>

namespace wellspring {

void permute(const float *src, float *dst, int rank, const int64_t *shape, const int64_t *perm) {
  std::vector<int64_t> srcStride(static_cast<size_t>(rank), 1);
  for (int d = rank - 2; d >= 0; d--) srcStride[d] = srcStride[d + 1] * shape[d + 1];
  // Trailing axes kept in place: one contiguous run per outer index.
  int inner = rank;
  int64_t run = 1;
  while (inner > 0 && perm[inner - 1] == inner - 1) {
    inner--;
    run *= shape[inner];
  }
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total *= shape[d];
  if (total == 0) return;
  if (inner == 0) {  // the identity
    std::memcpy(dst, src, static_cast<size_t>(total) * sizeof(float));
    return;
  }
  // Outer output axes 0..inner-1 (output dim d is source axis perm[d]); the last of them is gathered when run == 1.
  std::vector<int64_t> dim(static_cast<size_t>(inner)), stride(static_cast<size_t>(inner)), index(static_cast<size_t>(inner), 0);
  for (int d = 0; d < inner; d++) {
    dim[d] = shape[perm[d]];
    stride[d] = srcStride[perm[d]];
  }
  const int last = inner - 1;
  const int64_t lastDim = dim[last], lastStride = stride[last];
  int64_t offset = 0;
  const int64_t rows = total / (run * lastDim);
  for (int64_t r = 0; r < rows; r++) {
    if (run == 1) {
      const float *s = src + offset;
      for (int64_t i = 0; i < lastDim; i++) dst[i] = s[i * lastStride];
      dst += lastDim;
    } else {
      for (int64_t i = 0; i < lastDim; i++, dst += run) std::memcpy(dst, src + offset + i * lastStride, static_cast<size_t>(run) * sizeof(float));
    }
    // Advance the odometer over the outer axes 0..last-1.
    for (int d = last - 1; d >= 0; d--) {
      offset += stride[d];
      if (++index[d] < dim[d]) break;
      offset -= stride[d] * dim[d];
      index[d] = 0;
    }
  }
}

}  // namespace wellspring
