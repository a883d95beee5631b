/* The matrix-product kernels shared by winograd.c and gemm.c (see gemm.c). */
#ifndef WELLSPRING_GEMM_H
#define WELLSPRING_GEMM_H
#include "simd.h"

/* C [M, N] = A [M, K] B [K, N]; N a multiple of 4. Arguments: a, b, c, M, K, N. */
void gemm_nn(const float *a, const float *b, float *c, int M, int K, int N);
/* C [M, N] (+)= A^T B for A [K, M], B [K, N]; M, N multiples of 4. Arguments: a, b, c, K, M, N, add_to_c. */
void gemm_tn(const float *a, const float *b, float *c, int K, int M, int N, int add_to_c);

#endif
