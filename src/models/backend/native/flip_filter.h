/*
 * The filter of a conv's input gradient (flip_filter.cc): [kh, kw, in, out] -> [kh, kw, out, in] with both
 * spatial axes reversed, dst[kh-1-i][kw-1-j][o][c] = src[i][j][c][o]. src and dst must not overlap.
 */
#pragma once

#include <cstdint>

namespace wellspring {

void flip_filter(const float *src, float *dst, int64_t kh, int64_t kw, int64_t in, int64_t out);

}  // namespace wellspring
