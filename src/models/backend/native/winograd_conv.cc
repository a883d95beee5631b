/*
 * Whole Winograd convolutions in one native call (declarations and contract: winograd_conv.h).
 *
 * The plane-by-plane route (wasm/winograd.ts) transforms the whole batch into 16 or 36 planes on the tfjs heap,
 * multiplies plane by plane, then transforms back: with 16-32 channels at 16x16-32x32 the planes are 2-3x the
 * tensors (megabytes), so every phase streams them through memory, and each phase is a JS -> N-API crossing with
 * its own checks. Here the tiles are processed in blocks whose planes fit in L2 (about kBlockBytes): input
 * transform, products, output transform (or, for the filter gradient, the two input-side transforms and the
 * accumulation of the products), block after block, then one filter(-gradient) transform. The filter planes are
 * transformed once per call; an input gradient's flipped filter is flipped here too, into scratch (the separate
 * flip kernel's output was a cold heap tensor, read once more by the transform).
 *
 * Blocks are whole images when an image has few tiles (several images per block), else bands of tile rows of one
 * image: the transforms of winograd.c take a band as an image whose top padding is shifted by the band's first
 * row (rows above the band are then "padding" that is never read, since the band's tiles start below them).
 * At least kMinTiles tiles per block, so that the products keep rows enough for the GEMM's register tiles.
 *
 * Same bits as the plane-by-plane route: each output tile depends only on its own transformed tile and the
 * filter planes (row tiling of a GEMM changes no bit, gemm.h), and the filter gradient's products accumulate
 * block after block, which the GEMM's split-K contract makes the bits of one product over all tiles.
 */
#include "winograd_conv.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "flip_filter.h"
#include "winograd.h"

namespace wellspring::winograd {

namespace {

constexpr int64_t kBlockBytes = 384 * 1024;  // planes of one block (two sets), to stay in a 1 MiB L2
constexpr int64_t kMinTiles = 64;

/**
 * Thread-local plane sets, grown on demand: `count` planes of `floats` each, a whole number of 64-byte lines plus
 * one apart (planes 4 KiB multiples apart would fall in one L1 set; the transforms touch all of them at once).
 */
class PlaneSet {
 public:
  PlaneSet() = default;
  PlaneSet(const PlaneSet &) = delete;
  PlaneSet &operator=(const PlaneSet &) = delete;
  ~PlaneSet() { std::free(data_); }

  const std::vector<float *> &get(int count, int64_t floats) {
    const int64_t stride = (floats + 15) / 16 * 16 + 16;
    const size_t need = static_cast<size_t>(count * stride);
    if (need > size_) {
      std::free(data_);
      data_ = static_cast<float *>(std::aligned_alloc(64, need * sizeof(float)));
      if (!data_) {
        size_ = 0;
        throw std::bad_alloc();
      }
      size_ = need;
    }
    planes_.resize(static_cast<size_t>(count));
    for (int p = 0; p < count; p++) planes_[static_cast<size_t>(p)] = data_ + p * stride;
    return planes_;
  }

 private:
  float *data_ = nullptr;
  size_t size_ = 0;
  std::vector<float *> planes_;
};

thread_local PlaneSet inputPlanes, outputPlanes, filterPlanes, flippedFilter;

/** One block of tiles: `images` whole images from `image` (row0 = 0), or rows [row0, row0 + rows) of one image. */
struct Block {
  int image, images, row0, rows;
};

/** The blocks covering every tile, in tile order; `channels` is Cin + Cout (the two plane sets of a block). */
std::vector<Block> blocks(int planes, const ConvShape &s, int tilesH, int tilesW, int channels) {
  const int64_t perImage = static_cast<int64_t>(tilesH) * tilesW;
  const int64_t target = std::max<int64_t>(kMinTiles, kBlockBytes / (4 * static_cast<int64_t>(planes) * channels));
  std::vector<Block> out;
  if (perImage <= target) {
    const int per = static_cast<int>(std::max<int64_t>(1, target / perImage));
    for (int b = 0; b < s.batch; b += per) out.push_back({b, std::min(per, s.batch - b), 0, tilesH});
  } else {
    const int rows = static_cast<int>(std::max<int64_t>(1, target / tilesW));
    for (int b = 0; b < s.batch; b++) {
      for (int r = 0; r < tilesH; r += rows) out.push_back({b, 1, r, std::min(rows, tilesH - r)});
    }
  }
  return out;
}


/** The input transform of one block into `v` (tiles of the block in order). */
void input_block(Isa isa, int tile, const ConvShape &s, const Block &bk, int tilesW, const float *x, PlaneTable v) {
  const float *xb = x + static_cast<int64_t>(bk.image) * s.height * s.width * s.inChannels;
  (tile == 2 ? winograd_input : winograd4_input)(isa, xb, bk.images, s.height, s.width, s.inChannels,
                                                 s.padTop - tile * bk.row0, s.padLeft, bk.rows, tilesW, v);
}

}  // namespace

void conv_forward(Isa isa, int tile, const ConvShape &s, const float *x, const float *filter, bool flip, const float *bias,
                  float *y) {
  const int planes = (tile + 2) * (tile + 2);
  const int tilesH = (s.outH + tile - 1) / tile, tilesW = (s.outW + tile - 1) / tile;
  const int64_t ci = s.inChannels, co = s.outChannels;
  if (flip) {  // the input gradient's filter, flipped into scratch (still in cache for the transform below)
    float *flipped = flippedFilter.get(1, 9 * ci * co)[0];
    flip_filter(filter, flipped, 3, 3, co, ci);
    filter = flipped;
  }
  const std::vector<float *> &u = filterPlanes.get(planes, ci * co);
  (tile == 2 ? winograd_filter : winograd4_filter)(isa, filter, s.inChannels, s.outChannels, u.data());
  const std::vector<Block> list = blocks(planes, s, tilesH, tilesW, s.inChannels + s.outChannels);
  int64_t most = 0;
  for (const Block &bk : list) most = std::max<int64_t>(most, static_cast<int64_t>(bk.images) * bk.rows * tilesW);
  const std::vector<float *> &v = inputPlanes.get(planes, most * ci);
  const std::vector<float *> &m = outputPlanes.get(planes, most * co);
  for (const Block &bk : list) {
    const int64_t tiles = static_cast<int64_t>(bk.images) * bk.rows * tilesW;
    input_block(isa, tile, s, bk, tilesW, x, v.data());
    for (int p = 0; p < planes; p++) gemm_plane(isa, v[p], u[p], m[p], tiles, ci, co, false, false);
    float *yb = y + ((static_cast<int64_t>(bk.image) * s.outH + tile * bk.row0) * s.outW) * co;
    (tile == 2 ? winograd_output : winograd4_output)(isa, m.data(), bias, bk.images, s.outH - tile * bk.row0, s.outW,
                                                     s.outChannels, bk.rows, tilesW, yb);
  }
}

void conv_filter_gradient(Isa isa, int tile, const ConvShape &s, const float *x, const float *dy, float *dw) {
  const int planes = (tile + 2) * (tile + 2);
  const int tilesH = (s.outH + tile - 1) / tile, tilesW = (s.outW + tile - 1) / tile;
  const int64_t ci = s.inChannels, co = s.outChannels;
  const std::vector<Block> list = blocks(planes, s, tilesH, tilesW, s.inChannels + s.outChannels);
  int64_t most = 0;
  for (const Block &bk : list) most = std::max<int64_t>(most, static_cast<int64_t>(bk.images) * bk.rows * tilesW);
  const std::vector<float *> &v = inputPlanes.get(planes, most * ci);
  const std::vector<float *> &w = outputPlanes.get(planes, most * co);
  const std::vector<float *> &u = filterPlanes.get(planes, ci * co);
  bool first = true;
  for (const Block &bk : list) {
    const int64_t tiles = static_cast<int64_t>(bk.images) * bk.rows * tilesW;
    input_block(isa, tile, s, bk, tilesW, x, v.data());
    const float *dyb = dy + ((static_cast<int64_t>(bk.image) * s.outH + tile * bk.row0) * s.outW) * co;
    (tile == 2 ? winograd_grad_output : winograd4_grad_output)(isa, dyb, bk.images, s.outH - tile * bk.row0, s.outW,
                                                               s.outChannels, bk.rows, tilesW, w.data());
    // dW planes [Cin, Cout] (+)= V^T W: M = Cin, K = the block's tiles (V stored [tiles, Cin]), N = Cout.
    for (int p = 0; p < planes; p++) gemm_plane(isa, v[p], w[p], u[p], ci, tiles, co, true, !first);
    first = false;
  }
  if (first) {  // no tiles: a zero gradient
    std::fill(dw, dw + 9 * ci * co, 0.0f);
    return;
  }
  (tile == 2 ? winograd_grad_filter : winograd4_grad_filter)(isa, u.data(), s.inChannels, s.outChannels, dw);
}

}  // namespace wellspring::winograd
