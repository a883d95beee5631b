/*
 * The native GEMM's C++ interface (gemm.cc), used by the N-API glue (addon.cc).
 *
 * C[e] = op(A[e]) op(B[e]) (+ bias) for e < batch, float32, row-major; op(A) is M x K, op(B) is K x N. Without a
 * transpose A is stored [M, K] and B [K, N]; with one, A is stored [K, M] and B [N, K] (read in place by the
 * packing). strideA / strideB / strideC are element distances between batch entries; 0 shares one operand.
 * bias (length N, or null) is added to every row. With `accumulate`, C's contents are added to instead
 * (C[e] += op(A[e]) op(B[e]); bias must then be null). Each element of C is one sequential chain of FMAs over k,
 * starting from the bias (or 0, or C's value with `accumulate`), in order of k whatever the blocking: so a sum
 * over K split into consecutive calls with `accumulate` gives the same bits as one call over the whole K.
 * Single-threaded; results depend only on the inputs, the shape and the ISA (no data-dependent order), so a call
 * repeated on the same inputs is bit-identical.
 */
#pragma once
#include <cstdint>

namespace wellspring {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

/**
 * Runs `body` compiled for `isa`: inlined into a function built for AVX-512F or AVX2, or called as built (the
 * baseline). `body` is a lambda marked always_inline (`[&]() __attribute__((always_inline)) { ... }`), so its
 * loops are vectorised for that ISA. How the element-wise kernels (reduce.cc, rotary.cc) follow the instance's ISA
 * (`setIsa`, `WELLSPRING_NATIVE`) as the GEMM does.
 */
#if defined(__x86_64__) && defined(__GNUC__)
template <typename Body>
__attribute__((target("avx512f"))) void run_avx512(const Body &body) {
  body();
}
template <typename Body>
__attribute__((target("avx2"))) void run_avx2(const Body &body) {
  body();
}
template <typename Body>
void run_for(Isa isa, const Body &body) {
  if (isa == Isa::avx512) return run_avx512(body);
  if (isa == Isa::avx2) return run_avx2(body);
  body();
}
#else
template <typename Body>
void run_for(Isa, const Body &body) {
  body();
}
#endif

struct GemmArgs {
  const float *a;
  const float *b;
  float *c;
  const float *bias;
  int64_t batch, strideA, strideB, strideC;
  int64_t m, k, n;
  bool transA, transB;
  bool accumulate = false;
};

/** The widest ISA this CPU (and OS) supports among those compiled in. */
Isa best_isa();
/** True when the CPU supports `isa`. */
bool isa_supported(Isa isa);
const char *isa_name(Isa isa);

/** Runs the product with the micro-kernel of `isa` (which the caller checked is supported). */
void gemm(Isa isa, const GemmArgs &args);

/**
 * One Winograd plane's product: C = op(A) B, or C += op(A) B with `accumulate`; op(A) is m x k (A stored [m, k],
 * or [k, m] with transA), B [k, n], C [m, n], no bias, no batch.
 */
void gemm_plane(Isa isa, const float *a, const float *b, float *c, int64_t m, int64_t k, int64_t n, bool transA, bool accumulate);

/**
 * Measured FMA throughput of one core with `isa`: independent register-only FMA chains (no memory traffic) for
 * about `seconds`, in GFLOP/s (2 per lane per FMA). The ceiling a GEMM on this core can approach.
 */
double peak_gflops(Isa isa, double seconds);

}  // namespace wellspring
