/*
 * N-API glue of the native kernels (node_api.h only, context-aware so that worker threads can load it).
 *
 * Exports:
 *   gemm(heap, a, b, c, bias, batch, strideA, strideB, m, k, n, transA, transB)
 *       heap: an ArrayBuffer (the wasm backend's memory buffer, read afresh at each call); a, b, c, bias: byte
 *       offsets into it (bias -1: none); strides in elements (0: the operand is shared by the batch). Computes
 *       C[e] = op(A[e]) op(B[e]) (+ bias) in place, with no copy. Every range is checked against the buffer and C
 *       against A, B and bias (no overlap): a violation throws a RangeError saying which.
 *   gemmPlanes(heap, planes, aTable, bTable, cTable, m, k, n, transA, accumulate)
 *       The per-plane products of the Winograd convolutions: for p < planes, C_p = op(A_p) B_p, or C_p += op(A_p) B_p
 *       with `accumulate`, where op(A_p) is m x k (A_p stored [m, k], or [k, m] with transA), B_p [k, n] and C_p
 *       [m, n]. aTable, bTable, cTable: byte offsets of int32 arrays of `planes` byte offsets into the heap (the
 *       plane tables wasm/winograd.ts builds). The offsets are copied and every plane is range-checked (and C_p
 *       against A_p and B_p) before any is computed: a violation throws a RangeError naming the plane.
 *   winogradInput(heap, tile, x, batch, height, width, channels, padTop, padLeft, tilesH, tilesW, table)
 *   winogradFilter(heap, tile, g, inChannels, outChannels, table)
 *   winogradOutput(heap, tile, table, bias, batch, outH, outW, channels, tilesH, tilesW, y)
 *   winogradGradOutput(heap, tile, dy, batch, outH, outW, channels, tilesH, tilesW, table)
 *   winogradGradFilter(heap, tile, table, inChannels, outChannels, dg)
 *       The Winograd transforms of wasm/winograd.c compiled natively (winograd.cc), F(2x2, 3x3) for tile 2 (16
 *       planes) and F(4x4, 3x3) for tile 4 (36), with the wasm exports' arguments after heap and tile: byte offsets
 *       into the heap (bias -1: none) and plane tables (byte offsets of int32 arrays of 16 / 36 plane offsets).
 *       Before anything is written, every operand and every plane is range-checked against the heap (planes hold
 *       batch * tilesH * tilesW * channels floats, or inChannels * outChannels for the filter forms), outputs
 *       against inputs (no overlap), the vectorised channel count (channels, outChannels) must be a multiple of 4,
 *       the tile counts of the output forms must be ceil(outH / tile) and ceil(outW / tile), and the index
 *       arithmetic must fit the kernels' int32: a violation throws a RangeError naming the export and the place.
 *   winogradConv(heap, tile, x, filter, flip, bias, y, batch, height, width, inChannels, outChannels, outH, outW, padTop, padLeft)
 *   winogradConvFilterGradient(heap, tile, x, dy, dw, batch, height, width, inChannels, outChannels, outH, outW, padTop, padLeft)
 *       A whole Winograd conv (forward, bias -1: none; flip 1: the filter is [3, 3, Cout, Cin], used flipped, for
 *       input gradients) or filter gradient in one call (winograd_conv.h: blocks of
 *       tiles in native scratch; the bits of the transforms and gemmPlanes above). Operands range-checked, outputs
 *       apart from inputs, channel counts multiples of 4, indices inside int32, as above.
 *   flipFilter(src, dst, kh, kw, inChannels, outChannels)
 *       The filter of a conv's input gradient (flip_filter.h): Float32Arrays of kh * kw * inChannels * outChannels,
 *       not overlapping; dst [kh, kw, out, in] = src [kh, kw, in, out] with both spatial axes reversed.
 *   permute(src, dst, shapeAndPerm)
 *       Axis permutation (permute.h) of src (Float32Array, any 4-byte data) into dst, not overlapping: shapeAndPerm
 *       a Float64Array of src's shape then the permutation (rank 1-8), their sizes matching.
 *   adamw(w, m, v, g, ema, constants)
 *       One fused AdamW update (optim.h) of one parameter in place: w, m, v, g and ema (null: no EMA) are
 *       Float32Arrays of one length (SharedArrayBuffer-backed ones too), constants a Float64Array of 14 numbers:
 *       scale, beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, eps, lr, 1 - lr * weightDecay, decays (0/1), scaled
 *       (0/1), emaDecay, 1 - emaDecay (each rounded to float32 here, as tfjs rounds its scalars).
 *   emaUpdate(ema, w, decay, oneMinusDecay)
 *       ema <- decay ema + oneMinusDecay w, Float32Arrays of one length.
 *   accumulate(out, src, weight, first)
 *       out <- weight src (first) or out + weight src, in double rounded to float32. Float32Arrays of one length.
 *   sumSquares(x)
 *       The sum of the squares of a Float32Array as tfjs' square().sum() computes it (float32, in order).
 *   columnSums(x, out)
 *       out[c] = the sum over rows of x[r * cols + c] (cols = out.length, rows = x.length / cols), accumulated in
 *       double and rounded once (reduce.h). x and out are Float32Arrays (views of the wasm heap too) that must
 *       not overlap; x's length must be a multiple of out's.
 *   rotary(x, cos, sin, half, y)
 *   rotaryGrad(dy, x, cos, sin, half, dx, dcos, dsin)
 *       The rotary embedding and its gradient (rotary.h): x, y, dy, dx of one length, a multiple of 2 * cos.length;
 *       cos, sin, dcos, dsin of one length, a multiple of half. Outputs must not overlap inputs.
 *       Wrong types or lengths throw a TypeError / RangeError naming the export and the argument.
 *   isa(): the ISA in use for this thread's instance ('avx512' | 'avx2' | 'generic').
 *   setIsa(name): switches this instance's ISA (throws when the CPU lacks it); returns the name.
 *   supported(): the ISAs this CPU supports, widest first.
 *   peakGflops(name, seconds): the measured FMA throughput of one core with that ISA (gemm.h).
 */
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "gemm.h"
#include "optim.h"
#include "reduce.h"
#include "rotary.h"
#include "winograd.h"
#include "winograd_conv.h"
#include "flip_filter.h"
#include "permute.h"

using wellspring::Isa;

namespace {

struct Instance {
  Isa isa;
};

#define CHECK_NAPI(env, call)                                   \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      napi_throw_error((env), nullptr, "wellspring native: N-API call failed: " #call); \
      return nullptr;                                           \
    }                                                           \
  } while (0)

Instance *instance(napi_env env) {
  void *data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance *>(data);
}

bool parse_isa(const std::string &name, Isa *out) {
  if (name == "avx512") *out = Isa::avx512;
  else if (name == "avx2") *out = Isa::avx2;
  else if (name == "generic") *out = Isa::generic;
  else return false;
  return true;
}

/**
 * Reads an argument as a non-negative integer (or -1 when `allowMinusOne`); throws and returns false otherwise.
 * `fn` names the export in the message.
 */
bool integer_arg(napi_env env, napi_value v, const char *name, bool allowMinusOne, int64_t *out, const char *fn = "gemm") {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + name + " must be a number").c_str());
    return false;
  }
  if (!std::isfinite(d) || d != std::floor(d) || d < (allowMinusOne ? -1 : 0) || d > 9007199254740991.0) {
    napi_throw_range_error(env, nullptr,
                           (std::string("wellspring native ") + fn + ": " + name + " must be a non-negative integer, got " +
                            std::to_string(d))
                               .c_str());
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

struct Range {
  const char *name;
  int64_t begin, end;  // bytes
};

/** The byte range an operand spans: offset + 4 * ((batch-1)*stride + size), or empty. */
Range span(const char *name, int64_t offset, int64_t batch, int64_t stride, int64_t size) {
  if (batch == 0 || size == 0) return {name, offset, offset};
  return {name, offset, offset + 4 * ((batch - 1) * stride + size)};
}

napi_value Gemm(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 13) {
    napi_throw_type_error(env, nullptr,
                          "wellspring native gemm: expected 13 arguments (heap, a, b, c, bias, batch, strideA, strideB, m, "
                          "k, n, transA, transB)");
    return nullptr;
  }
  bool isBuffer = false;
  CHECK_NAPI(env, napi_is_arraybuffer(env, argv[0], &isBuffer));
  if (!isBuffer) {
    napi_throw_type_error(env, nullptr, "wellspring native gemm: heap must be an ArrayBuffer (the wasm memory's buffer)");
    return nullptr;
  }
  void *base = nullptr;
  size_t byteLength = 0;
  CHECK_NAPI(env, napi_get_arraybuffer_info(env, argv[0], &base, &byteLength));
  const char *names[] = {"a", "b", "c", "bias", "batch", "strideA", "strideB", "m", "k", "n"};
  int64_t v[10];
  for (int i = 0; i < 10; i++) {
    if (!integer_arg(env, argv[i + 1], names[i], i == 3, &v[i])) return nullptr;
  }
  bool transA = false, transB = false;
  if (napi_get_value_bool(env, argv[11], &transA) != napi_ok || napi_get_value_bool(env, argv[12], &transB) != napi_ok) {
    napi_throw_type_error(env, nullptr, "wellspring native gemm: transA and transB must be booleans");
    return nullptr;
  }
  const int64_t a = v[0], b = v[1], c = v[2], bias = v[3], batch = v[4], strideA = v[5], strideB = v[6];
  const int64_t m = v[7], k = v[8], n = v[9];
  // Bound the shape so the byte arithmetic below cannot overflow (the heap is at most 4 GiB).
  const int64_t limit = int64_t{1} << 32;
  const int64_t per = limit / (batch > 0 ? batch : 1);  // what one batch entry may span
  if (m > limit || k > limit || n > limit || batch > limit || strideA > per || strideB > per || m * k > per ||
      k * n > per || m * n > per) {
    napi_throw_range_error(env, nullptr, "wellspring native gemm: shape or strides too large for a 4 GiB heap");
    return nullptr;
  }
  const int64_t offsets[] = {a, b, c, bias};
  for (int i = 0; i < 4; i++) {
    if (offsets[i] >= 0 && offsets[i] % 4 != 0) {
      napi_throw_range_error(env, nullptr,
                             (std::string("wellspring native gemm: offset of ") + names[i] + " (" +
                              std::to_string(offsets[i]) + ") is not a multiple of 4 bytes")
                                 .c_str());
      return nullptr;
    }
  }
  const Range ranges[] = {span("a", a, batch, strideA, m * k), span("b", b, batch, strideB, k * n),
                          span("c", c, batch, m * n, m * n), bias >= 0 ? span("bias", bias, 1, 0, n) : Range{"bias", 0, 0}};
  for (const Range &r : ranges) {
    if (r.end > static_cast<int64_t>(byteLength)) {
      napi_throw_range_error(env, nullptr,
                             (std::string("wellspring native gemm: ") + r.name + " spans bytes [" +
                              std::to_string(r.begin) + ", " + std::to_string(r.end) +
                              ") but the heap holds " + std::to_string(byteLength) + " bytes")
                                 .c_str());
      return nullptr;
    }
  }
  for (int i = 0; i < 4; i++) {
    if (i == 2) continue;
    const Range &r = ranges[i], &out = ranges[2];
    if (r.begin < r.end && out.begin < out.end && r.begin < out.end && out.begin < r.end) {
      napi_throw_range_error(env, nullptr,
                             (std::string("wellspring native gemm: the output c overlaps input ") + r.name).c_str());
      return nullptr;
    }
  }
  char *heap = static_cast<char *>(base);
  wellspring::GemmArgs g;
  g.a = reinterpret_cast<const float *>(heap + a);
  g.b = reinterpret_cast<const float *>(heap + b);
  g.c = reinterpret_cast<float *>(heap + c);
  g.bias = bias >= 0 ? reinterpret_cast<const float *>(heap + bias) : nullptr;
  g.batch = batch;
  g.strideA = strideA;
  g.strideB = strideB;
  g.strideC = m * n;
  g.m = m;
  g.k = k;
  g.n = n;
  g.transA = transA;
  g.transB = transB;
  try {
    wellspring::gemm(instance(env)->isa, g);
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, (std::string("wellspring native gemm: ") + e.what()).c_str());
  }
  return nullptr;
}

/** Throws a RangeError "wellspring native gemmPlanes: <message>" and returns nullptr. */
napi_value planes_error(napi_env env, const std::string &message) {
  napi_throw_range_error(env, nullptr, ("wellspring native gemmPlanes: " + message).c_str());
  return nullptr;
}

napi_value GemmPlanes(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10) {
    napi_throw_type_error(env, nullptr,
                          "wellspring native gemmPlanes: expected 10 arguments (heap, planes, aTable, bTable, cTable, m, k, "
                          "n, transA, accumulate)");
    return nullptr;
  }
  bool isBuffer = false;
  CHECK_NAPI(env, napi_is_arraybuffer(env, argv[0], &isBuffer));
  if (!isBuffer) {
    napi_throw_type_error(env, nullptr, "wellspring native gemmPlanes: heap must be an ArrayBuffer (the wasm memory's buffer)");
    return nullptr;
  }
  void *base = nullptr;
  size_t byteLength = 0;
  CHECK_NAPI(env, napi_get_arraybuffer_info(env, argv[0], &base, &byteLength));
  const char *names[] = {"planes", "aTable", "bTable", "cTable", "m", "k", "n"};
  int64_t v[7];
  for (int i = 0; i < 7; i++) {
    if (!integer_arg(env, argv[i + 1], names[i], false, &v[i], "gemmPlanes")) return nullptr;
  }
  bool transA = false, accumulate = false;
  if (napi_get_value_bool(env, argv[8], &transA) != napi_ok || napi_get_value_bool(env, argv[9], &accumulate) != napi_ok) {
    napi_throw_type_error(env, nullptr, "wellspring native gemmPlanes: transA and accumulate must be booleans");
    return nullptr;
  }
  const int64_t planes = v[0], m = v[4], k = v[5], n = v[6];
  const int64_t heapBytes = static_cast<int64_t>(byteLength);
  // Bound the shape so the byte arithmetic below cannot overflow (the heap is at most 4 GiB).
  const int64_t limit = int64_t{1} << 32;
  if (planes > limit || m > limit || k > limit || n > limit || m * k > limit || k * n > limit || m * n > limit) {
    return planes_error(env, "shape too large for a 4 GiB heap");
  }
  const char *tableNames[] = {"aTable", "bTable", "cTable"};
  // The offsets, copied out of the heap first: C planes may not rewrite them while the products run.
  std::vector<int64_t> offsets[3];
  for (int t = 0; t < 3; t++) {
    const int64_t at = v[t + 1];
    if (at % 4 != 0) {
      return planes_error(env, std::string(tableNames[t]) + " (" + std::to_string(at) + ") is not a multiple of 4 bytes");
    }
    if (at + 4 * planes > heapBytes) {
      return planes_error(env, std::string(tableNames[t]) + " spans bytes [" + std::to_string(at) + ", " +
                                   std::to_string(at + 4 * planes) + ") but the heap holds " + std::to_string(heapBytes) +
                                   " bytes");
    }
    offsets[t].resize(static_cast<size_t>(planes));
    for (int64_t p = 0; p < planes; p++) {
      uint32_t u;  // heap offsets are stored as int32 but address up to 4 GiB
      std::memcpy(&u, static_cast<const char *>(base) + at + 4 * p, 4);
      offsets[t][static_cast<size_t>(p)] = u;
    }
  }
  const char *operand[] = {"a", "b", "c"};
  const int64_t sizes[] = {m * k, k * n, m * n};
  for (int64_t p = 0; p < planes; p++) {
    const std::string where = "plane " + std::to_string(p) + ": ";
    Range ranges[3];
    for (int t = 0; t < 3; t++) {
      const int64_t off = offsets[t][static_cast<size_t>(p)];
      if (off % 4 != 0) {
        return planes_error(env, where + "offset of " + operand[t] + " (" + std::to_string(off) + ") is not a multiple of 4 bytes");
      }
      ranges[t] = span(operand[t], off, 1, 0, sizes[t]);
      if (ranges[t].end > heapBytes) {
        return planes_error(env, where + operand[t] + " spans bytes [" + std::to_string(ranges[t].begin) + ", " +
                                     std::to_string(ranges[t].end) + ") but the heap holds " + std::to_string(heapBytes) +
                                     " bytes");
      }
    }
    for (int t = 0; t < 2; t++) {
      const Range &r = ranges[t], &out = ranges[2];
      if (r.begin < r.end && out.begin < out.end && r.begin < out.end && out.begin < r.end) {
        return planes_error(env, where + "the output c overlaps input " + operand[t]);
      }
    }
  }
  char *heap = static_cast<char *>(base);
  const Isa isa = instance(env)->isa;
  try {
    for (int64_t p = 0; p < planes; p++) {
      const size_t q = static_cast<size_t>(p);
      wellspring::gemm_plane(isa, reinterpret_cast<const float *>(heap + offsets[0][q]), reinterpret_cast<const float *>(heap + offsets[1][q]),
                             reinterpret_cast<float *>(heap + offsets[2][q]), m, k, n, transA, accumulate);
    }
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, (std::string("wellspring native gemmPlanes: ") + e.what()).c_str());
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------- Winograd transforms

/** A refused transform call: thrown by the checks below, turned into a JS error at the export's boundary. */
struct Refused {
  bool typeError;
  std::string message;
};

/** The heap and the integer arguments of one transform call, and the checks on them. */
class TransformCall {
 public:
  TransformCall(napi_env env, napi_callback_info info, std::vector<const char *> names) : names_(std::move(names)) {
    const size_t want = names_.size() + 2;
    size_t argc = want;
    std::vector<napi_value> argv(want);
    if (napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr) != napi_ok || argc != want) {
      std::string list = "heap, tile";
      for (const char *n : names_) list += std::string(", ") + n;
      throw Refused{true, "expected " + std::to_string(want) + " arguments (" + list + ")"};
    }
    bool isBuffer = false;
    if (napi_is_arraybuffer(env, argv[0], &isBuffer) != napi_ok || !isBuffer) {
      throw Refused{true, "heap must be an ArrayBuffer (the wasm memory's buffer)"};
    }
    void *base = nullptr;
    size_t byteLength = 0;
    if (napi_get_arraybuffer_info(env, argv[0], &base, &byteLength) != napi_ok) throw Refused{true, "heap is not readable"};
    heap_ = static_cast<char *>(base);
    bytes_ = static_cast<int64_t>(byteLength);
    tile_ = integer(env, argv[1], "tile", false);
    if (tile_ != 2 && tile_ != 4) throw Refused{false, "tile must be 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)), got " + std::to_string(tile_)};
    for (size_t i = 0; i < names_.size(); i++) {
      values_.push_back(integer(env, argv[i + 2], names_[i], std::string(names_[i]) == "bias"));
    }
  }

  int64_t tile() const { return tile_; }
  int64_t planes() const { return tile_ == 2 ? 16 : 36; }
  /** The named integer argument. */
  int64_t operator[](const char *name) const {
    for (size_t i = 0; i < names_.size(); i++) if (std::string(names_[i]) == name) return values_[i];
    throw Refused{true, std::string("internal: no argument ") + name};
  }

  /** A float operand at `offset` spanning `floats`: aligned and inside the heap. */
  Range operand(const char *name, int64_t offset, int64_t floats) const {
    if (offset % 4 != 0) throw Refused{false, std::string("offset of ") + name + " (" + std::to_string(offset) + ") is not a multiple of 4 bytes"};
    return inside(name, "", span(name, offset, 1, 0, floats));
  }

  /** Reads a plane table at `at` whose planes hold `floats` each; returns the planes' pointers and ranges. */
  std::vector<float *> table(const char *name, int64_t at, int64_t floats, std::vector<Range> *ranges) const {
    if (at % 4 != 0) throw Refused{false, std::string(name) + " (" + std::to_string(at) + ") is not a multiple of 4 bytes"};
    inside(name, "", Range{name, at, at + 4 * planes()});
    std::vector<float *> out;
    for (int64_t p = 0; p < planes(); p++) {
      uint32_t u;  // heap offsets are stored as int32 but address up to 4 GiB
      std::memcpy(&u, heap_ + at + 4 * p, 4);
      const int64_t off = u;
      const std::string where = std::string(name) + " plane " + std::to_string(p) + ": ";
      if (off % 4 != 0) throw Refused{false, where + "offset " + std::to_string(off) + " is not a multiple of 4 bytes"};
      ranges->push_back(inside(name, where, span(name, off, 1, 0, floats)));
      out.push_back(reinterpret_cast<float *>(heap_ + off));
    }
    return out;
  }

  /** Throws when the output range overlaps any of the inputs. */
  static void apart(const Range &out, const std::vector<Range> &inputs, const std::string &where = "") {
    for (const Range &r : inputs) {
      if (r.begin < r.end && out.begin < out.end && r.begin < out.end && out.begin < r.end) {
        throw Refused{false, where + "the output " + out.name + " overlaps the input " + r.name};
      }
    }
  }

  /** Throws unless `value` is a multiple of 4 (a vectorised channel count). */
  static void multipleOf4(const char *name, int64_t value) {
    if (value % 4 != 0) throw Refused{false, std::string(name) + " must be a multiple of 4, got " + std::to_string(value)};
  }

  /** Throws unless an index bound (in floats) fits the kernels' int32 arithmetic. */
  static void fitsInt32(double bound) {
    if (bound >= 2147483647.0) throw Refused{false, "shape too large for the kernels' 32-bit indexing"};
  }

  float *pointer(int64_t offset) const { return reinterpret_cast<float *>(heap_ + offset); }

 private:
  int64_t integer(napi_env env, napi_value v, const char *name, bool allowMinusOne) const {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) throw Refused{true, std::string(name) + " must be a number"};
    // At most 2^31 - 1: every argument is an int of the kernels.
    if (!std::isfinite(d) || d != std::floor(d) || d < (allowMinusOne ? -1 : 0) || d > 2147483647.0) {
      throw Refused{false, std::string(name) + " must be a non-negative 32-bit integer" + (allowMinusOne ? " or -1" : "") +
                               ", got " + std::to_string(d)};
    }
    return static_cast<int64_t>(d);
  }
  Range inside(const char *name, const std::string &where, Range r) const {
    if (r.end > bytes_) {
      throw Refused{false, where + name + " spans bytes [" + std::to_string(r.begin) + ", " + std::to_string(r.end) +
                               ") but the heap holds " + std::to_string(bytes_) + " bytes"};
    }
    return r;
  }

  std::vector<const char *> names_;
  std::vector<int64_t> values_;
  char *heap_ = nullptr;
  int64_t bytes_ = 0;
  int64_t tile_ = 0;
};

/** Runs one transform export: parses and checks through `body`, turning a refusal into a JS error. */
template <typename Body>
napi_value transform(napi_env env, const char *fn, Body body) {
  try {
    body();
  } catch (const Refused &r) {
    const std::string message = std::string("wellspring native ") + fn + ": " + r.message;
    if (r.typeError) napi_throw_type_error(env, nullptr, message.c_str());
    else napi_throw_range_error(env, nullptr, message.c_str());
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + e.what()).c_str());
  }
  return nullptr;
}

/** Throws unless tilesH / tilesW are the output's tile counts (the output forms write / read every tile's corner). */
void tilesCover(const TransformCall &c) {
  const int64_t t = c.tile();
  const int64_t wantH = (c["outH"] + t - 1) / t, wantW = (c["outW"] + t - 1) / t;
  if (c["tilesH"] != wantH || c["tilesW"] != wantW) {
    throw Refused{false, "tilesH x tilesW = " + std::to_string(c["tilesH"]) + " x " + std::to_string(c["tilesW"]) +
                             " but an output of " + std::to_string(c["outH"]) + " x " + std::to_string(c["outW"]) +
                             " has " + std::to_string(wantH) + " x " + std::to_string(wantW) + " tiles"};
  }
}

napi_value WinogradInput(napi_env env, napi_callback_info info) {
  const char *fn = "winogradInput";
  return transform(env, fn, [&] {
    const TransformCall c(env, info, {"x", "batch", "height", "width", "channels", "padTop", "padLeft", "tilesH", "tilesW", "table"});
    const int64_t C = c["channels"], t = c.tile();
    TransformCall::multipleOf4("channels", C);
    // The largest index the kernel forms (a row pointer of the last tile, padding included) must fit an int.
    TransformCall::fitsInt32((static_cast<double>(c["batch"]) * c["height"] + t * c["tilesH"] + c["padTop"] + 6) * c["width"] * C +
                             (static_cast<double>(t) * c["tilesW"] + c["padLeft"] + 6) * C);
    const Range x = c.operand("x", c["x"], c["batch"] * c["height"] * c["width"] * C);
    std::vector<Range> planes;
    const std::vector<float *> table = c.table("table", c["table"], c["batch"] * c["tilesH"] * c["tilesW"] * C, &planes);
    for (size_t p = 0; p < planes.size(); p++) TransformCall::apart(planes[p], {x}, "table plane " + std::to_string(p) + ": ");
    const int a[] = {int(c["batch"]), int(c["height"]), int(c["width"]), int(C), int(c["padTop"]), int(c["padLeft"]), int(c["tilesH"]), int(c["tilesW"])};
    (t == 2 ? wellspring::winograd::winograd_input : wellspring::winograd::winograd4_input)(
        instance(env)->isa, c.pointer(c["x"]), a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], table.data());
  });
}

napi_value WinogradFilter(napi_env env, napi_callback_info info) {
  const char *fn = "winogradFilter";
  return transform(env, fn, [&] {
    const TransformCall c(env, info, {"g", "inChannels", "outChannels", "table"});
    const int64_t ci = c["inChannels"], co = c["outChannels"];
    TransformCall::multipleOf4("outChannels", co);
    TransformCall::fitsInt32(9.0 * ci * co);
    const Range g = c.operand("g", c["g"], 9 * ci * co);
    std::vector<Range> planes;
    const std::vector<float *> table = c.table("table", c["table"], ci * co, &planes);
    for (size_t p = 0; p < planes.size(); p++) TransformCall::apart(planes[p], {g}, "table plane " + std::to_string(p) + ": ");
    (c.tile() == 2 ? wellspring::winograd::winograd_filter : wellspring::winograd::winograd4_filter)(
        instance(env)->isa, c.pointer(c["g"]), int(ci), int(co), table.data());
  });
}

napi_value WinogradOutput(napi_env env, napi_callback_info info) {
  const char *fn = "winogradOutput";
  return transform(env, fn, [&] {
    const TransformCall c(env, info, {"table", "bias", "batch", "outH", "outW", "channels", "tilesH", "tilesW", "y"});
    const int64_t C = c["channels"];
    TransformCall::multipleOf4("channels", C);
    tilesCover(c);
    TransformCall::fitsInt32(static_cast<double>(c["batch"]) * c["tilesH"] * c["tilesW"] * c.tile() * c.tile() * C);
    std::vector<Range> inputs;
    const std::vector<float *> table = c.table("table", c["table"], c["batch"] * c["tilesH"] * c["tilesW"] * C, &inputs);
    const bool hasBias = c["bias"] >= 0;
    if (hasBias) inputs.push_back(c.operand("bias", c["bias"], C));
    const Range y = c.operand("y", c["y"], c["batch"] * c["outH"] * c["outW"] * C);
    TransformCall::apart(y, inputs);
    const int a[] = {int(c["batch"]), int(c["outH"]), int(c["outW"]), int(C), int(c["tilesH"]), int(c["tilesW"])};
    (c.tile() == 2 ? wellspring::winograd::winograd_output : wellspring::winograd::winograd4_output)(
        instance(env)->isa, table.data(), hasBias ? c.pointer(c["bias"]) : nullptr, a[0], a[1], a[2], a[3], a[4], a[5], c.pointer(c["y"]));
  });
}

napi_value WinogradGradOutput(napi_env env, napi_callback_info info) {
  const char *fn = "winogradGradOutput";
  return transform(env, fn, [&] {
    const TransformCall c(env, info, {"dy", "batch", "outH", "outW", "channels", "tilesH", "tilesW", "table"});
    const int64_t C = c["channels"];
    TransformCall::multipleOf4("channels", C);
    tilesCover(c);
    TransformCall::fitsInt32(static_cast<double>(c["batch"]) * c["tilesH"] * c["tilesW"] * c.tile() * c.tile() * C);
    const Range dy = c.operand("dy", c["dy"], c["batch"] * c["outH"] * c["outW"] * C);
    std::vector<Range> planes;
    const std::vector<float *> table = c.table("table", c["table"], c["batch"] * c["tilesH"] * c["tilesW"] * C, &planes);
    for (size_t p = 0; p < planes.size(); p++) TransformCall::apart(planes[p], {dy}, "table plane " + std::to_string(p) + ": ");
    const int a[] = {int(c["batch"]), int(c["outH"]), int(c["outW"]), int(C), int(c["tilesH"]), int(c["tilesW"])};
    (c.tile() == 2 ? wellspring::winograd::winograd_grad_output : wellspring::winograd::winograd4_grad_output)(
        instance(env)->isa, c.pointer(c["dy"]), a[0], a[1], a[2], a[3], a[4], a[5], table.data());
  });
}

napi_value WinogradGradFilter(napi_env env, napi_callback_info info) {
  const char *fn = "winogradGradFilter";
  return transform(env, fn, [&] {
    const TransformCall c(env, info, {"table", "inChannels", "outChannels", "dg"});
    const int64_t ci = c["inChannels"], co = c["outChannels"];
    TransformCall::multipleOf4("outChannels", co);
    TransformCall::fitsInt32(9.0 * ci * co);
    std::vector<Range> planes;
    const std::vector<float *> table = c.table("table", c["table"], ci * co, &planes);
    const Range dg = c.operand("dg", c["dg"], 9 * ci * co);
    TransformCall::apart(dg, planes);
    (c.tile() == 2 ? wellspring::winograd::winograd_grad_filter : wellspring::winograd::winograd4_grad_filter)(
        instance(env)->isa, table.data(), int(ci), int(co), c.pointer(c["dg"]));
  });
}

/**
 * The sizes of a whole-conv call (winogradConv, winogradConvFilterGradient), checked: channel counts multiples of
 * 4, every index the transforms form inside int32.
 */
wellspring::winograd::ConvShape convShape(const TransformCall &c) {
  const int64_t ci = c["inChannels"], co = c["outChannels"], t = c.tile();
  TransformCall::multipleOf4("inChannels", ci);
  TransformCall::multipleOf4("outChannels", co);
  const int64_t tilesH = (c["outH"] + t - 1) / t, tilesW = (c["outW"] + t - 1) / t;
  TransformCall::fitsInt32((static_cast<double>(c["batch"]) * c["height"] + t * tilesH + c["padTop"] + 6) * c["width"] * ci +
                           (static_cast<double>(t) * tilesW + c["padLeft"] + 6) * ci);
  TransformCall::fitsInt32(static_cast<double>(c["batch"]) * (tilesH * t) * (tilesW * t) * co);
  TransformCall::fitsInt32(9.0 * ci * co);
  return {int(c["batch"]), int(c["height"]), int(c["width"]), int(ci), int(co), int(c["outH"]), int(c["outW"]), int(c["padTop"]), int(c["padLeft"])};
}

napi_value WinogradConv(napi_env env, napi_callback_info info) {
  return transform(env, "winogradConv", [&] {
    const TransformCall c(env, info, {"x", "filter", "flip", "bias", "y", "batch", "height", "width", "inChannels", "outChannels", "outH", "outW", "padTop", "padLeft"});
    if (c["flip"] > 1) throw Refused{false, "flip must be 0 or 1, got " + std::to_string(c["flip"])};
    const wellspring::winograd::ConvShape s = convShape(c);
    std::vector<Range> inputs = {c.operand("x", c["x"], int64_t(s.batch) * s.height * s.width * s.inChannels),
                                 c.operand("filter", c["filter"], 9 * int64_t(s.inChannels) * s.outChannels)};
    const bool hasBias = c["bias"] >= 0;
    if (hasBias) inputs.push_back(c.operand("bias", c["bias"], s.outChannels));
    TransformCall::apart(c.operand("y", c["y"], int64_t(s.batch) * s.outH * s.outW * s.outChannels), inputs);
    wellspring::winograd::conv_forward(instance(env)->isa, int(c.tile()), s, c.pointer(c["x"]), c.pointer(c["filter"]), c["flip"] == 1,
                                       hasBias ? c.pointer(c["bias"]) : nullptr, c.pointer(c["y"]));
  });
}

napi_value WinogradConvFilterGradient(napi_env env, napi_callback_info info) {
  return transform(env, "winogradConvFilterGradient", [&] {
    const TransformCall c(env, info, {"x", "dy", "dw", "batch", "height", "width", "inChannels", "outChannels", "outH", "outW", "padTop", "padLeft"});
    const wellspring::winograd::ConvShape s = convShape(c);
    const std::vector<Range> inputs = {c.operand("x", c["x"], int64_t(s.batch) * s.height * s.width * s.inChannels),
                                       c.operand("dy", c["dy"], int64_t(s.batch) * s.outH * s.outW * s.outChannels)};
    TransformCall::apart(c.operand("dw", c["dw"], 9 * int64_t(s.inChannels) * s.outChannels), inputs);
    wellspring::winograd::conv_filter_gradient(instance(env)->isa, int(c.tile()), s, c.pointer(c["x"]), c.pointer(c["dy"]), c.pointer(c["dw"]));
  });
}

/** True when the float ranges [a, a + na) and [b, b + nb) do not overlap. */
bool disjoint(const float *a, int64_t na, const float *b, int64_t nb) { return a + na <= b || b + nb <= a; }

/** A Float32Array argument's data and length (null allowed with `nullable`); throws a TypeError and returns false otherwise. */
bool float32_arg(napi_env env, napi_value v, const char *fn, const char *name, bool nullable, float **data, int64_t *length) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (nullable && type == napi_null) {
    *data = nullptr;
    *length = -1;
    return true;
  }
  bool isTyped = false;
  napi_typedarray_type kind;
  size_t len = 0;
  void *ptr = nullptr;
  if (napi_is_typedarray(env, v, &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, v, &kind, &len, &ptr, nullptr, nullptr) != napi_ok || kind != napi_float32_array) {
    napi_throw_type_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + name + " must be a Float32Array" + (nullable ? " or null" : "")).c_str());
    return false;
  }
  *data = static_cast<float *>(ptr);
  *length = static_cast<int64_t>(len);
  return true;
}

/** Reads `count` Float32Array arguments of one length (null allowed where `nullable[i]`). */
bool float32_args(napi_env env, const napi_value *argv, const char *fn, std::initializer_list<const char *> names,
                  const bool *nullable, float **data, int64_t *n) {
  size_t i = 0;
  *n = -1;
  for (const char *name : names) {
    int64_t len;
    if (!float32_arg(env, argv[i], fn, name, nullable[i], &data[i], &len)) return false;
    if (len >= 0) {
      if (*n >= 0 && len != *n) {
        napi_throw_range_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + name + " has " + std::to_string(len) +
                                              " elements, expected " + std::to_string(*n) + " (the length of the first)").c_str());
        return false;
      }
      *n = len;
    }
    i++;
  }
  return true;
}

bool number_arg(napi_env env, napi_value v, const char *fn, const char *name, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + name + " must be a number").c_str());
    return false;
  }
  return true;
}

napi_value Adamw(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 6) {
    napi_throw_type_error(env, nullptr, "wellspring native adamw: expected 6 arguments (w, m, v, g, ema, constants)");
    return nullptr;
  }
  float *p[5];
  int64_t n;
  const bool nullable[] = {false, false, false, false, true};
  if (!float32_args(env, argv, "adamw", {"w", "m", "v", "g", "ema"}, nullable, p, &n)) return nullptr;
  bool isTyped = false;
  napi_typedarray_type kind;
  size_t len = 0;
  void *ptr = nullptr;
  if (napi_is_typedarray(env, argv[5], &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, argv[5], &kind, &len, &ptr, nullptr, nullptr) != napi_ok || kind != napi_float64_array || len != 14) {
    napi_throw_type_error(env, nullptr, "wellspring native adamw: constants must be a Float64Array of 14 numbers");
    return nullptr;
  }
  const double *c = static_cast<const double *>(ptr);
  const wellspring::optim::AdamwConstants k{float(c[0]), float(c[1]), float(c[2]), float(c[3]), float(c[4]), float(c[5]), float(c[6]),
                                            float(c[7]), float(c[8]), float(c[9]), c[10] != 0, c[11] != 0, float(c[12]), float(c[13])};
  wellspring::optim::adamw(p[0], p[1], p[2], p[3], p[4], n, k);
  return nullptr;
}

napi_value EmaUpdate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 4) {
    napi_throw_type_error(env, nullptr, "wellspring native emaUpdate: expected 4 arguments (ema, w, decay, oneMinusDecay)");
    return nullptr;
  }
  float *p[2];
  int64_t n;
  const bool nullable[] = {false, false};
  double decay, rest;
  if (!float32_args(env, argv, "emaUpdate", {"ema", "w"}, nullable, p, &n) || !number_arg(env, argv[2], "emaUpdate", "decay", &decay) ||
      !number_arg(env, argv[3], "emaUpdate", "oneMinusDecay", &rest)) {
    return nullptr;
  }
  wellspring::optim::ema_update(p[0], p[1], n, float(decay), float(rest));
  return nullptr;
}

napi_value Accumulate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 4) {
    napi_throw_type_error(env, nullptr, "wellspring native accumulate: expected 4 arguments (out, src, weight, first)");
    return nullptr;
  }
  float *p[2];
  int64_t n;
  const bool nullable[] = {false, false};
  double weight;
  bool first = false;
  if (!float32_args(env, argv, "accumulate", {"out", "src"}, nullable, p, &n) || !number_arg(env, argv[2], "accumulate", "weight", &weight)) {
    return nullptr;
  }
  if (napi_get_value_bool(env, argv[3], &first) != napi_ok) {
    napi_throw_type_error(env, nullptr, "wellspring native accumulate: first must be a boolean");
    return nullptr;
  }
  // The same array is fine (element by element); a partial overlap is not.
  if (p[0] != p[1] && !disjoint(p[0], n, p[1], n)) {
    napi_throw_range_error(env, nullptr, "wellspring native accumulate: out and src overlap");
    return nullptr;
  }
  wellspring::optim::accumulate(p[0], p[1], n, weight, first);
  return nullptr;
}

napi_value FlipFilter(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 6) {
    napi_throw_type_error(env, nullptr, "wellspring native flipFilter: expected 6 arguments (src, dst, kh, kw, inChannels, outChannels)");
    return nullptr;
  }
  float *p[2];
  int64_t n;
  const bool nullable[] = {false, false};
  if (!float32_args(env, argv, "flipFilter", {"src", "dst"}, nullable, p, &n)) return nullptr;
  int64_t dims[4];
  const char *names[] = {"kh", "kw", "inChannels", "outChannels"};
  for (int i = 0; i < 4; i++) {
    if (!integer_arg(env, argv[i + 2], names[i], false, &dims[i], "flipFilter")) return nullptr;
  }
  if (static_cast<double>(dims[0]) * dims[1] * dims[2] * dims[3] != static_cast<double>(n)) {
    napi_throw_range_error(env, nullptr, ("wellspring native flipFilter: src and dst hold " + std::to_string(n) + " floats, not kh * kw * inChannels * outChannels = " +
                                          std::to_string(dims[0] * dims[1] * dims[2] * dims[3])).c_str());
    return nullptr;
  }
  if (!disjoint(p[0], n, p[1], n)) {
    napi_throw_range_error(env, nullptr, "wellspring native flipFilter: src and dst overlap");
    return nullptr;
  }
  wellspring::flip_filter(p[0], p[1], dims[0], dims[1], dims[2], dims[3]);
  return nullptr;
}

napi_value Permute(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 3) {
    napi_throw_type_error(env, nullptr, "wellspring native permute: expected 3 arguments (src, dst, shapeAndPerm)");
    return nullptr;
  }
  float *p[2];
  int64_t n;
  const bool nullable[] = {false, false};
  if (!float32_args(env, argv, "permute", {"src", "dst"}, nullable, p, &n)) return nullptr;
  bool isTyped = false;
  napi_typedarray_type kind;
  size_t len = 0;
  void *ptr = nullptr;
  if (napi_is_typedarray(env, argv[2], &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, argv[2], &kind, &len, &ptr, nullptr, nullptr) != napi_ok || kind != napi_float64_array ||
      len % 2 != 0 || len == 0 || len > 16) {
    napi_throw_type_error(env, nullptr, "wellspring native permute: shapeAndPerm must be a Float64Array of the shape then the permutation (rank 1-8)");
    return nullptr;
  }
  const int rank = static_cast<int>(len / 2);
  const double *v = static_cast<const double *>(ptr);
  int64_t shape[8], perm[8];
  bool seen[8] = {};
  double size = 1;
  for (int d = 0; d < rank; d++) {
    const double s = v[d], q = v[rank + d];
    if (!(s >= 0 && s == std::floor(s)) || !(q >= 0 && q < rank && q == std::floor(q)) || seen[static_cast<int>(q)]) {
      napi_throw_range_error(env, nullptr, "wellspring native permute: the shape must be non-negative integers and the permutation one of 0..rank-1");
      return nullptr;
    }
    shape[d] = static_cast<int64_t>(s);
    perm[d] = static_cast<int64_t>(q);
    seen[perm[d]] = true;
    size *= s;
  }
  if (size != static_cast<double>(n)) {
    napi_throw_range_error(env, nullptr, ("wellspring native permute: src and dst hold " + std::to_string(n) + " elements, the shape " + std::to_string(size)).c_str());
    return nullptr;
  }
  if (!disjoint(p[0], n, p[1], n)) {
    napi_throw_range_error(env, nullptr, "wellspring native permute: src and dst overlap");
    return nullptr;
  }
  wellspring::permute(p[0], p[1], rank, shape, perm);
  return nullptr;
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *x;
  int64_t n;
  if (argc != 1) {
    napi_throw_type_error(env, nullptr, "wellspring native sumSquares: expected 1 argument (x)");
    return nullptr;
  }
  if (!float32_arg(env, argv[0], "sumSquares", "x", false, &x, &n)) return nullptr;
  napi_value out;
  CHECK_NAPI(env, napi_create_double(env, double(wellspring::optim::sum_squares(x, n)), &out));
  return out;
}

napi_value ColumnSums(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 2) {
    napi_throw_type_error(env, nullptr, "wellspring native columnSums: expected 2 arguments (x, out)");
    return nullptr;
  }
  float *x, *out;
  int64_t n, cols;
  if (!float32_arg(env, argv[0], "columnSums", "x", false, &x, &n) || !float32_arg(env, argv[1], "columnSums", "out", false, &out, &cols)) {
    return nullptr;
  }
  if (cols == 0 ? n != 0 : n % cols != 0) {
    napi_throw_range_error(env, nullptr, ("wellspring native columnSums: x has " + std::to_string(n) + " elements, not a multiple of out's " +
                                          std::to_string(cols) + " columns").c_str());
    return nullptr;
  }
  if (!disjoint(x, n, out, cols)) {
    napi_throw_range_error(env, nullptr, "wellspring native columnSums: x and out overlap");
    return nullptr;
  }
  if (cols > 0) wellspring::reduce::column_sums(instance(env)->isa, x, n / cols, cols, out);
  return nullptr;
}

/** Reads the Float32Array arguments named in `names` (none nullable), each with its length. */
bool float32_list(napi_env env, const napi_value *argv, const char *fn, std::initializer_list<const char *> names, float **data, int64_t *lengths) {
  size_t i = 0;
  for (const char *name : names) {
    if (!float32_arg(env, argv[i], fn, name, false, &data[i], &lengths[i])) return false;
    i++;
  }
  return true;
}

/** Throws a RangeError `wellspring native <fn>: <message>` and returns false when `ok` is false. */
bool require(napi_env env, bool ok, const char *fn, const std::string &message) {
  if (!ok) napi_throw_range_error(env, nullptr, (std::string("wellspring native ") + fn + ": " + message).c_str());
  return ok;
}


/** The shared checks of rotary and rotaryGrad: the pair width, the angle and element counts. */
bool rotary_geometry(napi_env env, const char *fn, napi_value halfArg, int64_t n, int64_t angles, int64_t *half, int64_t *batch) {
  double h;
  if (!number_arg(env, halfArg, fn, "half", &h)) return false;
  if (!require(env, h >= 1 && h == std::floor(h) && h < 1e15, fn, "half must be a positive integer")) return false;
  *half = int64_t(h);
  if (!require(env, angles % *half == 0, fn, "cos has " + std::to_string(angles) + " elements, not a multiple of half (" + std::to_string(*half) + ")")) return false;
  if (!require(env, angles > 0 && n % (2 * angles) == 0, fn, "x has " + std::to_string(n) + " elements, not a multiple of 2 * cos's " + std::to_string(angles))) return false;
  *batch = n / (2 * angles);
  return true;
}

napi_value Rotary(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 5) {
    napi_throw_type_error(env, nullptr, "wellspring native rotary: expected 5 arguments (x, cos, sin, half, y)");
    return nullptr;
  }
  float *p[3], *y;
  int64_t len[3], ny, half, batch;
  if (!float32_list(env, argv, "rotary", {"x", "cos", "sin"}, p, len) || !float32_arg(env, argv[4], "rotary", "y", false, &y, &ny)) return nullptr;
  if (!require(env, len[2] == len[1], "rotary", "sin has " + std::to_string(len[2]) + " elements, cos " + std::to_string(len[1])) ||
      !require(env, ny == len[0], "rotary", "y has " + std::to_string(ny) + " elements, x " + std::to_string(len[0])) ||
      !rotary_geometry(env, "rotary", argv[3], len[0], len[1], &half, &batch) ||
      !require(env, disjoint(y, ny, p[0], len[0]) && disjoint(y, ny, p[1], len[1]) && disjoint(y, ny, p[2], len[2]), "rotary", "y overlaps an input")) {
    return nullptr;
  }
  wellspring::rotary::forward(instance(env)->isa, p[0], p[1], p[2], batch, len[1], half, y);
  return nullptr;
}

napi_value RotaryGrad(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 8) {
    napi_throw_type_error(env, nullptr, "wellspring native rotaryGrad: expected 8 arguments (dy, x, cos, sin, half, dx, dcos, dsin)");
    return nullptr;
  }
  float *in[4], *out[3];
  int64_t lin[4], lout[3], half, batch;
  if (!float32_list(env, argv, "rotaryGrad", {"dy", "x", "cos", "sin"}, in, lin) ||
      !float32_list(env, argv + 5, "rotaryGrad", {"dx", "dcos", "dsin"}, out, lout)) {
    return nullptr;
  }
  const char *fn = "rotaryGrad";
  if (!require(env, lin[0] == lin[1] && lout[0] == lin[1], fn, "dy, x and dx must have one length (" + std::to_string(lin[0]) + ", " + std::to_string(lin[1]) + ", " + std::to_string(lout[0]) + ")") ||
      !require(env, lin[3] == lin[2] && lout[1] == lin[2] && lout[2] == lin[2], fn, "cos, sin, dcos and dsin must have one length") ||
      !rotary_geometry(env, fn, argv[4], lin[1], lin[2], &half, &batch)) {
    return nullptr;
  }
  for (int o = 0; o < 3; o++) {
    for (int i = 0; i < 4; i++) {
      if (!require(env, disjoint(out[o], lout[o], in[i], lin[i]), fn, "an output overlaps an input")) return nullptr;
    }
    for (int q = o + 1; q < 3; q++) {
      if (!require(env, disjoint(out[o], lout[o], out[q], lout[q]), fn, "two outputs overlap")) return nullptr;
    }
  }
  wellspring::rotary::backward(instance(env)->isa, in[0], in[1], in[2], in[3], batch, lin[2], half, out[0], out[1], out[2]);
  return nullptr;
}

napi_value string_value(napi_env env, const char *s) {
  napi_value out;
  CHECK_NAPI(env, napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out));
  return out;
}

bool isa_arg(napi_env env, napi_value v, Isa *out) {
  char buf[32];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok || !parse_isa(std::string(buf, len), out)) {
    napi_throw_type_error(env, nullptr, "wellspring native: the ISA must be one of 'avx512', 'avx2', 'generic'");
    return false;
  }
  if (!wellspring::isa_supported(*out)) {
    napi_throw_error(env, nullptr,
                     (std::string("wellspring native: this CPU does not support ") + wellspring::isa_name(*out)).c_str());
    return false;
  }
  return true;
}

napi_value GetIsa(napi_env env, napi_callback_info) { return string_value(env, wellspring::isa_name(instance(env)->isa)); }

napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Isa isa;
  if (argc < 1 || !isa_arg(env, argv[0], &isa)) return nullptr;
  instance(env)->isa = isa;
  return string_value(env, wellspring::isa_name(isa));
}

napi_value Supported(napi_env env, napi_callback_info) {
  napi_value arr;
  CHECK_NAPI(env, napi_create_array(env, &arr));
  uint32_t i = 0;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::generic}) {
    if (wellspring::isa_supported(isa)) CHECK_NAPI(env, napi_set_element(env, arr, i++, string_value(env, wellspring::isa_name(isa))));
  }
  return arr;
}

napi_value PeakGflops(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Isa isa;
  double seconds = 0.2;
  if (argc < 1 || !isa_arg(env, argv[0], &isa)) return nullptr;
  if (argc > 1 && napi_get_value_double(env, argv[1], &seconds) != napi_ok) {
    napi_throw_type_error(env, nullptr, "wellspring native peakGflops: seconds must be a number");
    return nullptr;
  }
  napi_value out;
  CHECK_NAPI(env, napi_create_double(env, wellspring::peak_gflops(isa, std::min(std::max(seconds, 0.01), 10.0)), &out));
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  Instance *data = new Instance{wellspring::best_isa()};
  if (napi_set_instance_data(
          env, data, [](napi_env, void *d, void *) { delete static_cast<Instance *>(d); }, nullptr) != napi_ok) {
    delete data;
    napi_throw_error(env, nullptr, "wellspring native: could not set the instance data");
    return nullptr;
  }
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemmPlanes", nullptr, GemmPlanes, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradInput", nullptr, WinogradInput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradFilter", nullptr, WinogradFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradOutput", nullptr, WinogradOutput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradGradOutput", nullptr, WinogradGradOutput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradGradFilter", nullptr, WinogradGradFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradConv", nullptr, WinogradConv, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"winogradConvFilterGradient", nullptr, WinogradConvFilterGradient, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"flipFilter", nullptr, FlipFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"permute", nullptr, Permute, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamw", nullptr, Adamw, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"emaUpdate", nullptr, EmaUpdate, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"accumulate", nullptr, Accumulate, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"columnSums", nullptr, ColumnSums, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rotary", nullptr, Rotary, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rotaryGrad", nullptr, RotaryGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isa", nullptr, GetIsa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setIsa", nullptr, SetIsa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"supported", nullptr, Supported, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"peakGflops", nullptr, PeakGflops, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return nullptr;
  return exports;
}
