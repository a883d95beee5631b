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
#include <string>
#include <vector>

#include "gemm.h"

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
      wellspring::GemmArgs g;
      g.a = reinterpret_cast<const float *>(heap + offsets[0][q]);
      g.b = reinterpret_cast<const float *>(heap + offsets[1][q]);
      g.c = reinterpret_cast<float *>(heap + offsets[2][q]);
      g.bias = nullptr;
      g.batch = 1;
      g.strideA = g.strideB = 0;
      g.strideC = m * n;
      g.m = m;
      g.k = k;
      g.n = n;
      g.transA = transA;
      g.transB = false;
      g.accumulate = accumulate;
      wellspring::gemm(isa, g);
    }
  } catch (const std::exception &e) {
    napi_throw_error(env, nullptr, (std::string("wellspring native gemmPlanes: ") + e.what()).c_str());
  }
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
      {"isa", nullptr, GetIsa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setIsa", nullptr, SetIsa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"supported", nullptr, Supported, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"peakGflops", nullptr, PeakGflops, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return nullptr;
  return exports;
}
