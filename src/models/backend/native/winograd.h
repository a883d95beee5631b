/*
 * The Winograd transforms of src/models/backend/wasm/winograd.c, compiled natively by winograd.cc (the same
 * source; simd.h's native variant), for the N-API glue (addon.cc). Arguments as in winograd.c, except that every
 * pointer is a real one (heap base + offset, range-checked by the caller) and a plane table is an array of 16
 * (F(2x2, 3x3): winograd_*) or 36 (F(4x4, 3x3): winograd4_*) plane pointers. bias may be null. Single-threaded,
 * no state: worker threads each call with their own heap.
 */
#pragma once

namespace wellspring::winograd {

using PlaneTable = float *const *;

void winograd_input(const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                    int tiles_h, int tiles_w, PlaneTable out_table);
void winograd_filter(const float *g, int in_channels, int out_channels, PlaneTable out_table);
void winograd_output(PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                     int tiles_h, int tiles_w, float *y);
void winograd_grad_output(const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h, int tiles_w,
                          PlaneTable out_table);
void winograd_grad_filter(PlaneTable in_table, int in_channels, int out_channels, float *dg);

void winograd4_input(const float *x, int batch, int height, int width, int channels, int pad_top, int pad_left,
                     int tiles_h, int tiles_w, PlaneTable out_table);
void winograd4_filter(const float *g, int in_channels, int out_channels, PlaneTable out_table);
void winograd4_output(PlaneTable in_table, const float *bias, int batch, int out_h, int out_w, int channels,
                      int tiles_h, int tiles_w, float *y);
void winograd4_grad_output(const float *dy, int batch, int out_h, int out_w, int channels, int tiles_h,
                           int tiles_w, PlaneTable out_table);
void winograd4_grad_filter(PlaneTable in_table, int in_channels, int out_channels, float *dg);

}  // namespace wellspring::winograd
