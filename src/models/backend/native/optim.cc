/*
 * Fused optimiser passes (see optim.h): AdamW with decoupled weight decay, gradient scaling and the EMA in one
 * pass over each parameter, the weighted gradient sum, and the sum of squares the clipping needs. Plain loops the compiler
 * vectorises; -ffp-contract=off keeps every operation rounded as tfjs rounds it.
 */
#include "optim.h"

#include <cmath>

namespace wellspring::optim {

void adamw(float *w, float *m, float *v, const float *g, float *ema, int64_t n, const AdamwConstants &k) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = k.scaled ? g[i] * k.scale : g[i];
    const float mi = m[i] * k.beta1 + gi * k.oneMinusBeta1;
    const float vi = v[i] * k.beta2 + (gi * gi) * k.oneMinusBeta2;
    m[i] = mi;
    v[i] = vi;
    const float step = ((mi / k.c1) / (std::sqrt(vi / k.c2) + k.eps)) * k.lr;
    const float wi = (k.decays ? w[i] * k.decay : w[i]) - step;
    w[i] = wi;
    if (ema) ema[i] = ema[i] * k.emaDecay + wi * k.oneMinusEmaDecay;
  }
}

void ema_update(float *ema, const float *w, int64_t n, float decay, float oneMinusDecay) {
  for (int64_t i = 0; i < n; i++) ema[i] = ema[i] * decay + w[i] * oneMinusDecay;
}

void accumulate(float *out, const float *src, int64_t n, double weight, bool first) {
  if (first) {
    for (int64_t i = 0; i < n; i++) out[i] = float(0.0 + weight * double(src[i]));
  } else {
    for (int64_t i = 0; i < n; i++) out[i] = float(double(out[i]) + weight * double(src[i]));
  }
}

float sum_squares(const float *x, int64_t n) {
  // One chain of float32 additions, in order (the compiler may not reassociate without -ffast-math).
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i] * x[i];
  return sum;
}

}  // namespace wellspring::optim
