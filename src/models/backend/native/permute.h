/*
 * Axis permutation of a dense row-major array of 4-byte elements (permute.cc): dst, of shape
 * [shape[perm[0]], ..., shape[perm[rank-1]]], takes dst[i_0, ..., i_{r-1}] = src[j] with j_{perm[d]} = i_d.
 * src and dst must not overlap; perm must be a permutation of 0..rank-1 (the caller checks).
 */
#pragma once

#include <cstdint>

namespace wellspring {

void permute(const float *src, float *dst, int rank, const int64_t *shape, const int64_t *perm);

}  // namespace wellspring
