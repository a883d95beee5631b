/*
 * Rotary embedding kernels (rotary.h): plain loops over each row's channel pairs, which the compiler vectorises
 * for the caller's ISA (`run_for`, gemm.h); every element's operations and their
 * order are the same on every path, so the bits do not depend on the ISA.
 */
#include "rotary.h"

#include <cstddef>
#include <vector>

namespace wellspring::rotary {

void forward(Isa isa, const float *x, const float *cos, const float *sin, int64_t batch, int64_t angles, int64_t half, float *y) {
  run_for(isa, [&]() __attribute__((always_inline)) {
    for (int64_t e = 0; e < batch; e++) {
      for (int64_t j = 0; j < angles; j += half) {
        const float *a = x + 2 * (e * angles + j);
        const float *b = a + half;
        float *ya = y + 2 * (e * angles + j);
        float *yb = ya + half;
        const float *c = cos + j;
        const float *s = sin + j;
        for (int64_t i = 0; i < half; i++) {
          const float ac = a[i] * c[i], bs = b[i] * s[i], as = a[i] * s[i], bc = b[i] * c[i];
          ya[i] = ac - bs;
          yb[i] = as + bc;
        }
      }
    }
  });
}

void backward(Isa isa, const float *dy, const float *x, const float *cos, const float *sin, int64_t batch, int64_t angles, int64_t half,
              float *dx, float *dcos, float *dsin) {
  std::vector<double> accC(static_cast<std::size_t>(angles), 0.0), accS(static_cast<std::size_t>(angles), 0.0);
  run_for(isa, [&]() __attribute__((always_inline)) {
    for (int64_t e = 0; e < batch; e++) {
      for (int64_t j = 0; j < angles; j += half) {
        const int64_t o = 2 * (e * angles + j);
        const float *a = x + o, *b = x + o + half, *g1 = dy + o, *g2 = dy + o + half;
        float *da = dx + o, *db = dx + o + half;
        const float *c = cos + j, *s = sin + j;
        double *ac = accC.data() + j, *as = accS.data() + j;
        for (int64_t i = 0; i < half; i++) {
          const float g1c = g1[i] * c[i], g2s = g2[i] * s[i], g2c = g2[i] * c[i], g1s = g1[i] * s[i];
          da[i] = g1c + g2s;
          db[i] = g2c - g1s;
          const float g1a = g1[i] * a[i], g2b = g2[i] * b[i], g2a = g2[i] * a[i], g1b = g1[i] * b[i];
          ac[i] += double(g1a) + double(g2b);
          as[i] += double(g2a) - double(g1b);
        }
      }
    }
    for (int64_t j = 0; j < angles; j++) {
      dcos[j] = float(accC[static_cast<std::size_t>(j)]);
      dsin[j] = float(accS[static_cast<std::size_t>(j)]);
    }
  });
}

}  // namespace wellspring::rotary
