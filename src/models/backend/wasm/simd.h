/*
 * Shared shorthands of the project's SIMD kernels, 4 float lanes, in two builds of the same sources:
 * - wasm (default): wasm SIMD128 (wasm_simd128.h), for scripts/build-wasm.mjs. Pointers are offsets into the
 *   imported tfjs heap (wasm address 0 is the heap's start), and a plane table holds int32 heap offsets.
 * - native (WELLSPRING_NATIVE_SIMD defined; scripts/build-native.mjs through native/winograd.cc): GCC/clang vector
 *   extensions (SSE on x86-64), unaligned loads and stores, no fused multiply-adds (the caller compiles with
 *   contraction off), so a kernel gives the wasm build's bits. A plane table holds the planes' pointers, which the
 *   native glue (native/addon.cc) computes as heap base + offset after range-checking every entry.
 */
#ifndef WELLSPRING_SIMD_H
#define WELLSPRING_SIMD_H

#ifdef WELLSPRING_NATIVE_SIMD

typedef float vec __attribute__((vector_size(16)));
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
static inline vec SPLAT(float x) { return (vec){x, x, x, x}; }
#define UNROLL _Pragma("GCC unroll 8")

#else

#include <wasm_simd128.h>

typedef v128_t vec;
typedef const int *plane_table;

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
