/*
 * Matrix products for the tfjs wasm backend (float32, wasm SIMD128): the register-blocked kernels behind the
 * Winograd products (winograd.c) and the batched matmuls of attention (`batch_matmul`), where XNNPACK, called
 * once per batch entry, spends more time creating operators and packing weights than multiplying.
 *
 * Same memory contract as winograd.c: pointers are offsets into the tfjs heap, no static data, no shadow stack.
 */
#include "gemm.h"

/*
 * C [M, N] = A [M, K] B [K, N] (row-major, N a multiple of 4). Register blocks of 4 rows x 8 columns, over
 * chunks of rows that stay in cache while every column block of B passes over them.
 */
#define MUL_ROWS 64
void gemm_nn(const float *a, const float *b, float *c, int M, int K, int N) {
  const vec zero = wasm_f32x4_splat(0.0f);
  for (int r0 = 0; r0 < M; r0 += MUL_ROWS) {
    const int r1 = r0 + MUL_ROWS < M ? r0 + MUL_ROWS : M;
    int col = 0;
    for (; col + 8 <= N; col += 8) {
      int r = r0;
      for (; r + 4 <= r1; r += 4) {
        const float *v0 = a + r * K, *v1 = v0 + K, *v2 = v1 + K, *v3 = v2 + K;
        vec a00 = zero, a01 = zero, a10 = zero, a11 = zero, a20 = zero, a21 = zero, a30 = zero, a31 = zero;
        const float *up = b + col;
        for (int k = 0; k < K; k++, up += N) {
          const vec w0 = LOAD(up), w1 = LOAD(up + 4);
          const vec s0 = wasm_v128_load32_splat(v0 + k), s1 = wasm_v128_load32_splat(v1 + k);
          const vec s2 = wasm_v128_load32_splat(v2 + k), s3 = wasm_v128_load32_splat(v3 + k);
          a00 = ADD(a00, MUL(s0, w0)), a01 = ADD(a01, MUL(s0, w1));
          a10 = ADD(a10, MUL(s1, w0)), a11 = ADD(a11, MUL(s1, w1));
          a20 = ADD(a20, MUL(s2, w0)), a21 = ADD(a21, MUL(s2, w1));
          a30 = ADD(a30, MUL(s3, w0)), a31 = ADD(a31, MUL(s3, w1));
        }
        float *m0 = c + r * N + col, *m1 = m0 + N, *m2 = m1 + N, *m3 = m2 + N;
        STORE(m0, a00), STORE(m0 + 4, a01), STORE(m1, a10), STORE(m1 + 4, a11);
        STORE(m2, a20), STORE(m2 + 4, a21), STORE(m3, a30), STORE(m3 + 4, a31);
      }
      for (; r < r1; r++) {
        const float *v0 = a + r * K;
        vec a0 = zero, a1 = zero;
        const float *up = b + col;
        for (int k = 0; k < K; k++, up += N) {
          const vec s = wasm_v128_load32_splat(v0 + k);
          a0 = ADD(a0, MUL(s, LOAD(up))), a1 = ADD(a1, MUL(s, LOAD(up + 4)));
        }
        STORE(c + r * N + col, a0), STORE(c + r * N + col + 4, a1);
      }
    }
    for (; col < N; col += 4) {
      for (int r = r0; r < r1; r++) {
        const float *v0 = a + r * K;
        vec a0 = zero;
        const float *up = b + col;
        for (int k = 0; k < K; k++, up += N) a0 = ADD(a0, MUL(wasm_v128_load32_splat(v0 + k), LOAD(up)));
        STORE(c + r * N + col, a0);
      }
    }
  }
}

/*
 * C [M, N] (+)= A^T B for A [K, M], B [K, N] (M and N multiples of 4): a register-blocked outer-product
 * accumulation (4 x 8 per block) over chunks of K that stay in cache. With `add_to_c`, C's contents are added
 * to.
 */
#define ACC_ROWS 256
void gemm_tn(const float *a, const float *b, float *c, int K, int M, int N, int add_to_c) {
  const vec zero = wasm_f32x4_splat(0.0f);
  for (int k0 = 0; k0 < K; k0 += ACC_ROWS) {
    const int k1 = k0 + ACC_ROWS < K ? k0 + ACC_ROWS : K;
    for (int row = 0; row < M; row += 4) {
      float *o0 = c + row * N, *o1 = o0 + N, *o2 = o1 + N, *o3 = o2 + N;
      int col = 0;
      for (; col + 8 <= N; col += 8) {
        vec a00, a01, a10, a11, a20, a21, a30, a31;
        if (k0 == 0 && !add_to_c) {
          a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = zero;
        } else {
          a00 = LOAD(o0 + col), a01 = LOAD(o0 + col + 4), a10 = LOAD(o1 + col), a11 = LOAD(o1 + col + 4);
          a20 = LOAD(o2 + col), a21 = LOAD(o2 + col + 4), a30 = LOAD(o3 + col), a31 = LOAD(o3 + col + 4);
        }
        const float *ap = a + k0 * M + row;
        const float *bp = b + k0 * N + col;
        for (int k = k0; k < k1; k++, ap += M, bp += N) {
          const vec w0 = LOAD(bp), w1 = LOAD(bp + 4);
          const vec s0 = wasm_v128_load32_splat(ap + 0), s1 = wasm_v128_load32_splat(ap + 1);
          const vec s2 = wasm_v128_load32_splat(ap + 2), s3 = wasm_v128_load32_splat(ap + 3);
          a00 = ADD(a00, MUL(s0, w0)), a01 = ADD(a01, MUL(s0, w1));
          a10 = ADD(a10, MUL(s1, w0)), a11 = ADD(a11, MUL(s1, w1));
          a20 = ADD(a20, MUL(s2, w0)), a21 = ADD(a21, MUL(s2, w1));
          a30 = ADD(a30, MUL(s3, w0)), a31 = ADD(a31, MUL(s3, w1));
        }
        STORE(o0 + col, a00), STORE(o0 + col + 4, a01), STORE(o1 + col, a10), STORE(o1 + col + 4, a11);
        STORE(o2 + col, a20), STORE(o2 + col + 4, a21), STORE(o3 + col, a30), STORE(o3 + col + 4, a31);
      }
      for (; col < N; col += 4) {
        vec a0, a1, a2, a3;
        if (k0 == 0 && !add_to_c) {
          a0 = a1 = a2 = a3 = zero;
        } else {
          a0 = LOAD(o0 + col), a1 = LOAD(o1 + col), a2 = LOAD(o2 + col), a3 = LOAD(o3 + col);
        }
        const float *ap = a + k0 * M + row;
        const float *bp = b + k0 * N + col;
        for (int k = k0; k < k1; k++, ap += M, bp += N) {
          const vec w0 = LOAD(bp);
          a0 = ADD(a0, MUL(wasm_v128_load32_splat(ap + 0), w0));
          a1 = ADD(a1, MUL(wasm_v128_load32_splat(ap + 1), w0));
          a2 = ADD(a2, MUL(wasm_v128_load32_splat(ap + 2), w0));
          a3 = ADD(a3, MUL(wasm_v128_load32_splat(ap + 3), w0));
        }
        STORE(o0 + col, a0), STORE(o1 + col, a1), STORE(o2 + col, a2), STORE(o3 + col, a3);
      }
    }
  }
}

/* Bt [K, N] = B^T for B [N, K]. */
static void transpose(const float *b, int n, int k, float *bt) {
  for (int j = 0; j < n; j++)
    for (int i = 0; i < k; i++) bt[i * n + j] = b[j * k + i];
}

/*
 * c[e] = op(a[e]) op(b[e]) for e < batch, op = transpose when the flag is set: op(a) is [M, K], op(b) [K, N],
 * c[e] [M, N]. Entries are `stride_a` / `stride_b` floats apart (0 broadcasts one matrix to every entry).
 * N must be a multiple of 4, and M too when trans_a. `scratch` holds K x N floats (used when trans_b).
 */
EXPORT(batch_matmul)
void batch_matmul(const float *a, const float *b, float *c, int batch, int stride_a, int stride_b, int M, int K, int N,
                  int trans_a, int trans_b, float *scratch) {
  for (int e = 0; e < batch; e++) {
    const float *ae = a + e * stride_a;
    const float *be = b + e * stride_b;
    float *ce = c + e * M * N;
    if (trans_b) {
      transpose(be, N, K, scratch);
      be = scratch;
    }
    if (trans_a) gemm_tn(ae, be, ce, K, M, N, 0);
    else gemm_nn(ae, be, ce, M, K, N);
  }
}
