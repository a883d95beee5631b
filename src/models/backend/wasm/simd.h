/* Shared shorthands of the project's wasm kernels (wasm SIMD128, 4 float lanes). */
#ifndef WELLSPRING_SIMD_H
#define WELLSPRING_SIMD_H
#include <wasm_simd128.h>

typedef v128_t vec;

#define EXPORT(name) __attribute__((export_name(#name)))
#define LOAD(p) wasm_v128_load(p)
#define STORE(p, v) wasm_v128_store((p), (v))
#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub
#define MUL wasm_f32x4_mul
#define SPLAT wasm_f32x4_splat

#endif
