// One-pass CPU forward of the conservation operator, for float32 and bfloat16 rows.
//
// For each contiguous row x of n elements (rows in parallel, each row by one thread):
//
//   ss    = sum of float32(x_i)^2 in the lane-fold order: element i goes to lane
//           i mod 16, the 16 lanes are folded left to right, the n mod 16 tail
//           elements are added one by one; every square and every addition is
//           rounded to float32 (built with -ffp-contract=off: no fused
//           multiply-add).  This is conserve_verified.proof.finite.lane_fold with
//           16 lanes and unfused tail steps, whose heights the tolerance table's
//           one-pass rows cover (ONE_PASS_HEIGHTS, lanes 8 and 16).
//   norm  = sqrt(ss), correctly rounded;
//   scale = float32(r) / norm, one division;
//   y_i   = x_i * scale rounded to float32 (bfloat16: then rounded to nearest even
//           bfloat16 -- the value torch's .to(torch.bfloat16) gives).
//
// x is read once from memory for the sum and once more (from cache) for y.  Rows
// that are not finite, zero or tiny give meaningless y: the caller checks norm and
// recomputes such inputs on its reference path.
//
// bfloat16 rows take an AVX-512 variant where the CPU has AVX512-BF16 (chosen at run
// time; the build flags stay portable): the same operations in the same order, one
// 16-lane vector per step, the sums of 4 rows at once (independent chains, so each
// row's sum keeps its order), and the rounding to bfloat16 by VCVTNEPS2BF16 (round to
// nearest even, as above).  That instruction flushes subnormal results to zero, so a
// vector with a nonzero product below FLT_MIN is rounded by the scalar formula
// instead: the outputs are bit for bit those of the portable loop.

#include <torch/extension.h>
#include <torch/library.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11) || \
                            (defined(__clang__) && __clang_major__ >= 12))
#include <immintrin.h>
#define CONSERVE_BF16_AVX512 1
#endif

namespace {

constexpr int64_t kLanes = 16;

inline float to_float(float v) { return v; }

inline float to_float(c10::BFloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float* out, float v) { *out = v; }

inline void store(c10::BFloat16* out, float v) {
  // round to nearest, ties to even (finite values)
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  out->x = static_cast<uint16_t>(bits >> 16);
}

// The end of the lane-fold order for R rows x[0..R) of n elements each, into out[0..R):
// row k's 16 lane sums (lanes + k * kLanes; lanes is null for rows shorter than one
// vector) folded left to right, then its tail elements added one by one.  The rows'
// chains are independent and interleaved (one row's additions run in another's
// latency); each row's operations and their order are those of the one-row case.
template <int R, typename T>
inline void fold_then_tail_rows(const float* lanes, const T* const* x, int64_t vectors, int64_t n,
                                float* out) {
  float total[R];
  bool started = lanes != nullptr;
  for (int k = 0; k < R; ++k) total[k] = started ? lanes[k * kLanes] : 0.0f;
  if (started) {
    for (int64_t j = 1; j < kLanes; ++j) {
      for (int k = 0; k < R; ++k) total[k] = total[k] + lanes[k * kLanes + j];
    }
  }
  for (int64_t i = vectors * kLanes; i < n; ++i) {
    for (int k = 0; k < R; ++k) {
      const float v = to_float(x[k][i]);
      const float sq = v * v;
      total[k] = started ? total[k] + sq : sq;
    }
    started = true;
  }
  for (int k = 0; k < R; ++k) out[k] = total[k];
}

template <typename T>
inline float fold_then_tail(const float* lanes, const T* x, int64_t vectors, int64_t n) {
  float out;
  fold_then_tail_rows<1, T>(lanes, &x, vectors, n, &out);
  return out;
}

template <typename T>
inline float sum_squares(const T* x, int64_t n) {
  const int64_t vectors = n / kLanes;
  if (vectors == 0) return fold_then_tail<T>(nullptr, x, vectors, n);
  float acc[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) {
    const float v = to_float(x[j]);
    acc[j] = v * v;
  }
  for (int64_t b = 1; b < vectors; ++b) {
    const T* p = x + b * kLanes;
    for (int64_t j = 0; j < kLanes; ++j) {
      const float v = to_float(p[j]);
      const float sq = v * v;
      acc[j] = acc[j] + sq;
    }
  }
  return fold_then_tail(acc, x, vectors, n);
}

// sum of double(x_i)^2: every square exact in double (at most 48 significant bits),
// the sum over 8 double lanes then the tail; relative error at most gamma_{n-1}(2^-53)
// whatever the order (height <= n - 1).
template <typename T>
inline double sum_squares64(const T* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int64_t j = 0; j < 8; ++j) {
      const double v = to_float(x[i + j]);
      acc[j] = acc[j] + v * v;
    }
  }
  double total = 0.0;
  for (int64_t j = 0; j < 8; ++j) total = total + acc[j];
  for (; i < n; ++i) {
    const double v = to_float(x[i]);
    total = total + v * v;
  }
  return total;
}

inline int64_t grain(int64_t n) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1)); }

template <typename T>
void forward_rows(const T* x, T* y, float* nrm, int64_t rows, int64_t n, float r) {
  at::parallel_for(0, rows, grain(n), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* xr = x + row * n;
      T* yr = y + row * n;
      const float norm = std::sqrt(sum_squares(xr, n));
      const float scale = r / norm;
      nrm[row] = norm;
      for (int64_t i = 0; i < n; ++i) store(yr + i, to_float(xr[i]) * scale);
    }
  });
}

#ifdef CONSERVE_BF16_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // the AVX-512 helpers are inline, never an ABI edge
#define CONSERVE_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

CONSERVE_AVX512_TARGET inline __m512 load_bf16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// sum_squares for R bfloat16 rows x[0..R) at once, one 16-lane vector per step: for
// each row the same roundings in the same order (lane j holds elements j, j + 16, ...;
// lanes folded left to right; the tail added one by one), the rows' chains interleaved.
template <int R>
CONSERVE_AVX512_TARGET inline void sum_squares_avx512(const c10::BFloat16* const* x, int64_t n,
                                                      float* out) {
  const int64_t vectors = n / kLanes;
  if (vectors == 0) {
    fold_then_tail_rows<R, c10::BFloat16>(nullptr, x, vectors, n, out);
    return;
  }
  __m512 acc[R];
  for (int k = 0; k < R; ++k) {
    const __m512 v = load_bf16(x[k]);
    acc[k] = _mm512_mul_ps(v, v);
  }
  for (int64_t b = 1; b < vectors; ++b) {
    for (int k = 0; k < R; ++k) {
      const __m512 v = load_bf16(x[k] + b * kLanes);
      acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(v, v));
    }
  }
  alignas(64) float lanes[R * kLanes];
  for (int k = 0; k < R; ++k) _mm512_store_ps(lanes + k * kLanes, acc[k]);
  fold_then_tail_rows<R, c10::BFloat16>(lanes, x, vectors, n, out);
}

// y = x * (r / sqrt(ss)) for one bfloat16 row of n elements; the norm into *nrm.
CONSERVE_AVX512_TARGET inline void scale_row_bf16_avx512(const c10::BFloat16* xr,
                                                         c10::BFloat16* yr, float ss, float r,
                                                         int64_t n, float* nrm) {
  const __m512 smallest = _mm512_set1_ps(FLT_MIN);
  const __m512 zero = _mm512_setzero_ps();
  const float norm = std::sqrt(ss);
  const float scale = r / norm;
  *nrm = norm;
  const __m512 s = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m512 v = _mm512_mul_ps(load_bf16(xr + i), s);
    const __mmask16 subnormal = _mm512_cmp_ps_mask(_mm512_abs_ps(v), smallest, _CMP_LT_OQ) &
                                _mm512_cmp_ps_mask(v, zero, _CMP_NEQ_UQ);
    if (subnormal != 0) {
      alignas(64) float lanes[kLanes];
      _mm512_store_ps(lanes, v);
      for (int64_t j = 0; j < kLanes; ++j) store(yr + i + j, lanes[j]);
    } else {
      const __m256bh h = _mm512_cvtneps_pbh(v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(yr + i), (__m256i)h);
    }
  }
  for (; i < n; ++i) store(yr + i, to_float(xr[i]) * scale);
}

// Rows whose sums the bfloat16 variant takes together (independent chains, interleaved:
// 4 rows at 4096 x 256 were 29% faster than one, 2 rows 14%; float32 rows are limited by
// memory and gained nothing).
constexpr int kRowsAtOnce = 4;

// Rows row .. row + R - 1: their sums together, then each row scaled.
template <int R>
CONSERVE_AVX512_TARGET inline void forward_group_bf16_avx512(const c10::BFloat16* x,
                                                             c10::BFloat16* y, float* nrm,
                                                             int64_t row, int64_t n, float r) {
  const c10::BFloat16* xs[R];
  for (int k = 0; k < R; ++k) xs[k] = x + (row + k) * n;
  float ss[R];
  sum_squares_avx512<R>(xs, n, ss);
  for (int k = 0; k < R; ++k) {
    scale_row_bf16_avx512(xs[k], y + (row + k) * n, ss[k], r, n, nrm + row + k);
  }
}

// The rows' sums kRowsAtOnce at a time, the rest one by one.
CONSERVE_AVX512_TARGET void forward_range_bf16_avx512(const c10::BFloat16* x, c10::BFloat16* y,
                                                      float* nrm, int64_t begin, int64_t end,
                                                      int64_t n, float r) {
  int64_t row = begin;
  for (; row + kRowsAtOnce <= end; row += kRowsAtOnce) {
    forward_group_bf16_avx512<kRowsAtOnce>(x, y, nrm, row, n, r);
  }
  for (; row < end; ++row) forward_group_bf16_avx512<1>(x, y, nrm, row, n, r);
}

void forward_rows_bf16_avx512(const c10::BFloat16* x, c10::BFloat16* y, float* nrm,
                              int64_t rows, int64_t n, float r) {
  at::parallel_for(0, rows, grain(n), [&](int64_t begin, int64_t end) {
    forward_range_bf16_avx512(x, y, nrm, begin, end, n, r);
  });
}

#pragma GCC diagnostic pop

bool has_bf16_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512bf16");
  return yes;
}
#else
bool has_bf16_avx512() { return false; }
#endif

template <typename T>
void norm_rows(const T* x, float* nrm, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, grain(n), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) nrm[row] = std::sqrt(sum_squares(x + row * n, n));
  });
}

template <typename T>
void energy_rows(const T* x, double* out, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, grain(n), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) out[row] = sum_squares64(x + row * n, n);
  });
}

void check_rows(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(),
              "x must be a contiguous 2-d CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "x must be float32 or bfloat16");
}

// f(typed pointer to x's data): float32 or bfloat16 (check_rows has run).
template <typename F>
void with_data(const at::Tensor& x, F&& f) {
  if (x.scalar_type() == at::kFloat) {
    f(x.data_ptr<float>());
  } else {
    f(x.data_ptr<c10::BFloat16>());
  }
}

bool portable_only = false;  // set_portable(true): the AVX-512 variant is not used
}  // namespace

// Whether forward() of bfloat16 rows takes the AVX-512 variant now.
bool bf16_avx512() { return has_bf16_avx512() && !portable_only; }

void set_portable(bool on) { portable_only = on; }

// (y, norm): y = x * (float32(r) / norm) per row, norm shaped (rows, 1), float32.
namespace {
// y = x * (r / norm) row by row into y (contiguous, x's dtype and element count), the
// norms into nrm: x and y are read as rows x n.
void forward_into(const at::Tensor& x, at::Tensor& y, float* nrm, int64_t rows, int64_t n,
                  double r) {
  const float r32 = static_cast<float>(r);
#ifdef CONSERVE_BF16_AVX512
  if (x.scalar_type() == at::kBFloat16 && bf16_avx512()) {
    forward_rows_bf16_avx512(x.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), nrm, rows,
                             n, r32);
    return;
  }
#endif
  with_data(x, [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    forward_rows(p, y.data_ptr<T>(), nrm, rows, n, r32);
  });
}
}  // namespace

std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x, double r) {
  check_rows(x);
  const int64_t rows = x.size(0), n = x.size(1);
  at::Tensor y = at::empty_like(x);
  at::Tensor nrm = at::empty({rows, 1}, x.options().dtype(at::kFloat));
  forward_into(x, y, nrm.data_ptr<float>(), rows, n, r);
  return {y, nrm};
}

// norm per row, shaped (rows, 1), float32: the forward's norm without y.
at::Tensor norms(const at::Tensor& x) {
  check_rows(x);
  at::Tensor nrm = at::empty({x.size(0), 1}, x.options().dtype(at::kFloat));
  with_data(x, [&](auto* p) { norm_rows(p, nrm.data_ptr<float>(), x.size(0), x.size(1)); });
  return nrm;
}

// sum of squares per row in float64, shaped (rows, 1): the energy check's measurement.
at::Tensor energies(const at::Tensor& x) {
  check_rows(x);
  at::Tensor out = at::empty({x.size(0), 1}, x.options().dtype(at::kDouble));
  with_data(x, [&](auto* p) { energy_rows(p, out.data_ptr<double>(), x.size(0), x.size(1)); });
  return out;
}

// ---------------------------------------------------------------- compiled inference
//
// conserve_native::infer(x, energy, dims, zero, lo, hi, max_features): the inference
// forward as an op with a C++ CPU kernel, for torch.compile graphs (a call costs the
// dispatcher, not a Python kernel).  Rows whose float32 sum of squares (norm^2) lies
// in [lo, hi] -- the fast path's safety range, passed by the caller -- for every
// sample give the one-pass result above; otherwise (a zero, tiny, huge or non-finite
// sample, more than max_features features per sample, or a layout the kernel does
// not take) the whole call goes to the Python
// fallback registered by set_fallback (the library's inference forward, which
// raises its typed errors), so the results are the eager ones.

namespace {
py::object* fallback = nullptr;  // never destroyed: outlives the interpreter's teardown

at::Tensor call_fallback(const at::Tensor& x, double energy, at::IntArrayRef dims,
                         c10::string_view zero) {
  py::gil_scoped_acquire gil;
  TORCH_CHECK(fallback != nullptr, "conserve_native::infer: no fallback registered");
  py::object out = (*fallback)(x, energy, std::vector<int64_t>(dims.begin(), dims.end()),
                               std::string(zero));
  return out.cast<at::Tensor>();
}
}  // namespace

void set_fallback(py::object fn) {
  if (fallback == nullptr) fallback = new py::object();
  *fallback = std::move(fn);
}

at::Tensor infer(const at::Tensor& x, double energy, at::IntArrayRef dims,
                 c10::string_view zero, double lo, double hi, int64_t max_features) {
  const int64_t k = static_cast<int64_t>(dims.size());
  bool trailing = x.dim() >= 2 && k >= 1 && k < x.dim() && x.is_contiguous() &&
                  x.device().is_cpu() &&
                  (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16);
  for (int64_t j = 0; trailing && j < k; ++j) trailing = dims[j] == x.dim() - k + j;
  int64_t features = 1;
  for (int64_t j = x.dim() - k; trailing && j < x.dim(); ++j) features *= x.size(j);
  if (!trailing || x.numel() == 0 || features > max_features) {
    return call_fallback(x, energy, dims, zero);
  }
  const int64_t rows = x.numel() / features;
  // y is allocated in x's shape (not a view of a rows x features tensor): a graph's
  // output is then a plain tensor
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  std::vector<float> nrm(static_cast<size_t>(rows));
  forward_into(x, y, nrm.data(), rows, features, std::sqrt(energy));
  for (int64_t i = 0; i < rows; ++i) {
    const float sq = nrm[i] * nrm[i];
    const double s = static_cast<double>(sq);
    if (!(s >= lo && s <= hi)) return call_fallback(x, energy, dims, zero);
  }
  return y;
}

TORCH_LIBRARY(conserve_native, m) {
  m.def(
      "infer(Tensor x, float energy, int[] dims, str zero, float lo, float hi, "
      "int max_features) -> Tensor");
}

TORCH_LIBRARY_IMPL(conserve_native, CPU, m) { m.impl("infer", &infer); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_fallback", &set_fallback, "the Python inference forward for unsafe inputs");
  m.def("energies", &energies, "float64 sums of squares of the rows");
  m.def("forward", &forward, "one-pass forward: (y, norm)");
  m.def("norms", &norms, "one-pass norms of the rows");
  m.def("bf16_avx512", &bf16_avx512, "whether bfloat16 rows take the AVX-512 variant");
  m.def("set_portable", &set_portable, "use the portable loops only (tests)");
  m.attr("LANES") = kLanes;
}
