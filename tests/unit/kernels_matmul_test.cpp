// The fast matmul / dot / axpy kernels against their scalar twins, on every ISA this machine runs
// (STYLE.md habit 2). The fast kernels differ from the twins only in summation order, so each
// output is checked against a bound built from the absolute products:
//   |fast - twin| <= 1e-5 · Σ_i |W_ri · x_ti| + 1e-6.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/x86_impl.h"

namespace kl {
namespace {

constexpr double kRelTol = 1e-5;
constexpr double kAbsTol = 1e-6;

std::vector<Isa> machine_isas() {
  CpuFeatures cpu = CpuFeatures::detect();
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa)) out.push_back(isa);
  return out;
}

const Kernels& table(Isa isa) { return kernels_for(isa, CpuFeatures::detect()); }

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& f : v) f = d(rng);
  return v;
}

// A weight [rows, cols] in some format, stored `offset` bytes into its buffer (offset 1 or 2
// makes every row start unaligned for the vector loads), plus its values as fp32.
struct TestWeight {
  std::vector<unsigned char> bytes;
  std::vector<float> values;  // [rows, cols] as the kernels see them (after the format's rounding)
  WeightView view;

  TestWeight(DType dtype, int64_t rows, int64_t cols, size_t offset, uint32_t seed) {
    std::vector<float> src = random_floats(size_t(rows * cols), seed);
    size_t esize = dtype_size(dtype);
    // Ends right after the last weight, so an over-read past the last row shows under ASan.
    bytes.assign(offset + src.size() * esize, 0xAB);
    values.resize(src.size());
    unsigned char* p = bytes.data() + offset;
    for (size_t i = 0; i < src.size(); i++) {
      if (dtype == DType::F32) {
        std::memcpy(p + 4 * i, &src[i], 4);
        values[i] = src[i];
      } else {
        uint16_t h = dtype == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
        values[i] = dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
    }
    view = WeightView{p, dtype, rows, cols};
  }
};

// Activations [n, ldx] (only the first cols of each row are read; the rest hold NaN so a kernel
// reading past cols shows up in its result).
std::vector<float> make_x(int64_t n, int64_t cols, int64_t ldx, uint32_t seed) {
  std::vector<float> v = random_floats(size_t(n * ldx), seed);
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = cols; i < ldx; i++)
      v[size_t(t * ldx + i)] = std::numeric_limits<float>::quiet_NaN();
  return v;
}

// Σ_i |W_ri · x_ti| for every output, [n, rows]. `round_x` applies the bf16 rounding of x.
std::vector<double> abs_bound(const TestWeight& w, const float* x, int64_t n, int64_t ldx,
                              bool round_x = false) {
  const int64_t rows = w.view.rows, cols = w.view.cols;
  std::vector<double> b(size_t(n * rows));
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++) {
      double s = 0;
      for (int64_t i = 0; i < cols; i++) {
        float xv = x[t * ldx + i];
        if (round_x) xv = bf16_to_f32(f32_to_bf16(xv));
        s += std::fabs(double(w.values[size_t(r * cols + i)]) * xv);
      }
      b[size_t(t * rows + r)] = s;
    }
  return b;
}

// Checks y [n, ldy] against the reference [n, rows] within the bound; the columns of y past rows
// must still hold the sentinel.
void expect_close(const std::vector<float>& y, int64_t ldy, const std::vector<float>& ref,
                  const std::vector<double>& bound, int64_t n, int64_t rows,
                  const std::string& what) {
  int failures = 0;
  for (int64_t t = 0; t < n && failures < 5; t++) {
    for (int64_t r = 0; r < rows && failures < 5; r++) {
      double got = y[size_t(t * ldy + r)], want = ref[size_t(t * rows + r)];
      double tol = kRelTol * bound[size_t(t * rows + r)] + kAbsTol;
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << what << ": y[" << t << ", " << r << "] = " << got << ", twin " << want
                      << ", tolerance " << tol;
        failures++;
      }
    }
    for (int64_t r = rows; r < ldy && failures < 5; r++) {
      if (y[size_t(t * ldy + r)] != -7.f) {
        ADD_FAILURE() << what << ": wrote y[" << t << ", " << r << "] past the " << rows << " rows";
        failures++;
      }
    }
  }
}

// The scalar twin's result [n, rows] (contiguous).
std::vector<float> twin(MatmulRowsFn fn, const WeightView& w, const float* x, int64_t n,
                        int64_t ldx) {
  std::vector<float> y(size_t(n * w.rows));
  MatmulArgs a{&w, x, n, ldx, y.data(), w.rows};
  fn(a, 0, w.rows);
  return y;
}

struct Shape {
  int64_t rows, cols, n;
};

std::string describe(Isa isa, DType dt, const Shape& s, size_t offset) {
  return std::string(isa_name(isa)) + " " + std::string(dtype_name(dt)) +
         " rows=" + std::to_string(s.rows) + " cols=" + std::to_string(s.cols) +
         " n=" + std::to_string(s.n) + " offset=" + std::to_string(offset);
}

// rows x cols x n over the awkward sizes. Full product for the small row counts; the 1000-row
// weights get a subset of n so the scalar reference stays fast.
std::vector<Shape> sweep() {
  std::vector<Shape> out;
  for (int64_t rows : {1, 7, 63, 65, 1000})
    for (int64_t cols : {1, 7, 15, 16, 17, 63, 65, 128, 1000, 2304})
      for (int64_t n : {1, 2, 3, 5, 8, 17, 64}) {
        if (rows == 1000 && !(n == 1 || n == 2 || n == 5 || n == 17)) continue;
        out.push_back({rows, cols, n});
      }
  // Rows past the decode kernels' long-row threshold (kernels/row_tiles.h, kLongRowCols = 6144),
  // which they take two at a time: odd and even row counts, a column tail.
  for (int64_t rows : {1, 2, 7, 64})
    for (int64_t n : {1, 2}) out.push_back({rows, 9223, n});
  return out;
}

void run_rows_kernel(MatmulRowsFn fn, const WeightView& w, const float* x, int64_t n, int64_t ldx,
                     std::vector<float>& y, int64_t ldy) {
  y.assign(size_t(n * ldy), -7.f);
  MatmulArgs a{&w, x, n, ldx, y.data(), ldy};
  // Two calls over a split of the rows, as the threaded driver makes them.
  int64_t mid = w.rows / 3;
  fn(a, 0, mid);
  fn(a, mid, w.rows);
}

class MatmulSweep : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulSweep, MatchesScalarTwinOnEveryIsa) {
  const DType dt = GetParam();
  const std::vector<Isa> isas = machine_isas();
  uint32_t seed = 1;
  for (const Shape& s : sweep()) {
    const int64_t ldx = s.cols + 3, ldy = s.rows + 5;
    std::vector<float> x = make_x(s.n, s.cols, ldx, seed++);
    TestWeight aligned(dt, s.rows, s.cols, 0, seed);
    std::vector<float> ref =
        twin(scalar_kernels().matmul_rows[size_t(dt)], aligned.view, x.data(), s.n, ldx);
    std::vector<double> bound = abs_bound(aligned, x.data(), s.n, ldx);
    // Unaligned row starts: 2 bytes in (one element of a 16-bit format), and an odd address.
    for (size_t offset : {size_t(0), size_t(2), size_t(1)}) {
      TestWeight w(dt, s.rows, s.cols, offset, seed);
      for (Isa isa : isas) {
        // The scalar table is the twin itself: run it once, on the odd address.
        if (isa == Isa::Scalar && offset != 1) continue;
        std::vector<float> y;
        run_rows_kernel(table(isa).matmul_rows[size_t(dt)], w.view, x.data(), s.n, ldx, y, ldy);
        expect_close(y, ldy, ref, bound, s.n, s.rows, describe(isa, dt, s, offset));
      }
    }
    seed++;
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, MatmulSweep,
                         ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Prompt-sized calls (the AVX-512 kernels switch to a packed GEMM from n = 96): tokens past the
// switch and past one 256-token chunk of x, K past one or several K-blocks (256) and not a
// multiple of 16, rows over several 128-row chunks with partial 64-row panels, and row splits
// (rows / 3) at no multiple of anything. Also through the bf16 dot path against its twin.
std::vector<Shape> prompt_shapes() {
  return {{200, 300, 96}, {131, 513, 100}, {67, 257, 131}, {1, 17, 97},  {129, 16, 96},
          {65, 1000, 97}, {70, 40, 300},   {3, 1, 96},     {16, 2, 120}, {257, 33, 98}};
}

TEST(MatmulPrompt, MatchesScalarTwinOnEveryIsa) {
  uint32_t seed = 300;
  for (const Shape& s : prompt_shapes()) {
    const int64_t ldx = s.cols + 3, ldy = s.rows + 5;
    std::vector<float> x = make_x(s.n, s.cols, ldx, seed++);
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      TestWeight aligned(dt, s.rows, s.cols, 0, seed);
      std::vector<float> ref =
          twin(scalar_kernels().matmul_rows[size_t(dt)], aligned.view, x.data(), s.n, ldx);
      std::vector<double> bound = abs_bound(aligned, x.data(), s.n, ldx);
      for (size_t offset : {size_t(0), size_t(1)}) {
        TestWeight w(dt, s.rows, s.cols, offset, seed);
        for (Isa isa : machine_isas()) {
          if (isa == Isa::Scalar) continue;
          std::vector<float> y;
          run_rows_kernel(table(isa).matmul_rows[size_t(dt)], w.view, x.data(), s.n, ldx, y, ldy);
          expect_close(y, ldy, ref, bound, s.n, s.rows, describe(isa, dt, s, offset));
        }
      }
      if (dt == DType::BF16) {
        std::vector<float> ref_dot =
            twin(scalar_kernels().matmul_rows_bf16_dot, aligned.view, x.data(), s.n, ldx);
        std::vector<double> bound_dot = abs_bound(aligned, x.data(), s.n, ldx, true);
        TestWeight w(dt, s.rows, s.cols, 2, seed);
        for (Isa isa : machine_isas()) {
          if (isa == Isa::Scalar || !table(isa).matmul_rows_bf16_dot) continue;
          std::vector<float> y;
          run_rows_kernel(table(isa).matmul_rows_bf16_dot, w.view, x.data(), s.n, ldx, y, ldy);
          expect_close(y, ldy, ref_dot, bound_dot, s.n, s.rows,
                       "bf16-dot " + describe(isa, dt, s, 2));
        }
      }
      if (HasFailure()) return;
    }
    seed++;
  }
}

// The threaded driver over pools of 1, 2 and 3 threads: its split of rows (and of tokens when the
// weight has few rows) must cover every output exactly once.
TEST(MatmulDriver, ThreadedMatchesScalarTwin) {
  const std::vector<Shape> shapes = {{1000, 2304, 1}, {1000, 65, 17}, {7, 1000, 64}, {65, 128, 5},
                                     {4096, 64, 2},   {300, 300, 64}, {1, 2304, 33}, {33, 17, 1},
                                     {300, 300, 100}, {700, 70, 130}, {9, 500, 200}};
  uint32_t seed = 100;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (const Shape& s : shapes) {
        const int64_t ldx = s.cols + 1, ldy = s.rows + 3;
        std::vector<float> x = make_x(s.n, s.cols, ldx, seed++);
        TestWeight w(dt, s.rows, s.cols, 2, seed++);
        std::vector<float> ref =
            twin(scalar_kernels().matmul_rows[size_t(dt)], w.view, x.data(), s.n, ldx);
        std::vector<double> bound = abs_bound(w, x.data(), s.n, ldx);
        for (Isa isa : machine_isas()) {
          Context ctx{&pool, &table(isa)};
          std::vector<float> y(size_t(s.n * ldy), -7.f);
          matmul_strided(ctx, w.view, x.data(), s.n, ldx, y.data(), ldy);
          expect_close(y, ldy, ref, bound, s.n, s.rows,
                       describe(isa, dt, s, 2) + " threads=" + std::to_string(threads));
        }
        // The contiguous entry point.
        std::vector<float> xc(size_t(s.n * s.cols));
        for (int64_t t = 0; t < s.n; t++)
          std::memcpy(&xc[size_t(t * s.cols)], &x[size_t(t * ldx)], size_t(s.cols) * 4);
        Context ctx{&pool, &table(machine_isas().back())};
        std::vector<float> y(size_t(s.n * s.rows), -7.f);
        matmul(ctx, w.view, xc.data(), s.n, y.data());
        expect_close(y, s.rows, ref, bound, s.n, s.rows,
                     "matmul() " + describe(machine_isas().back(), dt, s, 2));
        if (HasFailure()) return;
      }
    }
  }
}

// matmul_batch over `shapes` (mixed formats, every ISA, each pool size): every job against its
// scalar twin, and nothing written outside a job's outputs.
void check_batch(const std::vector<Shape>& shapes, std::initializer_list<int> pool_sizes, uint32_t seed) {
  const DType dts[] = {DType::BF16, DType::F32, DType::F16};
  std::vector<TestWeight> ws;
  std::vector<std::vector<float>> xs;
  std::vector<int64_t> ldxs, ldys;
  for (size_t j = 0; j < shapes.size(); j++) {
    const Shape& s = shapes[j];
    ldxs.push_back(s.cols + int64_t(j % 3));
    ldys.push_back(s.rows + int64_t(j % 2) * 5);
    ws.emplace_back(dts[j % 3], s.rows, s.cols, j % 2 ? 2 : 0, seed++);
    xs.push_back(make_x(std::max<int64_t>(s.n, 1), s.cols, ldxs[j], seed++));
  }
  for (int threads : pool_sizes) {
    ThreadPool pool(threads);
    for (Isa isa : machine_isas()) {
      Context ctx{&pool, &table(isa)};
      std::vector<std::vector<float>> ys(shapes.size());
      std::vector<MatmulJob> jobs;
      for (size_t j = 0; j < shapes.size(); j++) {
        ys[j].assign(size_t(std::max<int64_t>(shapes[j].n, 1) * ldys[j]), -7.f);
        jobs.push_back({&ws[j].view, xs[j].data(), shapes[j].n, ldxs[j], ys[j].data(), ldys[j]});
      }
      matmul_batch(ctx, jobs.data(), int64_t(jobs.size()));
      for (size_t j = 0; j < shapes.size(); j++) {
        const Shape& s = shapes[j];
        const DType dt = dts[j % 3];
        const std::string what = "batch job " + std::to_string(j) + " " +
                                 describe(isa, dt, s, j % 2 ? 2 : 0) + " threads=" + std::to_string(threads);
        if (s.n == 0) {
          for (float v : ys[j]) EXPECT_EQ(v, -7.f) << what << ": an empty job wrote output";
          continue;
        }
        std::vector<float> ref =
            twin(scalar_kernels().matmul_rows[size_t(dt)], ws[j].view, xs[j].data(), s.n, ldxs[j]);
        expect_close(ys[j], ldys[j], ref, abs_bound(ws[j], xs[j].data(), s.n, ldxs[j]), s.n, s.rows, what);
        for (int64_t t = 0; t < s.n; t++)
          for (int64_t r = s.rows; r < ldys[j]; r++)
            EXPECT_EQ(ys[j][size_t(t * ldys[j] + r)], -7.f) << what << ": wrote past the rows";
      }
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// Mixed decode and prompt jobs in one call (the prompt-sized split), with 1 and 2 threads.
TEST(MatmulBatch, EveryJobMatchesItsTwin) {
  check_batch({{1024, 2304, 1}, {7, 65, 1}, {2304, 300, 1}, {33, 17, 0}, {65, 128, 3}, {1000, 70, 17},
               {9, 500, 100}, {300, 300, 1}, {1, 2304, 2}, {4096, 64, 1}},
              {1, 2}, 900);
}

// Decode-sized jobs only (n <= 4): the guided split over all the jobs' bytes, whose tasks start
// and end inside jobs and span several small ones; pool sizes that change the task sizes.
TEST(MatmulBatch, DecodeJobsSplitAcrossJobs) {
  check_batch({{1024, 2304, 1}, {7, 65, 1}, {2304, 1024, 1}, {33, 17, 0}, {3, 5, 4}, {600, 2304, 2},
               {1, 9223, 1}, {300, 300, 4}, {4096, 64, 1}, {17, 2304, 3}},
              {2, 3, 5}, 950);
}

// One token with x at each offset from a 64-byte boundary (the AVX-512 tables of cores that run
// 512-bit operations as two halves read a copy of an x on a 32-byte boundary), on every table
// and on both AVX-512 variants where the CPU has AVX-512: short, long and very long rows.
TEST(MatmulDecode, AnyXAlignmentMatchesTwin) {
  std::vector<std::pair<std::string, MatmulRowsFn>> fns;
  for (Isa isa : machine_isas())
    fns.push_back({isa_name(isa), table(isa).matmul_rows[size_t(DType::BF16)]});
#if defined(KL_HAVE_X86_KERNELS)
  if (CpuFeatures::detect().supports(Isa::Avx512)) {
    fns.push_back({"avx512 whole", avx512::matmul_rows_bf16});
    fns.push_back({"avx512 halves", avx512::matmul_rows_bf16_halves});
  }
#endif
  uint32_t seed = 1200;
  for (int64_t cols : {2304, 65, 9223, 16385}) {
    const int64_t rows = 37;
    TestWeight w(DType::BF16, rows, cols, 0, seed++);
    alignas(64) static float xbuf[16385 + 64];
    const std::vector<float> xv = random_floats(size_t(cols), seed++);
    for (int64_t off : {0, 4, 8, 1}) {  // floats: 0, 16, 32, 4 bytes past a 64-byte boundary
      float* x = xbuf + off;
      std::memcpy(x, xv.data(), sizeof(float) * size_t(cols));
      std::vector<float> ref = twin(scalar_kernels().matmul_rows[size_t(DType::BF16)], w.view, x, 1, cols);
      std::vector<double> bound = abs_bound(w, x, 1, cols);
      for (const auto& [name, fn] : fns) {
        std::vector<float> y;
        run_rows_kernel(fn, w.view, x, 1, cols, y, rows);
        expect_close(y, rows, ref, bound, 1, rows,
                     name + " cols=" + std::to_string(cols) + " x offset=" + std::to_string(off * 4) + " B");
      }
    }
    if (HasFailure()) return;
  }
}

TEST(MatmulDriver, RejectsUnsupportedFormat) {
  ThreadPool pool(1);
  Context ctx{&pool, &scalar_kernels()};
  std::vector<int32_t> data(16);
  WeightView w{data.data(), DType::I32, 4, 4};
  std::vector<float> x(4), y(4);
  EXPECT_THROW(matmul(ctx, w, x.data(), 1, y.data()), Error);
}

// ---- bf16 activations (vdpbf16ps) against its own twin ----

TEST(MatmulBf16Dot, TablesOfferItOnlyWithAvx512Bf16) {
  CpuFeatures cpu = CpuFeatures::detect();
  EXPECT_NE(scalar_kernels().matmul_rows_bf16_dot, nullptr);  // the twin
  EXPECT_FALSE(scalar_kernels().bf16_activations);            // off by default
  if (cpu.supports(Isa::Avx2)) {
    EXPECT_EQ(table(Isa::Avx2).matmul_rows_bf16_dot, nullptr);
  }
  if (cpu.supports(Isa::Avx512)) {
    EXPECT_EQ(table(Isa::Avx512).matmul_rows_bf16_dot != nullptr, cpu.avx512_bf16);
    EXPECT_FALSE(table(Isa::Avx512).bf16_activations);
  }
}

std::vector<const Kernels*> bf16_dot_tables() {
  std::vector<const Kernels*> out;
  for (Isa isa : machine_isas())
    if (table(isa).matmul_rows_bf16_dot) out.push_back(&table(isa));
  return out;
}

TEST(MatmulBf16Dot, MatchesItsTwin) {
  uint32_t seed = 500;
  MatmulRowsFn ref_fn = scalar_kernels().matmul_rows_bf16_dot;
  for (const Shape& s : sweep()) {
    if (s.rows == 1000 && s.n > 2) continue;
    const int64_t ldx = s.cols + 3, ldy = s.rows + 5;
    std::vector<float> x = make_x(s.n, s.cols, ldx, seed++);
    TestWeight aligned(DType::BF16, s.rows, s.cols, 0, seed);
    std::vector<float> ref = twin(ref_fn, aligned.view, x.data(), s.n, ldx);
    std::vector<double> bound = abs_bound(aligned, x.data(), s.n, ldx, /*round_x=*/true);
    for (size_t offset : {size_t(0), size_t(2), size_t(1)}) {
      TestWeight w(DType::BF16, s.rows, s.cols, offset, seed);
      for (const Kernels* k : bf16_dot_tables()) {
        std::vector<float> y;
        run_rows_kernel(k->matmul_rows_bf16_dot, w.view, x.data(), s.n, ldx, y, ldy);
        expect_close(y, ldy, ref, bound, s.n, s.rows,
                     "bf16-dot " + describe(k->isa, DType::BF16, s, offset));
      }
    }
    seed++;
    if (HasFailure()) return;
  }
}

// Rows wider than the kernel's 64 KiB activation buffer, and enough tokens for several chunks.
TEST(MatmulBf16Dot, WideRowsAndManyTokens) {
  const std::vector<Shape> shapes = {{9, 40000, 2}, {70, 2304, 40}, {5, 9216, 7}, {20, 6001, 13}};
  uint32_t seed = 900;
  for (const Shape& s : shapes) {
    std::vector<float> x = make_x(s.n, s.cols, s.cols, seed++);
    TestWeight w(DType::BF16, s.rows, s.cols, 2, seed++);
    std::vector<float> ref =
        twin(scalar_kernels().matmul_rows_bf16_dot, w.view, x.data(), s.n, s.cols);
    std::vector<double> bound = abs_bound(w, x.data(), s.n, s.cols, true);
    for (const Kernels* k : bf16_dot_tables()) {
      std::vector<float> y;
      run_rows_kernel(k->matmul_rows_bf16_dot, w.view, x.data(), s.n, s.cols, y, s.rows);
      expect_close(y, s.rows, ref, bound, s.n, s.rows,
                   "bf16-dot " + describe(k->isa, DType::BF16, s, 2));
    }
  }
}

// Through the driver: the flag switches BF16 weights to the dot path, and it really rounds x:
// w = 1, x = 1 + 2⁻¹⁰ gives 1 + 2⁻¹⁰ in fp32 but 1 in bf16 (7 fraction bits).
TEST(MatmulBf16Dot, FlagSelectsThePathInTheDriver) {
  ThreadPool pool(2);
  std::vector<uint16_t> ones(64, f32_to_bf16(1.f));
  WeightView w{ones.data(), DType::BF16, 2, 32};
  std::vector<float> x(32, 0.f);
  x[0] = 1.f + 1.f / 1024;
  for (Isa isa : machine_isas()) {
    Kernels k = table(isa);
    std::vector<float> y(2);
    Context ctx{&pool, &k};
    matmul(ctx, w, x.data(), 1, y.data());
    EXPECT_EQ(y[0], 1.f + 1.f / 1024) << isa_name(isa);
    k.bf16_activations = true;
    if (!k.matmul_rows_bf16_dot) {
      EXPECT_THROW(matmul(ctx, w, x.data(), 1, y.data()), Error) << isa_name(isa);
      continue;
    }
    matmul(ctx, w, x.data(), 1, y.data());
    EXPECT_EQ(y[0], 1.f) << isa_name(isa);
    EXPECT_EQ(y[1], 1.f) << isa_name(isa);
  }
  // The driver against the twin on a real shape, 2 threads.
  for (const Kernels* kp : bf16_dot_tables()) {
    Kernels k = *kp;
    k.bf16_activations = true;
    Shape s{1000, 2304, 9};
    std::vector<float> xs = make_x(s.n, s.cols, s.cols, 77);
    TestWeight tw(DType::BF16, s.rows, s.cols, 0, 78);
    std::vector<float> ref =
        twin(scalar_kernels().matmul_rows_bf16_dot, tw.view, xs.data(), s.n, s.cols);
    std::vector<double> bound = abs_bound(tw, xs.data(), s.n, s.cols, true);
    std::vector<float> y(size_t(s.n * s.rows));
    Context ctx{&pool, &k};
    matmul(ctx, tw.view, xs.data(), s.n, y.data());
    expect_close(y, s.rows, ref, bound, s.n, s.rows,
                 std::string("driver bf16-dot ") + isa_name(k.isa));
  }
}

// ---- dot and axpy ----

TEST(VectorOps, DotMatchesTwin) {
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 63, 64, 65, 1000, 2304}) {
    // One float in, so the vectors start off the 64-byte grid.
    std::vector<float> a = random_floats(size_t(n) + 1, uint32_t(n) + 1),
                       b = random_floats(size_t(n) + 1, uint32_t(n) + 2);
    double bound = 0;
    for (int64_t i = 0; i < n; i++) bound += std::fabs(double(a[size_t(i) + 1]) * b[size_t(i) + 1]);
    float want = scalar_kernels().dot_f32(a.data() + 1, b.data() + 1, n);
    for (Isa isa : machine_isas()) {
      float got = table(isa).dot_f32(a.data() + 1, b.data() + 1, n);
      EXPECT_LE(std::fabs(double(got) - want), kRelTol * bound + kAbsTol)
          << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(VectorOps, AxpyMatchesTwin) {
  for (int64_t n : {0, 1, 7, 15, 16, 17, 31, 63, 64, 65, 1000, 2304}) {
    std::vector<float> x = random_floats(size_t(n) + 1, uint32_t(n) + 3),
                       y0 = random_floats(size_t(n) + 9, uint32_t(n) + 4);
    const float alpha = 0.37f;
    std::vector<float> want = y0;
    scalar_kernels().axpy_f32(alpha, x.data() + 1, want.data() + 1, n);
    for (Isa isa : machine_isas()) {
      std::vector<float> got = y0;
      table(isa).axpy_f32(alpha, x.data() + 1, got.data() + 1, n);
      for (size_t i = 0; i < got.size(); i++) {
        bool inside = i >= 1 && i < size_t(n) + 1;
        // Inside: one fused rounding against mul + add. Outside: untouched.
        double tol =
            inside ? kRelTol * (std::fabs(alpha * x[i]) + std::fabs(y0[i])) + kAbsTol : 0.0;
        ASSERT_LE(std::fabs(double(got[i]) - want[i]), tol)
            << isa_name(isa) << " n=" << n << " i=" << i;
      }
    }
  }
}

}  // namespace
}  // namespace kl
