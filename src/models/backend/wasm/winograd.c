/*
 * Winograd convolution kernels for 3x3 stride-1 convolutions, NHWC, float32, 4 SIMD lanes: F(2x2, 3x3) first,
 * F(4x4, 3x3) at the end of the file. One source, two builds (simd.h): wasm SIMD128 (scripts/build-wasm.mjs, the
 * transforms and products below) and native (native/winograd.cc includes this file; the transforms only, called
 * through addon.cc's range-checked exports on the same heap; the products there are the native GEMM's).
 *
 * A 3x3 convolution over 2x2 output tiles becomes, per tile, 16 elementwise products of 4x4 transformed input
 * and filter tiles; summed over channels, those are 16 independent matrix products (tiles x Cin by Cin x Cout)
 * with 16/36 of the direct method's multiply-adds (Lavin & Gray 2016, "Fast algorithms for convolutional neural
 * networks"):
 *
 *   forward          Y  = A^T [ (G g G^T) . (B^T d B) ] A
 *   filter gradient  dg = G^T [ sum over tiles (B^T d B) . (A dY A^T) ] G
 *
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] and
 * A^T = [1 1 1 0; 0 1 -1 -1]. The input gradient is a forward convolution with the flipped filter. The
 * transforms are memory-bound passes; the products are gemm.c's register-blocked kernels (they beat calling
 * XNNPACK per product here, which repacks its right operand on every call).
 *
 * Memory contract: the wasm build imports the tfjs wasm heap and must never touch memory it was not handed. It
 * has no data segments and no shadow-stack use (only scalar and v128 locals); scripts/build-wasm.mjs checks both.
 * The native build touches only what addon.cc range-checked against the same heap. Every vectorised channel count
 * is a multiple of LANES (simd.h: 4 in wasm; natively 4, 8 or 16, chosen per call by native/winograd.cc). A
 * "plane table" holds 16 (36) planes, one per transformed position xi = 4 * row + col (6 * row + col), each a
 * separate matrix: int32 heap offsets in wasm, pointers natively (simd.h).
 */
#include "gemm.h"

/* The plane at transformed position xi of a plane table (a heap offset in wasm, a pointer natively: simd.h). */
static inline float *plane(plane_table table, int xi) { return (float *)table[xi]; }


/* Loads 4 channels at `offset`, or zeros when the row or the column lies in the padding. */
static inline vec load_or_zero(const float *x, int row_ok, int col_off, int c) {
  return (row_ok && col_off >= 0) ? LOAD(x + col_off + c) : SPLAT(0.0f);
}

/*
 * Input transform B^T d B of every 4x4 input tile (stride 2, offset by the padding), written as 16 planes of
 * shape [tiles, C] (tile index = (b * tiles_h + ty) * tiles_w + tx). Positions outside the input read as zero.
 */
EXPORT(winograd_input)
void winograd_input(const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                    int tiles_h, int tiles_w, plane_table out_table) {
  const int C = channels;
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int y0 = 2 * ty - pad_top;
      /* Row pointers, dereferenced only when their r* flag says the row is inside the input. */
      const int r0 = y0 >= 0 && y0 < height, r1 = y0 + 1 >= 0 && y0 + 1 < height;
      const int r2 = y0 + 2 >= 0 && y0 + 2 < height, r3 = y0 + 3 >= 0 && y0 + 3 < height;
      const float *row0 = x + ((b * height + y0) * width) * C;
      const float *row1 = row0 + width * C, *row2 = row1 + width * C, *row3 = row2 + width * C;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int x0 = 2 * tx - pad_left;
        const int c0 = (x0 >= 0 && x0 < width) ? x0 * C : -1;
        const int c1 = (x0 + 1 >= 0 && x0 + 1 < width) ? (x0 + 1) * C : -1;
        const int c2 = (x0 + 2 >= 0 && x0 + 2 < width) ? (x0 + 2) * C : -1;
        const int c3 = (x0 + 3 >= 0 && x0 + 3 < width) ? (x0 + 3) * C : -1;
        const int tile = (b * tiles_h + ty) * tiles_w + tx;
        const int out = tile * C;
        for (int c = 0; c < C; c += LANES) {
          /* Column transform first: s_ij = (d B)_ij for each of the 4 rows i. */
#define ROW(i, rp, ok)                                                             \
  vec s##i##0, s##i##1, s##i##2, s##i##3;                                          \
  {                                                                                \
    const vec d0 = load_or_zero(rp, ok, c0, c), d1 = load_or_zero(rp, ok, c1, c); \
    const vec d2 = load_or_zero(rp, ok, c2, c), d3 = load_or_zero(rp, ok, c3, c); \
    s##i##0 = SUB(d0, d2);                                                         \
    s##i##1 = ADD(d1, d2);                                                         \
    s##i##2 = SUB(d2, d1);                                                         \
    s##i##3 = SUB(d1, d3);                                                         \
  }
          ROW(0, row0, r0)
          ROW(1, row1, r1)
          ROW(2, row2, r2)
          ROW(3, row3, r3)
#undef ROW
          /* Then the row transform B^T s, column by column. */
#define COL(j)                                                   \
  STORE(plane(out_table, 0 + j) + out + c, SUB(s0##j, s2##j));  \
  STORE(plane(out_table, 4 + j) + out + c, ADD(s1##j, s2##j));  \
  STORE(plane(out_table, 8 + j) + out + c, SUB(s2##j, s1##j));  \
  STORE(plane(out_table, 12 + j) + out + c, SUB(s1##j, s3##j));
          COL(0)
          COL(1)
          COL(2)
          COL(3)
#undef COL
        }
      }
    }
  }
}

/* Filter transform G g G^T of a [3, 3, Cin, Cout] filter into 16 planes [Cin, Cout]. */
EXPORT(winograd_filter)
void winograd_filter(const float *g, int in_channels, int out_channels, plane_table out_table) {
  const int Ci = in_channels, Co = out_channels, tap = Ci * Co;
  const vec half = SPLAT(0.5f);
  for (int ci = 0; ci < Ci; ci++) {
    for (int co = 0; co < Co; co += LANES) {
      const float *p = g + ci * Co + co;
#define G(a, b) LOAD(p + ((a) * 3 + (b)) * tap)
      /* t = G g (4x3), by columns b. */
#define TCOL(b)                                                     \
  const vec g0##b = G(0, b), g1##b = G(1, b), g2##b = G(2, b);      \
  const vec t0##b = g0##b;                                          \
  const vec t1##b = MUL(half, ADD(ADD(g0##b, g1##b), g2##b));       \
  const vec t2##b = MUL(half, ADD(SUB(g0##b, g1##b), g2##b));       \
  const vec t3##b = g2##b;
      TCOL(0)
      TCOL(1)
      TCOL(2)
#undef TCOL
#undef G
      const int o = ci * Co + co;
      /* U = t G^T (4x4), by rows i. */
#define UROW(i)                                                                      \
  STORE(plane(out_table, 4 * i + 0) + o, t##i##0);                                   \
  STORE(plane(out_table, 4 * i + 1) + o, MUL(half, ADD(ADD(t##i##0, t##i##1), t##i##2))); \
  STORE(plane(out_table, 4 * i + 2) + o, MUL(half, ADD(SUB(t##i##0, t##i##1), t##i##2))); \
  STORE(plane(out_table, 4 * i + 3) + o, t##i##2);
      UROW(0)
      UROW(1)
      UROW(2)
      UROW(3)
#undef UROW
    }
  }
}

/*
 * Output transform A^T m A of the 16 product planes [tiles, Cout] into y [batch, out_h, out_w, Cout], plus the
 * bias (heap offset, or 0 for none). Outputs past out_h / out_w (odd sizes) are dropped.
 */
EXPORT(winograd_output)
void winograd_output(plane_table in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                     int tiles_h, int tiles_w, float *y) {
  const int C = channels;
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int oy = 2 * ty;
      const int second_row = oy + 1 < out_h;
      float *y0 = y + ((b * out_h + oy) * out_w) * C;
      float *y1 = y0 + out_w * C;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int ox = 2 * tx;
        const int second_col = ox + 1 < out_w;
        const int tile = (b * tiles_h + ty) * tiles_w + tx;
        const int in = tile * C;
        for (int c = 0; c < C; c += LANES) {
          /* r = A^T m (2x4), by columns j. */
#define RCOL(j)                                                             \
  const vec m0##j = LOAD(plane(in_table, 0 + j) + in + c);                  \
  const vec m1##j = LOAD(plane(in_table, 4 + j) + in + c);                  \
  const vec m2##j = LOAD(plane(in_table, 8 + j) + in + c);                  \
  const vec m3##j = LOAD(plane(in_table, 12 + j) + in + c);                 \
  const vec r0##j = ADD(ADD(m0##j, m1##j), m2##j);                          \
  const vec r1##j = SUB(SUB(m1##j, m2##j), m3##j);
          RCOL(0)
          RCOL(1)
          RCOL(2)
          RCOL(3)
#undef RCOL
          const vec bv = bias ? LOAD(bias + c) : SPLAT(0.0f);
          STORE(y0 + ox * C + c, ADD(bv, ADD(ADD(r00, r01), r02)));
          if (second_col) STORE(y0 + (ox + 1) * C + c, ADD(bv, SUB(SUB(r01, r02), r03)));
          if (second_row) {
            STORE(y1 + ox * C + c, ADD(bv, ADD(ADD(r10, r11), r12)));
            if (second_col) STORE(y1 + (ox + 1) * C + c, ADD(bv, SUB(SUB(r11, r12), r13)));
          }
        }
      }
    }
  }
}

/*
 * Output-gradient transform A dY A^T of every 2x2 block of dy [batch, out_h, out_w, C] into 16 planes
 * [tiles, C]; positions past out_h / out_w (odd sizes) read as zero.
 */
EXPORT(winograd_grad_output)
void winograd_grad_output(const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h, int tiles_w,
                          plane_table out_table) {
  const int C = channels;
  const vec zero = SPLAT(0.0f);
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int oy = 2 * ty;
      const int second_row = oy + 1 < out_h;
      const float *d0 = dy + ((b * out_h + oy) * out_w) * C;
      const float *d1 = d0 + out_w * C;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int ox = 2 * tx;
        const int second_col = ox + 1 < out_w;
        const int out = ((b * tiles_h + ty) * tiles_w + tx) * C;
        for (int c = 0; c < C; c += LANES) {
          const vec e00 = LOAD(d0 + ox * C + c);
          const vec e01 = second_col ? LOAD(d0 + (ox + 1) * C + c) : zero;
          const vec e10 = second_row ? LOAD(d1 + ox * C + c) : zero;
          const vec e11 = second_row && second_col ? LOAD(d1 + (ox + 1) * C + c) : zero;
          /* q = A e (4x2), rows: e0, e0 + e1, e0 - e1, -e1. */
          const vec q00 = e00, q01 = e01;
          const vec q10 = ADD(e00, e10), q11 = ADD(e01, e11);
          const vec q20 = SUB(e00, e10), q21 = SUB(e01, e11);
          const vec q30 = NEG(e10), q31 = NEG(e11);
          /* W = q A^T (4x4), columns: q0, q0 + q1, q0 - q1, -q1. */
#define WROW(i)                                                         \
  STORE(plane(out_table, 4 * i + 0) + out + c, q##i##0);                \
  STORE(plane(out_table, 4 * i + 1) + out + c, ADD(q##i##0, q##i##1));  \
  STORE(plane(out_table, 4 * i + 2) + out + c, SUB(q##i##0, q##i##1));  \
  STORE(plane(out_table, 4 * i + 3) + out + c, NEG(q##i##1));
          WROW(0)
          WROW(1)
          WROW(2)
          WROW(3)
#undef WROW
        }
      }
    }
  }
}

/* Filter-gradient transform G^T u G of 16 planes u [Cin, Cout] into dg [3, 3, Cin, Cout]. */
EXPORT(winograd_grad_filter)
void winograd_grad_filter(plane_table in_table, int in_channels, int out_channels, float *dg) {
  const int Ci = in_channels, Co = out_channels, tap = Ci * Co;
  const vec half = SPLAT(0.5f);
  for (int ci = 0; ci < Ci; ci++) {
    for (int co = 0; co < Co; co += LANES) {
      const int o = ci * Co + co;
      /* e = G^T u (3x4), by columns j: rows u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3. */
#define ECOL(j)                                                  \
  const vec u0##j = LOAD(plane(in_table, 0 + j) + o);            \
  const vec u1##j = LOAD(plane(in_table, 4 + j) + o);            \
  const vec u2##j = LOAD(plane(in_table, 8 + j) + o);            \
  const vec u3##j = LOAD(plane(in_table, 12 + j) + o);           \
  const vec h##j = MUL(half, ADD(u1##j, u2##j));                 \
  const vec e0##j = ADD(u0##j, h##j);                            \
  const vec e1##j = MUL(half, SUB(u1##j, u2##j));                \
  const vec e2##j = ADD(h##j, u3##j);
      ECOL(0)
      ECOL(1)
      ECOL(2)
      ECOL(3)
#undef ECOL
      /* dg = e G (3x3), by rows a: columns e0 + (e1 + e2)/2, (e1 - e2)/2, (e1 + e2)/2 + e3. */
#define DROW(a)                                                       \
  {                                                                   \
    const vec k = MUL(half, ADD(e##a##1, e##a##2));                   \
    STORE(dg + ((a) * 3 + 0) * tap + o, ADD(e##a##0, k));             \
    STORE(dg + ((a) * 3 + 1) * tap + o, MUL(half, SUB(e##a##1, e##a##2))); \
    STORE(dg + ((a) * 3 + 2) * tap + o, ADD(k, e##a##3));             \
  }
      DROW(0)
      DROW(1)
      DROW(2)
#undef DROW
    }
  }
}

#ifndef WELLSPRING_NATIVE_SIMD /* natively, the products are the native GEMM's (addon.cc, gemmPlanes) */

/*
 * Filter-gradient products: out[xi] (+)= v[xi]^T w[xi] for `planes` planes v [tiles, Cin] and w [tiles, Cout]
 * into planes [Cin, Cout] (16 for F(2x2, 3x3), 36 for F(4x4, 3x3)); Cin and Cout multiples of 4. With
 * `add_to_out` the sums are added to what `out` holds (the caller splits a large batch into parts).
 */
EXPORT(winograd_accumulate)
void winograd_accumulate(int planes, const int *v_table, const int *w_table, int tiles, int in_channels,
                         int out_channels, int add_to_out, plane_table out_table) {
  for (int xi = 0; xi < planes; xi++)
    gemm_tn(plane(v_table, xi), plane(w_table, xi), plane(out_table, xi), tiles, in_channels, out_channels, add_to_out);
}

/*
 * Forward products: m[xi] = v[xi] u[xi] for `planes` planes v [tiles, Cin] and u [Cin, Cout] into planes
 * [tiles, Cout]; Cout a multiple of 4.
 */
EXPORT(winograd_multiply)
void winograd_multiply(int planes, const int *v_table, const int *u_table, int tiles, int in_channels,
                       int out_channels, plane_table out_table) {
  for (int xi = 0; xi < planes; xi++)
    gemm_nn(plane(v_table, xi), plane(u_table, xi), plane(out_table, xi), tiles, in_channels, out_channels);
}

#endif

/* ------------------------------------------------------------------------------------------------------------
 * F(4x4, 3x3): 4x4 output tiles from 6x6 input tiles, 36 planes, 36/144 of the direct multiply-adds (vs 16/36
 * for F(2x2, 3x3)), at the cost of larger transform constants: float32 rounding error 5-10x that of F(2x2) (max
 * relative error about 1e-5 forward at 256 channels, 2-4e-5 for filter gradients summed over 64x64 images).
 * Interpolation points 0, +-1, +-2 and infinity:
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The 1D transforms below work on arrays of v128 with constant indices only, which clang keeps in locals.
 * ------------------------------------------------------------------------------------------------------------ */

static inline __attribute__((always_inline)) void f43_bt(const vec d[6], vec r[6]) {
  const vec four = SPLAT(4.0f), five = SPLAT(5.0f), two = SPLAT(2.0f);
  r[0] = ADD(SUB(MUL(four, d[0]), MUL(five, d[2])), d[4]);
  r[1] = SUB(ADD(d[3], d[4]), MUL(four, ADD(d[1], d[2])));
  r[2] = ADD(SUB(d[4], d[3]), MUL(four, SUB(d[1], d[2])));
  r[3] = ADD(SUB(d[4], d[2]), MUL(two, SUB(d[3], d[1])));
  r[4] = ADD(SUB(d[4], d[2]), MUL(two, SUB(d[1], d[3])));
  r[5] = ADD(SUB(MUL(four, d[1]), MUL(five, d[3])), d[5]);
}

static inline __attribute__((always_inline)) void f43_at(const vec m[6], vec y[4]) {
  const vec two = SPLAT(2.0f), four = SPLAT(4.0f), eight = SPLAT(8.0f);
  const vec p12 = ADD(m[1], m[2]), m12 = SUB(m[1], m[2]);
  const vec p34 = ADD(m[3], m[4]), m34 = SUB(m[3], m[4]);
  y[0] = ADD(ADD(m[0], p12), p34);
  y[1] = ADD(m12, MUL(two, m34));
  y[2] = ADD(p12, MUL(four, p34));
  y[3] = ADD(ADD(m12, MUL(eight, m34)), m[5]);
}

static inline __attribute__((always_inline)) void f43_g(const vec g[3], vec u[6]) {
  const vec quarter = SPLAT(0.25f), sixth = SPLAT(1.0f / 6.0f), twelfth = SPLAT(1.0f / 12.0f);
  const vec twentyfourth = SPLAT(1.0f / 24.0f);
  const vec outer = ADD(g[0], g[2]);
  u[0] = MUL(quarter, g[0]);
  u[1] = NEG(MUL(sixth, ADD(outer, g[1])));
  u[2] = NEG(MUL(sixth, SUB(outer, g[1])));
  const vec even = ADD(MUL(twentyfourth, g[0]), MUL(sixth, g[2]));
  u[3] = ADD(even, MUL(twelfth, g[1]));
  u[4] = SUB(even, MUL(twelfth, g[1]));
  u[5] = g[2];
}

/* A e: the transpose of A^T, 4 -> 6 (output-gradient transform). */
static inline __attribute__((always_inline)) void f43_a(const vec e[4], vec w[6]) {
  const vec two = SPLAT(2.0f), four = SPLAT(4.0f), eight = SPLAT(8.0f);
  const vec even = ADD(e[0], MUL(four, e[2]));
  const vec odd = ADD(MUL(two, e[1]), MUL(eight, e[3]));
  w[0] = e[0];
  w[1] = ADD(ADD(e[0], e[1]), ADD(e[2], e[3]));
  w[2] = SUB(ADD(e[0], e[2]), ADD(e[1], e[3]));
  w[3] = ADD(even, odd);
  w[4] = SUB(even, odd);
  w[5] = e[3];
}

/* G^T u: the transpose of G, 6 -> 3 (filter-gradient transform). */
static inline __attribute__((always_inline)) void f43_gt(const vec u[6], vec k[3]) {
  const vec quarter = SPLAT(0.25f), sixth = SPLAT(1.0f / 6.0f), twelfth = SPLAT(1.0f / 12.0f);
  const vec twentyfourth = SPLAT(1.0f / 24.0f);
  const vec p12 = ADD(u[1], u[2]), m12 = SUB(u[1], u[2]);
  const vec p34 = ADD(u[3], u[4]), m34 = SUB(u[3], u[4]);
  k[0] = ADD(SUB(MUL(quarter, u[0]), MUL(sixth, p12)), MUL(twentyfourth, p34));
  k[1] = SUB(MUL(twelfth, m34), MUL(sixth, m12));
  k[2] = ADD(MUL(sixth, SUB(p34, p12)), u[5]);
}

/* Input transform B^T d B of every 6x6 input tile (stride 4) into 36 planes [tiles, C]; padding reads as 0. */
EXPORT(winograd4_input)
void winograd4_input(const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                     int tiles_h, int tiles_w, plane_table out_table) {
  const int C = channels;
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int y0 = 4 * ty - pad_top;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int x0 = 4 * tx - pad_left;
        const int out = ((b * tiles_h + ty) * tiles_w + tx) * C;
        int row_ok[6], col_off[6];
UNROLL
        for (int i = 0; i < 6; i++) {
          row_ok[i] = y0 + i >= 0 && y0 + i < height;
          col_off[i] = (x0 + i >= 0 && x0 + i < width) ? (x0 + i) * C : -1;
        }
        for (int c = 0; c < C; c += LANES) {
          vec s[6][6];
UNROLL
          for (int i = 0; i < 6; i++) {
            const float *row = x + ((b * height + y0 + i) * width) * C;
            vec d[6];
UNROLL
            for (int j = 0; j < 6; j++) d[j] = load_or_zero(row, row_ok[i], col_off[j], c);
            f43_bt(d, s[i]);
          }
UNROLL
          for (int j = 0; j < 6; j++) {
            vec col[6], r[6];
UNROLL
            for (int i = 0; i < 6; i++) col[i] = s[i][j];
            f43_bt(col, r);
UNROLL
            for (int i = 0; i < 6; i++) STORE(plane(out_table, 6 * i + j) + out + c, r[i]);
          }
        }
      }
    }
  }
}

/* Filter transform G g G^T of a [3, 3, Cin, Cout] filter into 36 planes [Cin, Cout]. */
EXPORT(winograd4_filter)
void winograd4_filter(const float *g, int in_channels, int out_channels, plane_table out_table) {
  const int Ci = in_channels, Co = out_channels, tap = Ci * Co;
  for (int ci = 0; ci < Ci; ci++) {
    for (int co = 0; co < Co; co += LANES) {
      const int o = ci * Co + co;
      vec t[6][3];
UNROLL
      for (int b = 0; b < 3; b++) {
        vec col[3], r[6];
UNROLL
        for (int a = 0; a < 3; a++) col[a] = LOAD(g + (a * 3 + b) * tap + o);
        f43_g(col, r);
UNROLL
        for (int i = 0; i < 6; i++) t[i][b] = r[i];
      }
UNROLL
      for (int i = 0; i < 6; i++) {
        vec r[6];
        f43_g(t[i], r);
UNROLL
        for (int j = 0; j < 6; j++) STORE(plane(out_table, 6 * i + j) + o, r[j]);
      }
    }
  }
}

/* Output transform A^T m A of 36 product planes [tiles, Cout] into y [batch, out_h, out_w, Cout] plus bias. */
EXPORT(winograd4_output)
void winograd4_output(plane_table in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                      int tiles_h, int tiles_w, float *y) {
  const int C = channels;
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int oy = 4 * ty;
      const int rows = out_h - oy < 4 ? out_h - oy : 4;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int ox = 4 * tx;
        const int cols = out_w - ox < 4 ? out_w - ox : 4;
        const int in = ((b * tiles_h + ty) * tiles_w + tx) * C;
        float *base = y + ((b * out_h + oy) * out_w + ox) * C;
        for (int c = 0; c < C; c += LANES) {
          vec r[4][6];
UNROLL
          for (int j = 0; j < 6; j++) {
            vec col[6], q[4];
UNROLL
            for (int i = 0; i < 6; i++) col[i] = LOAD(plane(in_table, 6 * i + j) + in + c);
            f43_at(col, q);
UNROLL
            for (int i = 0; i < 4; i++) r[i][j] = q[i];
          }
          const vec bv = bias ? LOAD(bias + c) : SPLAT(0.0f);
UNROLL
          for (int i = 0; i < 4; i++) {
            vec q[4];
            f43_at(r[i], q);
            if (i < rows) {
              float *row = base + i * out_w * C + c;
UNROLL
              for (int j = 0; j < 4; j++)
                if (j < cols) STORE(row + j * C, ADD(bv, q[j]));
            }
          }
        }
      }
    }
  }
}

/* Output-gradient transform A e A^T of every 4x4 block of dy into 36 planes [tiles, C]; past the edge reads 0. */
EXPORT(winograd4_grad_output)
void winograd4_grad_output(const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h,
                           int tiles_w, plane_table out_table) {
  const int C = channels;
  const vec zero = SPLAT(0.0f);
  for (int b = 0; b < batch; b++) {
    for (int ty = 0; ty < tiles_h; ty++) {
      const int oy = 4 * ty;
      const int rows = out_h - oy < 4 ? out_h - oy : 4;
      for (int tx = 0; tx < tiles_w; tx++) {
        const int ox = 4 * tx;
        const int cols = out_w - ox < 4 ? out_w - ox : 4;
        const int out = ((b * tiles_h + ty) * tiles_w + tx) * C;
        const float *base = dy + ((b * out_h + oy) * out_w + ox) * C;
        for (int c = 0; c < C; c += LANES) {
          vec s[4][6];
UNROLL
          for (int i = 0; i < 4; i++) {
            vec e[4];
UNROLL
            for (int j = 0; j < 4; j++) e[j] = (i < rows && j < cols) ? LOAD(base + (i * out_w + j) * C + c) : zero;
            f43_a(e, s[i]);
          }
UNROLL
          for (int j = 0; j < 6; j++) {
            vec col[4], w[6];
UNROLL
            for (int i = 0; i < 4; i++) col[i] = s[i][j];
            f43_a(col, w);
UNROLL
            for (int i = 0; i < 6; i++) STORE(plane(out_table, 6 * i + j) + out + c, w[i]);
          }
        }
      }
    }
  }
}

/* Filter-gradient transform G^T u G of 36 planes u [Cin, Cout] into dg [3, 3, Cin, Cout]. */
EXPORT(winograd4_grad_filter)
void winograd4_grad_filter(plane_table in_table, int in_channels, int out_channels, float *dg) {
  const int Ci = in_channels, Co = out_channels, tap = Ci * Co;
  for (int ci = 0; ci < Ci; ci++) {
    for (int co = 0; co < Co; co += LANES) {
      const int o = ci * Co + co;
      vec e[3][6];
UNROLL
      for (int j = 0; j < 6; j++) {
        vec col[6], k[3];
UNROLL
        for (int i = 0; i < 6; i++) col[i] = LOAD(plane(in_table, 6 * i + j) + o);
        f43_gt(col, k);
UNROLL
        for (int a = 0; a < 3; a++) e[a][j] = k[a];
      }
UNROLL
      for (int a = 0; a < 3; a++) {
        vec k[3];
        f43_gt(e[a], k);
UNROLL
        for (int b = 0; b < 3; b++) STORE(dg + (a * 3 + b) * tap + o, k[b]);
      }
    }
  }
}
