/*
 * The Winograd transforms compiled natively: src/models/backend/wasm/winograd.c itself (not a copy), built with
 * simd.h's native variant (WELLSPRING_NATIVE_SIMD: 4-lane GCC/clang vector extensions, unaligned loads, plane
 * tables of pointers) inside this namespace; its wasm-only products (winograd_multiply / winograd_accumulate) are
 * left out, the native GEMM does those. The code is valid C and C++. Compiled without floating-point contraction
 * (scripts/build-native.mjs), each transform gives the wasm build's bits. Declarations: winograd.h.
 */
#include "winograd.h"

#define WELLSPRING_NATIVE_SIMD 1

namespace wellspring::winograd {
#include "../wasm/winograd.c"
}  // namespace wellspring::winograd
