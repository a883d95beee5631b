/*
 * Native single-precision GEMM for the wasm backend's dense layers and batched products (see gemm.h for the
 * contract). Goto/BLIS blocking, row-major:
 *
 *   for each K block of kc <= 384 (K split into equal blocks):
 *     pack all M rows of op(A)[:, block] into MR-row panels (kc x MR each, zero-padded)       -> L3 / L2
 *     for each N block of nc <= 256 columns:
 *       pack op(B)[block, cols] into NR-column panels (kc x NR each, zero-padded)             -> L2 (<= 384 KiB)
 *       for each A panel (MR x kc, stays in L1 while ...):
 *         for each B panel: micro-kernel, MR x NR of C in registers, kc rank-1 updates with FMA
 *
 * The vector dimension of the micro-kernel is N (a row of C is contiguous), the broadcast dimension M: on
 * AVX-512 12 x 32 (24 zmm accumulators) or, chosen per product to waste least on padding, 8 x 32, 16 x 16, 12 x 16
 * or 8 x 16; on AVX2+FMA 6 x 16 (12 ymm); portable 4 x 8 plain C that the compiler vectorises for the baseline ISA.
 * The registers of the first K block start from the bias (or zero, or C when accumulating), those of later blocks
 * from C: each element of C is one FMA chain over k in order. Edge tiles: on AVX-512 the same kernel with masked
 * loads and stores of the valid rows and columns (narrow or short products, like the 16-channel or 16-tile
 * Winograd planes, ran mostly in the scratch copies otherwise); elsewhere they run whole in a scratch tile (the
 * panels are zero-padded) seeded with their valid part of C and copied back. Every element of C is summed over k
 * in the same order whatever tile (or tile shape) it falls in, so results depend only on (inputs, shape, ISA): a
 * repeated call is bit-identical, folding a batch into rows changes nothing, and an accumulation
 * split over K into consecutive calls gives the bits of one call.
 *
 * The per-plane products of the Winograd convolutions (addon.cc's gemmPlanes, for wasm/winograd.ts) are calls of
 * this same driver, one per plane; their filter gradient relies on the split-K property above.
 *
 * Each ISA's micro-kernel carries `__attribute__((target(...)))`; the file itself is compiled for the baseline
 * ISA, so the module loads on any x86-64 (or other) CPU and `best_isa` picks the path at run time.
 */
#include "gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WELLSPRING_X86 1
#endif

namespace wellspring {

namespace {

constexpr int64_t KC_MAX = 384;  // rows of a packed panel (K block)
constexpr int64_t NC_MAX = 256;  // columns of a packed B block (kc x nc floats: at most 384 KiB, in L2)

using Micro = void (*)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, const float *bias, bool acc);

// ------------------------------------------------------------------------------------------- micro-kernels

/*
 * Every micro-kernel: C[0..MR)[0..NR) (row stride ldc) becomes s + sum_p a[p*MR + i] * b[p*NR + j], summed in order
 * of p onto the start value s (one FMA chain per element), where s is C's own value when `acc`, else bias[j] when
 * a bias is given, else 0. Starting from C (not adding a separate block sum to it) makes the chain of an element
 * independent of where the K blocks, or the calls of an accumulation, begin and end.
 */

constexpr int GEN_MR = 4, GEN_NR = 8;
void micro_generic(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, const float *bias, bool acc) {
  float r[GEN_MR][GEN_NR];
  for (int i = 0; i < GEN_MR; i++) {
    for (int j = 0; j < GEN_NR; j++) r[i][j] = acc ? c[i * ldc + j] : bias ? bias[j] : 0.0f;
  }
  for (int64_t p = 0; p < kc; p++) {
    const float *bp = b + p * GEN_NR;
    for (int i = 0; i < GEN_MR; i++) {
      const float ai = a[p * GEN_MR + i];
      for (int j = 0; j < GEN_NR; j++) r[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < GEN_MR; i++) {
    for (int j = 0; j < GEN_NR; j++) c[i * ldc + j] = r[i][j];
  }
}

#ifdef WELLSPRING_X86
constexpr int AVX2_MR = 6, AVX2_NR = 16;
__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                                     const float *bias, bool acc) {
  __m256 r[AVX2_MR][2];
  if (acc) {
#pragma GCC unroll 6
    for (int i = 0; i < AVX2_MR; i++) r[i][0] = _mm256_loadu_ps(c + i * ldc), r[i][1] = _mm256_loadu_ps(c + i * ldc + 8);
  } else {
    const __m256 s0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 s1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < AVX2_MR; i++) r[i][0] = s0, r[i][1] = s1;
  }
  for (int64_t p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_load_ps(b + p * AVX2_NR), b1 = _mm256_load_ps(b + p * AVX2_NR + 8);
#pragma GCC unroll 6
    for (int i = 0; i < AVX2_MR; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + p * AVX2_MR + i);
      r[i][0] = _mm256_fmadd_ps(ai, b0, r[i][0]);
      r[i][1] = _mm256_fmadd_ps(ai, b1, r[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < AVX2_MR; i++) {
    _mm256_storeu_ps(c + i * ldc, r[i][0]);
    _mm256_storeu_ps(c + i * ldc + 8, r[i][1]);
  }
}

// AVX-512: Avx512Tiles below (tiles of 8-16 rows by 16 or 32 columns, edges masked).
#endif

// ------------------------------------------------------------------------------------------- packing

/** 64-byte aligned scratch that grows on demand; one per thread (the addon may run in several workers). */
struct Buffer {
  float *data = nullptr;
  size_t size = 0;
  float *get(size_t n) {
    if (n > size) {
      std::free(data);
      const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data = static_cast<float *>(std::aligned_alloc(64, bytes));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
  ~Buffer() { std::free(data); }
};
thread_local Buffer packA, packB;

/*
 * op(A) rows [0, m) x columns [0, kc) into MR-row panels: panel q holds dst[q*kc*MR + p*MR + i] = op(A)(q*MR+i, p),
 * rows past m zero. Element (i, p) of op(A) is a[i*rs + p*cs] (one of rs, cs is 1).
 */
void pack_a(const float *a, int64_t rs, int64_t cs, int64_t m, int64_t kc, int mr, float *dst) {
  for (int64_t i0 = 0; i0 < m; i0 += mr, dst += kc * mr) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, m - i0));
    if (cs == 1) {  // rows of op(A) contiguous: read each row along k
      for (int i = 0; i < rows; i++) {
        const float *src = a + (i0 + i) * rs;
        for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
      }
    } else {  // columns of op(A) contiguous (transposed A): copy runs of rows
      for (int64_t p = 0; p < kc; p++) std::memcpy(dst + p * mr, a + p * cs + i0, rows * sizeof(float));
    }
    if (rows < mr) {
      for (int64_t p = 0; p < kc; p++) std::fill(dst + p * mr + rows, dst + (p + 1) * mr, 0.0f);
    }
  }
}

/*
 * op(B) rows [0, kc) x columns [0, n) into NR-column panels: dst[q*kc*NR + p*NR + j] = op(B)(p, q*NR+j), columns
 * past n zero. Element (p, j) of op(B) is b[p*rs + j*cs] (one of rs, cs is 1).
 */
void pack_b(const float *b, int64_t rs, int64_t cs, int64_t kc, int64_t n, int nr, float *dst) {
  for (int64_t j0 = 0; j0 < n; j0 += nr, dst += kc * nr) {
    const int cols = static_cast<int>(std::min<int64_t>(nr, n - j0));
    if (cs == 1) {
      for (int64_t p = 0; p < kc; p++) {
        std::memcpy(dst + p * nr, b + p * rs + j0, cols * sizeof(float));
        if (cols < nr) std::fill(dst + p * nr + cols, dst + (p + 1) * nr, 0.0f);
      }
    } else {  // transposed B: each column of op(B) is contiguous along k
      for (int j = 0; j < cols; j++) {
        const float *src = b + (j0 + j) * cs;
        for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
      }
      if (cols < nr) {
        for (int64_t p = 0; p < kc; p++) std::fill(dst + p * nr + cols, dst + (p + 1) * nr, 0.0f);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------- driver

/*
 * How a tile of C is computed: tile(kc, aPanel, bPanel, c, ldc, init, acc, rows, cols) makes the valid `rows` x `cols`
 * part (rows <= MR, cols <= NR) of the MR x NR tile at c (row stride ldc) start + sum_p a b, as a micro-kernel.
 * `WholeTiles` runs a micro-kernel that handles whole tiles only: edge tiles run whole in a scratch tile seeded with
 * their valid part of C (or of the bias) and copied back.
 */
template <int MR, int NR>
struct WholeTiles {
  Micro micro;
  void operator()(int64_t kc, const float *ap, const float *bp, float *ct, int64_t ldc, const float *init, bool acc,
                  int64_t rows, int64_t cols) const {
    if (rows == MR && cols == NR) {
      micro(kc, ap, bp, ct, ldc, init, acc);
      return;
    }
    alignas(64) float tile[MR * NR];
    for (int64_t i = 0; i < MR; i++) {
      for (int64_t j = 0; j < NR; j++) {
        tile[i * NR + j] = i < rows && j < cols ? (acc ? ct[i * ldc + j] : init ? init[j] : 0.0f) : 0.0f;
      }
    }
    micro(kc, ap, bp, tile, NR, nullptr, true);
    for (int64_t i = 0; i < rows; i++) std::memcpy(ct + i * ldc, tile + i * NR, cols * sizeof(float));
  }
};

/** One product C = op(A) op(B) (+ bias), or C += op(A) op(B) with `accumulate`; C with row stride n. */
template <int MR, int NR, typename Tile>
void gemm_one(const Tile &tile, const float *a, const float *b, float *c, const float *bias, int64_t m, int64_t k, int64_t n,
              bool transA, bool transB, bool accumulate) {
  if (k == 0) {
    if (accumulate) return;
    for (int64_t i = 0; i < m; i++) {
      for (int64_t j = 0; j < n; j++) c[i * n + j] = bias ? bias[j] : 0.0f;
    }
    return;
  }
  const int64_t ars = transA ? 1 : k, acs = transA ? m : 1;  // op(A)(i, p) = a[i*ars + p*acs]
  const int64_t brs = transB ? 1 : n, bcs = transB ? k : 1;  // op(B)(p, j) = b[p*brs + j*bcs]
  const int64_t kblocks = (k + KC_MAX - 1) / KC_MAX;
  const int64_t kcMax = (k + kblocks - 1) / kblocks;
  const int64_t mPanels = (m + MR - 1) / MR;
  const int64_t ncMax = std::min<int64_t>(NC_MAX, ((n + NR - 1) / NR) * NR);
  float *pa = packA.get(static_cast<size_t>(mPanels * MR * kcMax));
  float *pb = packB.get(static_cast<size_t>(ncMax * kcMax));
  for (int64_t p0 = 0; p0 < k; p0 += kcMax) {
    const int64_t kc = std::min(kcMax, k - p0);
    const bool acc = accumulate || p0 > 0;
    const float *init = acc ? nullptr : bias;
    pack_a(a + p0 * acs, ars, acs, m, kc, MR, pa);
    for (int64_t j0 = 0; j0 < n; j0 += ncMax) {
      const int64_t nc = std::min(ncMax, n - j0);
      pack_b(b + p0 * brs + j0 * bcs, brs, bcs, kc, nc, NR, pb);
      for (int64_t i0 = 0; i0 < m; i0 += MR) {
        const float *ap = pa + (i0 / MR) * kc * MR;
        const int64_t rows = std::min<int64_t>(MR, m - i0);
        for (int64_t jj = 0; jj < nc; jj += NR) {
          const float *bp = pb + (jj / NR) * kc * NR;
          const int64_t cols = std::min<int64_t>(NR, nc - jj);
          tile(kc, ap, bp, c + i0 * n + j0 + jj, n, init ? init + j0 + jj : nullptr, acc, rows, cols);
        }
      }
    }
  }
}

template <int MR, int NR, typename Tile>
void gemm_batched(const Tile &tile, const GemmArgs &g) {
  if (g.m == 0 || g.n == 0) return;
  // A batch of row blocks against one shared B, all contiguous: one tall product (the same sums, in the same order).
  if (g.batch > 1 && g.strideB == 0 && !g.transA && g.strideA == g.m * g.k && g.strideC == g.m * g.n) {
    gemm_one<MR, NR>(tile, g.a, g.b, g.c, g.bias, g.batch * g.m, g.k, g.n, false, g.transB, g.accumulate);
    return;
  }
  for (int64_t e = 0; e < g.batch; e++) {
    gemm_one<MR, NR>(tile, g.a + e * g.strideA, g.b + e * g.strideB, g.c + e * g.strideC, g.bias, g.m, g.k, g.n, g.transA,
                     g.transB, g.accumulate);
  }
}

#ifdef WELLSPRING_X86
/*
 * AVX-512 tiles of any size up to MR x 16 NV, edges included: only the valid rows of C are read and written, and
 * the valid columns through lane masks; the padded rows and columns are computed on the panels' zero padding and
 * dropped. Each element is the same FMA chain as in the other micro-kernels (start value, then k in order), so the tile shape
 * does not change any bit. Several shapes exist so that small or narrow products (the Winograd planes: 16 rows of
 * tiles, or 16 channels) do not run mostly on padding.
 */
/** Where avx512_tile reads A and B: packed panels (gemm_one), or A^T / A and B in place (gemm_in_place). */
enum class Operands { packed, columnsInPlace, rowsInPlace };

template <int MR, int NV, Operands L>
__attribute__((target("avx512f"))) void avx512_tile(int64_t kc, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                                                   int64_t ldc, const float *init, bool acc, int64_t rows, int64_t cols) {
  // packed: A(i, p) = a[p * MR + i], B(p, j) = b[p * NR + j], 64-byte aligned and zero-padded (lda, ldb unused).
  // columnsInPlace: A(i, p) = a[p * lda + i] (A^T stored in place); rowsInPlace: A(i, p) = a[i * lda + p]; both
  // with B(p, j) = b[p * ldb + j] in place, lanes past `cols` not read.
  constexpr int NR = 16 * NV;
  constexpr bool packed = L == Operands::packed;
  __mmask16 mask[NV];
  for (int v = 0; v < NV; v++) {
    const int64_t left = cols - 16 * v;
    mask[v] = left >= 16 ? static_cast<__mmask16>(0xFFFF) : left <= 0 ? 0 : static_cast<__mmask16>((1u << left) - 1);
  }
  __m512 r[MR][NV];
  if (acc) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      for (int v = 0; v < NV; v++) r[i][v] = i < rows ? _mm512_maskz_loadu_ps(mask[v], c + i * ldc + 16 * v) : _mm512_setzero_ps();
    }
  } else {
    __m512 s[NV];
    for (int v = 0; v < NV; v++) s[v] = init ? _mm512_maskz_loadu_ps(mask[v], init + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      for (int v = 0; v < NV; v++) r[i][v] = s[v];
    }
  }
  for (int64_t p = 0; p < kc; p++) {
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = packed ? _mm512_load_ps(b + p * NR + 16 * v) : _mm512_maskz_loadu_ps(mask[v], b + p * ldb + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const float ai = packed ? a[p * MR + i] : L == Operands::rowsInPlace ? a[i * lda + p] : a[p * lda + i];
      const __m512 av = _mm512_set1_ps(ai);
      for (int v = 0; v < NV; v++) r[i][v] = _mm512_fmadd_ps(av, bv[v], r[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    if (i < rows) {
      for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mask[v], r[i][v]);
    }
  }
}

/** avx512_tile on packed panels, as a tile of gemm_one. */
template <int MR, int NV>
struct Avx512Tiles {
  void operator()(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, const float *init, bool acc, int64_t rows,
                  int64_t cols) const {
    avx512_tile<MR, NV, Operands::packed>(kc, a, MR, b, 16 * NV, c, ldc, init, acc, rows, cols);
  }
};

/*
 * A small product without packing (AVX-512): A and B are read in place, which for the Winograd planes (tens of rows
 * by 16-128 channels, in cache) saves the packing copies that cost as much as the product. Only for one K block
 * (k <= KC_MAX) and B not transposed; a partial row panel of A is packed (reading it in place would run past A).
 * Each element is the same FMA chain as on the packed path, so the bits are the same.
 */
template <int MR, int NV>
void gemm_in_place(const float *a, const float *b, float *c, const float *bias, int64_t m, int64_t k, int64_t n, bool transA,
                   bool accumulate) {
  constexpr int NR = 16 * NV;
  const float *init = accumulate ? nullptr : bias;
  for (int64_t i0 = 0; i0 < m; i0 += MR) {
    const int64_t rows = std::min<int64_t>(MR, m - i0);
    const float *ap;
    int64_t lda;
    bool rowA = false;
    if (rows < MR) {
      float *pa = packA.get(static_cast<size_t>(MR * k));
      pack_a(transA ? a + i0 : a + i0 * k, transA ? 1 : k, transA ? m : 1, rows, k, MR, pa);
      ap = pa, lda = MR;
    } else if (transA) {
      ap = a + i0, lda = m;
    } else {
      ap = a + i0 * k, lda = k, rowA = true;
    }
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
      const int64_t cols = std::min<int64_t>(NR, n - j0);
      float *ct = c + i0 * n + j0;
      const float *it = init ? init + j0 : nullptr;
      if (rowA) avx512_tile<MR, NV, Operands::rowsInPlace>(k, ap, lda, b + j0, n, ct, n, it, accumulate, rows, cols);
      else avx512_tile<MR, NV, Operands::columnsInPlace>(k, ap, lda, b + j0, n, ct, n, it, accumulate, rows, cols);
    }
  }
}

/** Whether a product is small enough to run in place (see gemm_in_place): one K block, A and B about 256 KiB. */
bool in_place(const GemmArgs &g) {
  return !g.transB && g.k > 0 && g.k <= KC_MAX && g.m * g.k + g.k * g.n <= 64 * 1024;
}

template <int MR, int NV>
void gemm_avx512_shape(const GemmArgs &g) {
  if (in_place(g)) {
    for (int64_t e = 0; e < g.batch; e++) {
      gemm_in_place<MR, NV>(g.a + e * g.strideA, g.b + e * g.strideB, g.c + e * g.strideC, g.bias, g.m, g.k, g.n, g.transA,
                            g.accumulate);
    }
    return;
  }
  gemm_batched<MR, 16 * NV>(Avx512Tiles<MR, NV>{}, g);
}

/** Padded rows of m in panels of mr. */
constexpr int64_t padded(int64_t m, int64_t mr) { return (m + mr - 1) / mr * mr; }

/*
 * The AVX-512 product with the tile shape that wastes least on padding: one 16-lane vector per row when n <= 16
 * (16, 12 or 8 rows), else two (12 or 8 rows); among the row counts the one with fewest padded rows, the taller on
 * ties (fewer B-panel loads per FMA).
 */
void gemm_avx512(const GemmArgs &g) {
  const int64_t m = g.strideB == 0 && !g.transA && g.batch > 1 ? g.m * g.batch : g.m;  // rows after folding
  if (g.n <= 16) {
    const int64_t p16 = padded(m, 16), p12 = padded(m, 12), p8 = padded(m, 8);
    if (p16 <= p12 && p16 <= p8) return gemm_avx512_shape<16, 1>(g);
    if (p12 <= p8) return gemm_avx512_shape<12, 1>(g);
    return gemm_avx512_shape<8, 1>(g);
  }
  if (padded(m, 12) <= padded(m, 8)) return gemm_avx512_shape<12, 2>(g);
  return gemm_avx512_shape<8, 2>(g);
}
#endif

// ------------------------------------------------------------------------------------------- peak

template <typename F>
double time_gflops(F body, double flopsPerCall, double seconds) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  double calls = 0, elapsed = 0;
  do {
    body();
    calls++;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return calls * flopsPerCall / elapsed / 1e9;
}

constexpr int PEAK_ITER = 1 << 16;
constexpr int PEAK_CHAINS = 12;
// Read through volatiles so that the compiler cannot fold the FMA chains at compile time.
volatile float peak_x = 0.999f, peak_y = 1e-3f, peak_seed = 1.0f;

float peak_generic_sink;
double peak_generic(double seconds) {
  return time_gflops(
      [] {
        float r[PEAK_CHAINS][GEN_NR];
        for (int i = 0; i < PEAK_CHAINS; i++)
          for (int j = 0; j < GEN_NR; j++) r[i][j] = peak_seed * static_cast<float>(i + j);
        const float x = peak_x, y = peak_y;
        for (int it = 0; it < PEAK_ITER; it++)
          for (int i = 0; i < PEAK_CHAINS; i++)
            for (int j = 0; j < GEN_NR; j++) r[i][j] = r[i][j] * x + y;
        float s = 0;
        for (int i = 0; i < PEAK_CHAINS; i++)
          for (int j = 0; j < GEN_NR; j++) s += r[i][j];
        peak_generic_sink = s;
      },
      2.0 * PEAK_ITER * PEAK_CHAINS * GEN_NR, seconds);
}

#ifdef WELLSPRING_X86
__attribute__((target("avx2,fma"))) float peak_avx2_body() {
  __m256 r[PEAK_CHAINS];
  for (int i = 0; i < PEAK_CHAINS; i++) r[i] = _mm256_set1_ps(peak_seed * static_cast<float>(i));
  const __m256 x = _mm256_set1_ps(peak_x), y = _mm256_set1_ps(peak_y);
  for (int it = 0; it < PEAK_ITER; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < PEAK_CHAINS; i++) r[i] = _mm256_fmadd_ps(r[i], x, y);
  }
  __m256 s = r[0];
  for (int i = 1; i < PEAK_CHAINS; i++) s = _mm256_add_ps(s, r[i]);
  return _mm256_cvtss_f32(s);
}
__attribute__((target("avx512f"))) float peak_avx512_body() {
  __m512 r[PEAK_CHAINS];
  for (int i = 0; i < PEAK_CHAINS; i++) r[i] = _mm512_set1_ps(peak_seed * static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(peak_x), y = _mm512_set1_ps(peak_y);
  for (int it = 0; it < PEAK_ITER; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < PEAK_CHAINS; i++) r[i] = _mm512_fmadd_ps(r[i], x, y);
  }
  __m512 s = r[0];
  for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, r[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float sum = 0;
  for (float x : lanes) sum += x;
  return sum;
}
volatile float peak_sink;
#endif

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return true;
#ifdef WELLSPRING_X86
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f");
#endif
    default:
      return false;
  }
}

Isa best_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::generic;
}

const char *isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "generic";
  }
}

void gemm(Isa isa, const GemmArgs &args) {
  switch (isa) {
#ifdef WELLSPRING_X86
    case Isa::avx512:
      gemm_avx512(args);
      return;
    case Isa::avx2:
      gemm_batched<AVX2_MR, AVX2_NR>(WholeTiles<AVX2_MR, AVX2_NR>{micro_avx2}, args);
      return;
#endif
    default:
      gemm_batched<GEN_MR, GEN_NR>(WholeTiles<GEN_MR, GEN_NR>{micro_generic}, args);
  }
}

double peak_gflops(Isa isa, double seconds) {
  switch (isa) {
#ifdef WELLSPRING_X86
    case Isa::avx512:
      return time_gflops([] { peak_sink = peak_avx512_body(); }, 2.0 * PEAK_ITER * PEAK_CHAINS * 16, seconds);
    case Isa::avx2:
      return time_gflops([] { peak_sink = peak_avx2_body(); }, 2.0 * PEAK_ITER * PEAK_CHAINS * 8, seconds);
#endif
    default:
      return peak_generic(seconds);
  }
}

void gemm_plane(Isa isa, const float *a, const float *b, float *c, int64_t m, int64_t k, int64_t n, bool transA, bool accumulate) {
  GemmArgs g;
  g.a = a;
  g.b = b;
  g.c = c;
  g.bias = nullptr;
  g.batch = 1;
  g.strideA = g.strideB = 0;
  g.strideC = m * n;
  g.m = m;
  g.k = k;
  g.n = n;
  g.transA = transA;
  g.transB = false;
  g.accumulate = accumulate;
  gemm(isa, g);
}

}  // namespace wellspring
