/*
 * Fused layer kernels for the tfjs wasm backend (float32, wasm SIMD128), each one pass over memory where the
 * composite tfjs ops take five to ten: channel LayerNorm and its gradient, SiLU and its gradient, and inverted
 * dropout with a counter-based mask (a hash of seed and element index, so the backward pass regenerates the
 * mask instead of storing it). The channel count (last axis) of the LayerNorm kernels is a multiple of 4; the
 * element counts of the others are arbitrary.
 *
 * Same memory contract as winograd.c: pointers are offsets into the tfjs heap, no static data, no shadow stack.
 */
#include "simd.h"

static inline float horizontal_sum(vec v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}

/* y = (x - mean) / sqrt(var + eps) over each row of C values; rstd[row] = 1 / sqrt(var + eps). Two passes over
 * the row (it is in cache) give the variance without the cancellation of a sum-of-squares formula. */
EXPORT(layer_norm)
void layer_norm(const float *x, int rows, int channels, float eps, float *y, float *rstd) {
  const int C = channels;
  const float inv = 1.0f / (float)C;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    /* Sum relative to the row's first value: with a large common offset a plain float32 sum would lose the
     * digits that the (small) deviations live in. */
    const float shift = xr[0];
    const vec shifts = SPLAT(shift);
    vec s = SPLAT(0.0f);
    for (int c = 0; c < C; c += 4) s = ADD(s, SUB(LOAD(xr + c), shifts));
    const vec mean = SPLAT(shift + horizontal_sum(s) * inv);
    vec q = SPLAT(0.0f);
    for (int c = 0; c < C; c += 4) {
      const vec d = SUB(LOAD(xr + c), mean);
      q = ADD(q, MUL(d, d));
    }
    const float r_std = 1.0f / __builtin_sqrtf(horizontal_sum(q) * inv + eps);
    rstd[r] = r_std;
    const vec rs = SPLAT(r_std);
    for (int c = 0; c < C; c += 4) STORE(yr + c, MUL(SUB(LOAD(xr + c), mean), rs));
  }
}

/* dx = rstd (dy - mean(dy) - y mean(dy y)), per row, from the forward's y and rstd. */
EXPORT(layer_norm_grad)
void layer_norm_grad(const float *dy, const float *y, const float *rstd, int rows, int channels, float *dx) {
  const int C = channels;
  const float inv = 1.0f / (float)C;
  for (int r = 0; r < rows; r++) {
    const float *dyr = dy + r * C, *yr = y + r * C;
    float *dxr = dx + r * C;
    vec s = SPLAT(0.0f), p = SPLAT(0.0f);
    for (int c = 0; c < C; c += 4) {
      const vec g = LOAD(dyr + c);
      s = ADD(s, g);
      p = ADD(p, MUL(g, LOAD(yr + c)));
    }
    const vec mean_dy = SPLAT(horizontal_sum(s) * inv), mean_dyy = SPLAT(horizontal_sum(p) * inv);
    const vec rs = SPLAT(rstd[r]);
    for (int c = 0; c < C; c += 4) {
      const vec g = SUB(SUB(LOAD(dyr + c), mean_dy), MUL(LOAD(yr + c), mean_dyy));
      STORE(dxr + c, MUL(g, rs));
    }
  }
}

/*
 * e^x for 4 lanes: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-6 polynomial (the Cephes expf
 * coefficients), 2^n through the exponent bits. x is clamped to [-87, 88], so n + 127 stays a normal exponent;
 * relative error about 2e-7.
 */
static inline vec exp4(vec x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, SPLAT(-87.0f)), SPLAT(88.0f));
  const vec n = wasm_f32x4_nearest(MUL(x, SPLAT(1.44269504088896341f)));
  vec r = SUB(x, MUL(n, SPLAT(0.693359375f)));
  r = SUB(r, MUL(n, SPLAT(-2.12194440e-4f)));
  vec p = SPLAT(1.9875691500e-4f);
  p = ADD(MUL(p, r), SPLAT(1.3981999507e-3f));
  p = ADD(MUL(p, r), SPLAT(8.3334519073e-3f));
  p = ADD(MUL(p, r), SPLAT(4.1665795894e-2f));
  p = ADD(MUL(p, r), SPLAT(1.6666665459e-1f));
  p = ADD(MUL(p, r), SPLAT(5.0000001201e-1f));
  p = ADD(ADD(MUL(p, MUL(r, r)), r), SPLAT(1.0f));
  const vec scale = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return MUL(p, scale);
}

static inline vec sigmoid4(vec x) { return wasm_f32x4_div(SPLAT(1.0f), ADD(SPLAT(1.0f), exp4(wasm_f32x4_neg(x)))); }

static inline float sigmoid1(float x) { return wasm_f32x4_extract_lane(sigmoid4(SPLAT(x)), 0); }

/* y = x sigmoid(x). */
EXPORT(silu)
void silu(const float *x, int n, float *y) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const vec v = LOAD(x + i);
    STORE(y + i, MUL(v, sigmoid4(v)));
  }
  for (; i < n; i++) y[i] = x[i] * sigmoid1(x[i]);
}

/* dx = dy s (1 + x (1 - s)) with s = sigmoid(x). */
EXPORT(silu_grad)
void silu_grad(const float *dy, const float *x, int n, float *dx) {
  const vec one = SPLAT(1.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const vec v = LOAD(x + i), s = sigmoid4(v);
    STORE(dx + i, MUL(MUL(LOAD(dy + i), s), ADD(one, MUL(v, SUB(one, s)))));
  }
  for (; i < n; i++) {
    const float s = sigmoid1(x[i]);
    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

/*
 * Dropout mask bits: a 32-bit hash of (seed, index) (golden-ratio step, then the "lowbias32" finaliser); an
 * element is kept when its top 24 bits, as a fraction of 2^24, are >= rate. src/models/nn/layers.ts has the same
 * hash in JS for the tests.
 */
static inline v128_t hash4(v128_t index, v128_t seed) {
  v128_t h = wasm_i32x4_add(wasm_i32x4_mul(index, wasm_i32x4_splat((int)0x9E3779B9u)), seed);
  h = wasm_v128_xor(h, wasm_u32x4_shr(h, 16));
  h = wasm_i32x4_mul(h, wasm_i32x4_splat(0x7feb352d));
  h = wasm_v128_xor(h, wasm_u32x4_shr(h, 15));
  h = wasm_i32x4_mul(h, wasm_i32x4_splat((int)0x846ca68bu));
  return wasm_v128_xor(h, wasm_u32x4_shr(h, 16));
}

/* y = x * keep / (1 - rate) with keep from hash4 (threshold = rate * 2^24, rounded up). Also the gradient. */
EXPORT(dropout)
void dropout(const float *x, int n, int seed, int threshold, float scale, float *y) {
  const v128_t seeds = wasm_i32x4_splat(seed), limit = wasm_i32x4_splat(threshold);
  const vec s = SPLAT(scale), zero = SPLAT(0.0f);
  v128_t index = wasm_i32x4_make(0, 1, 2, 3);
  const v128_t four = wasm_i32x4_splat(4);
  int i = 0;
  for (; i + 4 <= n; i += 4, index = wasm_i32x4_add(index, four)) {
    const v128_t keep = wasm_i32x4_ge(wasm_u32x4_shr(hash4(index, seeds), 8), limit);
    STORE(y + i, wasm_v128_bitselect(MUL(LOAD(x + i), s), zero, keep));
  }
  for (; i < n; i++) {
    const v128_t keep = wasm_i32x4_ge(wasm_u32x4_shr(hash4(wasm_i32x4_splat(i), seeds), 8), limit);
    y[i] = wasm_i32x4_extract_lane(keep, 0) ? x[i] * scale : 0.0f;
  }
}
