/*
 * The rotary position embedding's kernels for the wasm backend (src/models/backend/wasm/rotary.ts holds the math,
 * the JS twin and the dispatch; addon.cc the N-API glue). x holds `batch` entries of `angles` / `half` rows of
 * 2 * half channels; cos and sin hold `angles` floats shared by every entry. Each product is rounded to float32
 * before the sum or difference (the module is built with -ffp-contract=off), so the forward pass gives the tfjs
 * composite's bits; the angle gradients sum over the batch in double. Single-threaded, no state.
 */
#pragma once

#include <cstdint>

#include "gemm.h"

namespace wellspring::rotary {

/** y = (a cos - b sin, a sin + b cos) per channel pair (a, b) = (x[i], x[i + half]). */
void forward(Isa isa, const float *x, const float *cos, const float *sin, int64_t batch, int64_t angles, int64_t half, float *y);

/** dx from dy (the transposed rotation), dcos and dsin summed over the batch. */
void backward(Isa isa, const float *dy, const float *x, const float *cos, const float *sin, int64_t batch, int64_t angles, int64_t half,
              float *dx, float *dcos, float *dsin);

}  // namespace wellspring::rotary
