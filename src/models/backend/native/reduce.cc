/*
 * Column sums (reduce.h). The columns are taken in blocks whose double accumulators stay in L1; within a block
 * each row adds its slice to the accumulators, a loop the compiler vectorises across columns (target_clones builds
 * AVX-512, AVX2 and baseline versions, chosen at load time). Summing across columns never mixes two columns'
 * additions, so the order of each column's sum is the rows' order on every path.
 */
#include "reduce.h"

namespace wellspring::reduce {

namespace {

constexpr int64_t kBlock = 1024;  // 8 KB of double accumulators

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void add_rows(const float *x, int64_t rows, int64_t cols, int64_t width, double *acc) {
  for (int64_t r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    for (int64_t c = 0; c < width; c++) acc[c] += double(row[c]);
  }
}

}  // namespace

void column_sums(const float *x, int64_t rows, int64_t cols, float *out) {
  double acc[kBlock];
  for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
    const int64_t width = cols - c0 < kBlock ? cols - c0 : kBlock;
    for (int64_t c = 0; c < width; c++) acc[c] = 0.0;
    add_rows(x + c0, rows, cols, width, acc);
    for (int64_t c = 0; c < width; c++) out[c0 + c] = float(acc[c]);
  }
}

}  // namespace wellspring::reduce
