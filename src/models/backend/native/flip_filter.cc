/*
 * Filter flip for conv input gradients (flip_filter.h): per tap, a transpose of the [in, out] matrix into the
 * mirrored tap. Blocked 16 x 16 so that both the reads (rows of src) and the writes (rows of dst) stay within a
 * few cache lines at a time; a plain copy, so the result is exact. The wasm backend's JS loop of the same flip took
 * about 3 ns per element (4-5 ms per step of the demo's autoencoder, per worker).
 */
#include "flip_filter.h"

#include <algorithm>

namespace wellspring {

void flip_filter(const float *src, float *dst, int64_t kh, int64_t kw, int64_t in, int64_t out) {
  constexpr int64_t B = 16;
  const int64_t block = in * out;
  for (int64_t i = 0; i < kh; i++) {
    for (int64_t j = 0; j < kw; j++) {
      const float *s = src + (i * kw + j) * block;
      float *d = dst + ((kh - 1 - i) * kw + (kw - 1 - j)) * block;
      for (int64_t c0 = 0; c0 < in; c0 += B) {
        const int64_t c1 = std::min(in, c0 + B);
        for (int64_t o0 = 0; o0 < out; o0 += B) {
          const int64_t o1 = std::min(out, o0 + B);
          for (int64_t c = c0; c < c1; c++) {
            for (int64_t o = o0; o < o1; o++) d[o * in + c] = s[c * out + o];
          }
        }
      }
    }
  }
}

}  // namespace wellspring
