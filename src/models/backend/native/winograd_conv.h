/*
 * Whole Winograd convolutions in one native call (winograd_conv.cc): the forward pass and the filter gradient of a
 * 3x3 stride-1 NHWC conv, F(2x2, 3x3) (tile 2) or F(4x4, 3x3) (tile 4), on the transforms of winograd.h and the
 * GEMM of gemm.h, with the transformed planes in thread-local scratch. Pointers are real ones (heap base + offset,
 * range-checked by the caller, addon.cc); bias may be null. Channel counts are multiples of 4. Results are the
 * bits of the plane-by-plane route (wasm/winograd.ts with the native transforms and gemmPlanes).
 */
#pragma once

#include "gemm.h"

namespace wellspring::winograd {

/** Sizes of one 3x3 stride-1 conv: x [batch, height, width, inChannels] -> y [batch, outH, outW, outChannels]. */
struct ConvShape {
  int batch, height, width, inChannels, outChannels, outH, outW, padTop, padLeft;
};

/**
 * y = conv3x3(x, filter) + bias, filter [3, 3, Cin, Cout], zero padding padTop / padLeft. With `flip` the filter is
 * given as [3, 3, Cout, Cin] and used flipped (flip_filter.h): the input gradient of a conv with that filter.
 */
void conv_forward(Isa isa, int tile, const ConvShape &s, const float *x, const float *filter, bool flip, const float *bias,
                  float *y);

/** dw [3, 3, Cin, Cout] = the filter gradient of y = conv3x3(x, w) for the output gradient dy [batch, outH, outW, Cout]. */
void conv_filter_gradient(Isa isa, int tile, const ConvShape &s, const float *x, const float *dy, float *dw);

}  // namespace wellspring::winograd
