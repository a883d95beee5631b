/*
 * Fused optimiser passes over flat float32 buffers, for the data-parallel trainer (src/models/train/fused.ts holds
 * the math, the JS twin and the dispatch; addon.cc the N-API glue). Each element is computed with the same float32
 * operations, in the same order, as the tfjs ops of AdamW.apply and Ema.update (optim.ts): every +, -, *, / and
 * sqrt of float32 operands is correctly rounded, and the module is built with -ffp-contract=off (no fused
 * multiply-adds), so the results are the tensor path's bits. Single-threaded, no state.
 */
#pragma once

#include <cstdint>

namespace wellspring::optim {

/** The float32 constants of one AdamW update (each rounded from the double the tensor path uses). */
struct AdamwConstants {
  float scale;      // gradient factor (clipping); 1: none
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2;
  float c1, c2;     // bias corrections 1 - beta^t
  float eps, lr;
  float decay;      // 1 - lr * weightDecay; 1: no decay
  bool decays;
  bool scaled;
  float emaDecay, oneMinusEmaDecay;
};

/**
 * w, m, v, g (and ema, when not null) hold n floats. m <- b1 m + (1 - b1) s g, v <- b2 v + (1 - b2) (s g)^2,
 * w <- w (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps), then ema <- d ema + (1 - d) w.
 */
void adamw(float *w, float *m, float *v, const float *g, float *ema, int64_t n, const AdamwConstants &k);

/** ema <- d ema + (1 - d) w over n floats. */
void ema_update(float *ema, const float *w, int64_t n, float decay, float oneMinusDecay);

/** out <- weight src (first) or out + weight src, in double, rounded to float32. */
void accumulate(float *out, const float *src, int64_t n, double weight, bool first);

/** The sum of the squares of x as tfjs' square().sum() computes it: float32 squares added one by one in float32. */
float sum_squares(const float *x, int64_t n);

}  // namespace wellspring::optim
