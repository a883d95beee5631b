/*
 * Column sums (reduce.h). The columns are taken in blocks whose double accumulators stay in L1; within a block
 * each row adds its slice to the accumulators, a loop the compiler vectorises across columns for the caller's ISA
 * (`run_for`, gemm.h). Summing across columns never mixes two columns'
 * additions, so the order of each column's sum is the rows' order on every path.
 */
#include "reduce.h"

namespace wellspring::reduce {

constexpr int64_t kBlock = 1024;  // 8 KB of double accumulators

void column_sums(Isa isa, const float *x, int64_t rows, int64_t cols, float *out) {
  double acc[kBlock];
  for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
    const int64_t width = cols - c0 < kBlock ? cols - c0 : kBlock;
    for (int64_t c = 0; c < width; c++) acc[c] = 0.0;
    run_for(isa, [&]() __attribute__((always_inline)) {
      for (int64_t r = 0; r < rows; r++) {
        const float *row = x + c0 + r * cols;
        for (int64_t c = 0; c < width; c++) acc[c] += double(row[c]);
      }
    });
    for (int64_t c = 0; c < width; c++) out[c0 + c] = float(acc[c]);
  }
}

}  // namespace wellspring::reduce
