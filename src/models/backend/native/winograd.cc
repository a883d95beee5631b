/*
 * The Winograd transforms compiled natively: src/models/backend/wasm/winograd.c itself (not a copy), built with
 * simd.h's native variant (WELLSPRING_NATIVE_SIMD: GCC/clang vector extensions, unaligned loads, plane tables of
 * pointers) three times, in namespaces lanes4 (SSE, the baseline), lanes8 (AVX2) and lanes16 (AVX-512F): the same
 * code with 4, 8 or 16 channels per vector. Its wasm-only products (winograd_multiply / winograd_accumulate) are
 * left out, the native GEMM does those. The code is valid C and C++.
 *
 * Why wider vectors: the transforms are a few adds per loaded value and on the demo's autoencoder took about a
 * quarter of the convolutions' time with 4 lanes; 16 lanes do the same work in a quarter of the instructions.
 *
 * Same bits on every width: compiled without floating-point contraction (scripts/build-native.mjs), every lane does
 * exactly the wasm build's operations on its channel, whatever the vector width. The exported functions (winograd.h)
 * take the widest build that the ISA allows and that divides the vectorised channel count (C for the input-side
 * transforms, Cout for the filter-side ones); the ISA is the GEMM's (gemm.h: `best_isa`, or set by the caller).
 */
#include "winograd.h"

#define WELLSPRING_NATIVE_SIMD 1

namespace wellspring::winograd {

namespace lanes4 {
#define WELLSPRING_LANES 4
#include "../wasm/winograd.c"
}  // namespace lanes4

#if defined(__x86_64__) || defined(__i386__)
#define WELLSPRING_WINOGRAD_WIDE 1
// simd.h and gemm.h again, for the new lane count: their guards are reset before each inclusion.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace lanes8 {
#undef WELLSPRING_SIMD_H
#undef WELLSPRING_GEMM_H
#undef WELLSPRING_LANES
#undef LANES
#undef UNROLL
#define WELLSPRING_LANES 8
#include "../wasm/winograd.c"
}  // namespace lanes8
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace lanes16 {
#undef WELLSPRING_SIMD_H
#undef WELLSPRING_GEMM_H
#undef WELLSPRING_LANES
#undef LANES
#undef UNROLL
#define WELLSPRING_LANES 16
#include "../wasm/winograd.c"
}  // namespace lanes16
#pragma GCC pop_options
#endif

namespace {
/** Lanes of the build to run: the widest that `isa` allows and that divides `channels`. */
int lanes(Isa isa, int channels) {
#ifdef WELLSPRING_WINOGRAD_WIDE
  if (isa == Isa::avx512 && channels % 16 == 0) return 16;
  if ((isa == Isa::avx512 || isa == Isa::avx2) && channels % 8 == 0) return 8;
#else
  (void)isa, (void)channels;
#endif
  return 4;
}
}  // namespace

#ifdef WELLSPRING_WINOGRAD_WIDE
#define WELLSPRING_DISPATCH(name, channels, ...)                   \
  switch (lanes(isa, channels)) {                                  \
    case 16:                                                       \
      return lanes16::name(__VA_ARGS__);                           \
    case 8:                                                        \
      return lanes8::name(__VA_ARGS__);                            \
    default:                                                       \
      return lanes4::name(__VA_ARGS__);                            \
  }
#else
#define WELLSPRING_DISPATCH(name, channels, ...) return lanes4::name(__VA_ARGS__);
#endif

void winograd_input(Isa isa, const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                    int tiles_h, int tiles_w, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd_input, channels, x, batch, height, width, channels, pad_top, pad_left, tiles_h, tiles_w,
                      out_table)
}
void winograd_filter(Isa isa, const float *g, int in_channels, int out_channels, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd_filter, out_channels, g, in_channels, out_channels, out_table)
}
void winograd_output(Isa isa, PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                     int tiles_h, int tiles_w, float *y) {
  WELLSPRING_DISPATCH(winograd_output, channels, in_table, bias, batch, out_h, out_w, channels, tiles_h, tiles_w, y)
}
void winograd_grad_output(Isa isa, const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h,
                          int tiles_w, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd_grad_output, channels, dy, batch, out_h, out_w, channels, tiles_h, tiles_w, out_table)
}
void winograd_grad_filter(Isa isa, PlaneTable in_table, int in_channels, int out_channels, float *dg) {
  WELLSPRING_DISPATCH(winograd_grad_filter, out_channels, in_table, in_channels, out_channels, dg)
}

void winograd4_input(Isa isa, const float *x, int batch, int height, int width, int channels, int pad_top,
                     int pad_left, int tiles_h, int tiles_w, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd4_input, channels, x, batch, height, width, channels, pad_top, pad_left, tiles_h,
                      tiles_w, out_table)
}
void winograd4_filter(Isa isa, const float *g, int in_channels, int out_channels, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd4_filter, out_channels, g, in_channels, out_channels, out_table)
}
void winograd4_output(Isa isa, PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                      int tiles_h, int tiles_w, float *y) {
  WELLSPRING_DISPATCH(winograd4_output, channels, in_table, bias, batch, out_h, out_w, channels, tiles_h, tiles_w, y)
}
void winograd4_grad_output(Isa isa, const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h,
                           int tiles_w, PlaneTable out_table) {
  WELLSPRING_DISPATCH(winograd4_grad_output, channels, dy, batch, out_h, out_w, channels, tiles_h, tiles_w, out_table)
}
void winograd4_grad_filter(Isa isa, PlaneTable in_table, int in_channels, int out_channels, float *dg) {
  WELLSPRING_DISPATCH(winograd4_grad_filter, out_channels, in_table, in_channels, out_channels, dg)
}

#undef WELLSPRING_DISPATCH

}  // namespace wellspring::winograd
