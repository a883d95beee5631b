/*
 * Reductions over flat float32 buffers for the wasm backend's `Sum` kernel (src/models/backend/wasm-kernels.ts):
 * the column sums of a row-major [rows, cols] matrix, which is what a sum over a tensor's leading axes is (the
 * bias and normalisation gradients of every dense layer). Single-threaded, no state.
 */
#pragma once

#include <cstdint>

#include "gemm.h"

namespace wellspring::reduce {

/**
 * out[c] = sum over r of x[r * cols + c], each column accumulated in double, rows in order, then rounded to
 * float32 once: the bits of the JS loop it replaces (a Float64Array accumulator). Vectorised across columns only,
 * for `isa`, so no sum is reassociated and every ISA gives the same bits.
 */
void column_sums(Isa isa, const float *x, int64_t rows, int64_t cols, float *out);

}  // namespace wellspring::reduce
