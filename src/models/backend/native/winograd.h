/*
 * The Winograd transforms of src/models/backend/wasm/winograd.c, compiled natively by winograd.cc (the same
 * source; simd.h's native variant, in 4-, 8- and 16-lane builds), for the N-API glue (addon.cc). Arguments as in
 * winograd.c after `isa`, except that every pointer is a real one (heap base + offset, range-checked by the
 * caller) and a plane table is an array of 16 (F(2x2, 3x3): winograd_*) or 36 (F(4x4, 3x3): winograd4_*) plane
 * pointers. bias may be null. `isa` (the GEMM's, gemm.h) bounds the vector width: AVX-512 16 lanes, AVX2 8,
 * otherwise 4, each used when it divides the vectorised channel count; every width gives the same bits.
 * Single-threaded, no state: worker threads each call with their own heap.
 */
#pragma once

#include "gemm.h"

namespace wellspring::winograd {

using wellspring::Isa;

using PlaneTable = float *const *;

void winograd_input(Isa isa, const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                    int tiles_h, int tiles_w, PlaneTable out_table);
void winograd_filter(Isa isa, const float *g, int in_channels, int out_channels, PlaneTable out_table);
void winograd_output(Isa isa, PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                     int tiles_h, int tiles_w, float *y);
void winograd_grad_output(Isa isa, const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h, int tiles_w,
                          PlaneTable out_table);
void winograd_grad_filter(Isa isa, PlaneTable in_table, int in_channels, int out_channels, float *dg);

void winograd4_input(Isa isa, const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                     int tiles_h, int tiles_w, PlaneTable out_table);
void winograd4_filter(Isa isa, const float *g, int in_channels, int out_channels, PlaneTable out_table);
void winograd4_output(Isa isa, PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                      int tiles_h, int tiles_w, float *y);
void winograd4_grad_output(Isa isa, const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h,
                           int tiles_w, PlaneTable out_table);
void winograd4_grad_filter(Isa isa, PlaneTable in_table, int in_channels, int out_channels, float *dg);

}  // namespace wellspring::winograd
