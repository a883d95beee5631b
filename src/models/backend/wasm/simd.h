/*
 * Shared shorthands of the project's SIMD kernels, LANES float lanes, in two builds of the same sources:
 * - wasm (default): wasm SIMD128 (wasm_simd128.h), 4 lanes, for scripts/build-wasm.mjs. Pointers are offsets into
 *   the imported tfjs heap (wasm address 0 is the heap's start), and a plane table holds int32 heap offsets.
 * - native (WELLSPRING_NATIVE_SIMD defined; scripts/build-native.mjs through native/winograd.cc): GCC/clang vector
 *   extensions of WELLSPRING_LANES lanes (4 by default: SSE on x86-64; native/winograd.cc also builds 8 for AVX2
 *   and 16 for AVX-512), unaligned loads and stores, no fused multiply-adds (the caller compiles with contraction
 *   off), so every lane computes what the wasm build's lane does, with its bits. A plane table holds the planes'
 *   pointers, which the native glue (native/addon.cc) computes as heap base + offset after range-checking every
 *   entry. Kernels step over channels by LANES, so their channel counts must be multiples of it.
 */
#ifndef WELLSPRING_SIMD_H
#define WELLSPRING_SIMD_H

#ifdef WELLSPRING_NATIVE_SIMD

#ifndef WELLSPRING_LANES
#define WELLSPRING_LANES 4
#endif
#define LANES WELLSPRING_LANES
typedef float vec __attribute__((vector_size(4 * LANES)));
typedef float *const *plane_table;

#define EXPORT(name)
static inline vec LOAD(const float *p) {
  vec v;
  __builtin_memcpy(&v, p, sizeof v); /* an unaligned load (movups) */
  return v;
}
static inline void STORE(float *p, vec v) { __builtin_memcpy(p, &v, sizeof v); }
static inline vec ADD(vec a, vec b) { return a + b; }
static inline vec SUB(vec a, vec b) { return a - b; }
static inline vec MUL(vec a, vec b) { return a * b; }
static inline vec NEG(vec a) { return -a; }
static inline vec SPLAT(float x) {
  vec v;
  for (int i = 0; i < LANES; i++) v[i] = x;
  return v;
}
#define UNROLL _Pragma("GCC unroll 8")

#else

#include <wasm_simd128.h>

typedef v128_t vec;
typedef const int *plane_table;
#define LANES 4

#define EXPORT(name) __attribute__((export_name(#name)))
#define LOAD(p) wasm_v128_load(p)
#define STORE(p, v) wasm_v128_store((p), (v))
#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub
#define MUL wasm_f32x4_mul
#define NEG wasm_f32x4_neg
#define SPLAT wasm_f32x4_splat
#define UNROLL _Pragma("clang loop unroll(full)")

#endif

#endif
