// Latent attention kernels (kernels/attention.h) and their tile ops (kernels/tile_ops.h) against
// their plain twins, on every ISA table this CPU runs, with awkward sizes: 1, 3 and 4 heads,
// widths that are not multiples of the vector width, contexts 1, 7, 255, 256, 257 and 1000
// (pages of 256 rows), several queries after a non-empty context, 1 to 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kernels/tile_ops.h"

namespace kl {
namespace {

std::vector<Isa> isas() {
  std::vector<Isa> out;
  const CpuFeatures cpu = CpuFeatures::detect();
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa)) out.push_back(isa);
  return out;
}

const Kernels& table(Isa isa) { return kernels_for(isa, CpuFeatures::detect()); }

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// ---- tile ops ----

TEST(TileOps, GemmMatchesScalarTwin) {
  std::mt19937 rng(7);
  const Kernels& ref = scalar_kernels();
  for (Isa isa : isas()) {
    const Kernels& k = table(isa);
    for (int64_t M : {1, 5, 6, 7, 8, 9, 13, 32, 64})
      for (int64_t N : {1, 15, 16, 17, 31, 32, 33, 48, 64, 65, 130})
        for (int64_t K : {1, 7, 64, 200})
          for (int mode = 0; mode < 4; mode++) {  // bit 0: A transposed, bit 1: accumulate + row_scale
            const bool at = mode & 1, acc = mode & 2;
            const int64_t lda = at ? M + 3 : K + 2, ldb = N + 5, ldc = N + 1;
            std::vector<float> a = randn(size_t(at ? K * lda : M * lda), rng);
            std::vector<float> b = randn(size_t(K * ldb), rng);
            std::vector<float> scale = randn(size_t(M), rng);
            std::vector<float> c0 = randn(size_t(M * ldc), rng);
            std::vector<float> c1 = c0;
            GemmF32Args g;
            g.M = M;
            g.N = N;
            g.K = K;
            g.a = a.data();
            g.a_rs = at ? 1 : lda;
            g.a_cs = at ? lda : 1;
            g.b = b.data();
            g.ldb = ldb;
            g.ldc = ldc;
            g.accumulate = acc;
            g.row_scale = acc && (M % 2) ? scale.data() : nullptr;
            g.c = c0.data();
            ref.gemm_f32(g);
            g.c = c1.data();
            k.gemm_f32(g);
            // Also checks that the padding between rows of C is untouched.
            EXPECT_LE(max_abs_diff(c0, c1), 2e-5f * std::sqrt(float(K)) * 4)
                << isa_name(isa) << " M " << M << " N " << N << " K " << K << " mode " << mode;
          }
  }
}

TEST(TileOps, OnlineSoftmaxMatchesScalarTwin) {
  std::mt19937 rng(11);
  const float inf = std::numeric_limits<float>::infinity();
  const Kernels& ref = scalar_kernels();
  for (Isa isa : isas()) {
    const Kernels& k = table(isa);
    for (int64_t n_keys : {1, 5, 64, 128, 131})
      for (int64_t n_cols : {1, 3, 16, 17, 40, 64})
        for (int64_t per : {1, 3, 4})
          for (int64_t vis_shift : {-200, -3, 0, 2, 1000}) {  // from "sees nothing" to "sees all"
            const int64_t ld = n_cols + 2, key0 = 100, vis0 = key0 + vis_shift;
            std::vector<float> s0 = randn(size_t(n_keys * ld), rng, 4.f);
            std::vector<float> m0 = randn(size_t(n_cols), rng, 3.f), l0(static_cast<size_t>(n_cols));
            for (size_t j = 0; j < m0.size(); j++) {
              if (j % 3 == 0) m0[j] = -inf;  // columns that have seen nothing yet
              l0[j] = m0[j] == -inf ? 0.f : 1.f + float(j);
              // Columns whose scores are all -inf (with j % 3 == 0: every score they saw was -inf).
              if (j % 5 == 1)
                for (int64_t r = 0; r < n_keys; r++) s0[size_t(r * ld) + j] = -inf;
            }
            std::vector<float> s1 = s0;
            std::vector<float> m1 = m0, l1 = l0, a0(static_cast<size_t>(n_cols)), a1(static_cast<size_t>(n_cols));
            OnlineSoftmaxArgs sm;
            sm.n_keys = n_keys;
            sm.n_cols = n_cols;
            sm.ld = ld;
            sm.key0 = key0;
            sm.vis0 = vis0;
            sm.cols_per_step = per;
            sm.s = s0.data();
            sm.m = m0.data();
            sm.l = l0.data();
            sm.alpha = a0.data();
            ref.online_softmax_f32(sm);
            sm.s = s1.data();
            sm.m = m1.data();
            sm.l = l1.data();
            sm.alpha = a1.data();
            k.online_softmax_f32(sm);
            const std::string where = std::string(isa_name(isa)) + " keys " + std::to_string(n_keys) + " cols " +
                                      std::to_string(n_cols) + " per " + std::to_string(per) + " shift " +
                                      std::to_string(vis_shift);
            EXPECT_EQ(m0, m1) << where;
            for (size_t j = 0; j < l0.size(); j++) {
              EXPECT_NEAR(l0[j], l1[j], 2e-6f * std::max(1.f, l0[j])) << where;
              EXPECT_NEAR(a0[j], a1[j], 2e-6f * std::max(1.f, a0[j])) << where;
            }
            EXPECT_LE(max_abs_diff(s0, s1), 2e-6f) << where;
            for (size_t j = 0; j < l0.size(); j++) {
              EXPECT_FALSE(std::isnan(l0[j]) || std::isnan(l1[j]) || std::isnan(a0[j]) || std::isnan(a1[j])) << where;
              if (j % 5 == 1 && m0[j] == -inf) {  // saw only -inf
                EXPECT_EQ(l0[j], 0.f) << where << " col " << j;
              }
            }
            for (size_t i = 0; i < s0.size(); i++)
              ASSERT_FALSE(std::isnan(s0[i]) || std::isnan(s1[i])) << where << " at " << i;
          }
  }
}

// ---- attention kernels ----

// A latent cache of n rows of width w in pages of page_rows rows, as fp32 pages and as bf16
// pages of the same values (the fp32 values are bf16-exact).
struct Cache {
  std::vector<std::vector<float>> pages;
  std::vector<std::vector<uint16_t>> pages16;
  std::vector<const void*> table, table16;
  Cache(int64_t n, int64_t w, int64_t page_rows, std::mt19937& rng) {
    for (int64_t r = 0; r < n; r += page_rows) {
      pages.push_back(randn(size_t(page_rows * w), rng));
      pages16.emplace_back();
      for (float& x : pages.back()) {
        pages16.back().push_back(f32_to_bf16(x));
        x = bf16_to_f32(pages16.back().back());
      }
      table.push_back(pages.back().data());
      table16.push_back(pages16.back().data());
    }
  }
  const void* const* of(DType t) const { return t == DType::BF16 ? table16.data() : table.data(); }
};

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Tolerance of a fast kernel against its twin. fp32 cache: summation order only. bf16 cache: the
// fast kernels also round each probability to bf16 (relative to the running maximum of its
// tile, so the twin cannot round the same way): at most 2^-9 of the largest value magnitude,
// taken as 2^-8 here.
float tolerance(DType cache, float max_value) { return cache == DType::BF16 ? 2e-5f + max_value / 256.f : 2e-5f; }

struct Shape {
  int64_t H, n_q, ctx0;
};

std::vector<Shape> shapes() {
  std::vector<Shape> out;
  for (int64_t H : {1, 3, 4}) {
    for (int64_t ctx : {1, 7, 255, 256, 257, 1000}) out.push_back({H, 1, ctx - 1});  // decode
    out.push_back({H, 5, 300});
    out.push_back({H, 40, 250});  // crosses a page boundary
    out.push_back({H, 70, 0});    // prompt from empty: several groups / query blocks
    out.push_back({H, 67, 190});
  }
  return out;
}

constexpr int64_t kPageRows = 256;

TEST(LatentAttention, AbsorbedMatchesTwin) {
  std::mt19937 rng(3);
  Context ref_ctx{nullptr, &scalar_kernels()};
  // Odd and even row widths (a bf16 row is an A operand straight from the page when even).
  for (auto [c, r, dt] : {std::tuple{int64_t(33), int64_t(7), DType::F32}, std::tuple{int64_t(33), int64_t(7), DType::BF16},
                          std::tuple{int64_t(32), int64_t(8), DType::BF16}})
  for (const Shape& sh : shapes()) {
    const int64_t kv_dim = c + r;
    Cache cache(sh.ctx0 + sh.n_q, kv_dim, kPageRows, rng);
    std::vector<float> q = randn(size_t(sh.n_q * sh.H * kv_dim), rng, 3.f / std::sqrt(float(kv_dim)));
    LatentAttnArgs a;
    a.n_q = sh.n_q;
    a.H = sh.H;
    a.kv_dim = kv_dim;
    a.v_dim = c;
    a.q = q.data();
    a.ctx0 = sh.ctx0;
    a.pages = cache.of(dt);
    a.cache_dtype = dt;
    a.page_rows = kPageRows;
    std::vector<float> want(size_t(sh.n_q * sh.H * c));
    a.out = want.data();
    latent_attention_absorbed_reference(ref_ctx, a);
    const float tol = tolerance(dt, max_abs(cache.pages[0]));
    for (Isa isa : isas())
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        Context ctx{&pool, &table(isa)};
        std::vector<float> scratch(latent_attention_absorbed_scratch_floats(sh.H, kv_dim, c, threads));
        std::vector<float> got(want.size(), std::nanf(""));
        a.out = got.data();
        a.scratch = scratch.data();
        a.scratch_floats = scratch.size();
        latent_attention_absorbed(ctx, a);
        EXPECT_LE(max_abs_diff(want, got), tol) << isa_name(isa) << " " << dtype_name(dt) << " kv_dim " << kv_dim
                                                << " threads " << threads << " H " << sh.H << " n_q " << sh.n_q
                                                << " ctx0 " << sh.ctx0;
      }
  }
}

// kv_b_proj-like weight [H·(dk + dv), lat] in F32 or BF16.
struct KvWeight {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  WeightView view;
  KvWeight(int64_t rows, int64_t cols, DType t, std::mt19937& rng) {
    f32 = randn(size_t(rows * cols), rng, 1.f / std::sqrt(float(cols)));
    if (t == DType::BF16) {
      for (float& x : f32) {
        bf16.push_back(f32_to_bf16(x));
        x = bf16_to_f32(bf16.back());  // the fp32 copy holds the same values
      }
      view = {bf16.data(), t, rows, cols};
    } else {
      view = {f32.data(), t, rows, cols};
    }
  }
};

TEST(LatentAttention, DecompressedMatchesTwin) {
  std::mt19937 rng(5);
  Context ref_ctx{nullptr, &scalar_kernels()};
  // Weights F32/BF16 x cache F32/BF16; odd widths, and the real model's even ones scaled down.
  struct Dims {
    int64_t lat, dr, dk, dv;
  };
  for (auto [dims, t, dt] : {std::tuple{Dims{33, 7, 13, 11}, DType::F32, DType::F32},
                             std::tuple{Dims{33, 7, 13, 11}, DType::BF16, DType::F32},
                             std::tuple{Dims{33, 7, 13, 11}, DType::F32, DType::BF16},
                             std::tuple{Dims{33, 7, 13, 11}, DType::BF16, DType::BF16},
                             std::tuple{Dims{64, 16, 32, 32}, DType::BF16, DType::BF16}})
    for (const Shape& sh : shapes()) {
      const int64_t lat = dims.lat, dr = dims.dr, dk = dims.dk, dv = dims.dv, kv_dim = lat + dr;
      KvWeight w(sh.H * (dk + dv), lat, t, rng);
      Cache cache(sh.ctx0 + sh.n_q, kv_dim, kPageRows, rng);
      const int64_t ldq = sh.H * (dk + dr) + 2, ldo = sh.H * dv + 3;
      std::vector<float> q = randn(size_t(sh.n_q * ldq), rng, 3.f);
      LatentDecompArgs a;
      a.n_q = sh.n_q;
      a.H = sh.H;
      a.lat = lat;
      a.dr = dr;
      a.dk = dk;
      a.dv = dv;
      a.w_kv = &w.view;
      a.q = q.data();
      a.ldq = ldq;
      a.scale = 1.f / std::sqrt(float(dk + dr));
      a.ctx0 = sh.ctx0;
      a.pages = cache.of(dt);
      a.cache_dtype = dt;
      a.page_rows = kPageRows;
      a.ldo = ldo;
      std::vector<float> want(size_t(sh.n_q * ldo), 0.f);
      a.out = want.data();
      latent_attention_decompressed_reference(ref_ctx, a);
      const float tol = tolerance(dt, 4.f);  // values W_V c: about unit variance
      for (Isa isa : isas())
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          Context ctx{&pool, &table(isa)};
          const int64_t max_q = sh.n_q + 5;  // a workspace sized for more queries than this call
          std::vector<float> scratch(latent_attention_decompressed_scratch_floats(max_q, sh.H, lat, dk, dr, dv, threads));
          std::vector<float> got(want.size(), 0.f);  // the padding of each row must stay 0
          a.out = got.data();
          a.scratch = scratch.data();
          a.scratch_floats = scratch.size();
          latent_attention_decompressed(ctx, a);
          EXPECT_LE(max_abs_diff(want, got), tol)
              << isa_name(isa) << " weights " << dtype_name(t) << " cache " << dtype_name(dt) << " lat " << lat
              << " threads " << threads << " H " << sh.H << " n_q " << sh.n_q << " ctx0 " << sh.ctx0;
        }
    }
}

// The two forms are the same math (spec §4.3): absorbing W_K into the query and applying W_V
// to the latent output gives the decompressed result.
TEST(LatentAttention, AbsorbedEqualsDecompressed) {
  std::mt19937 rng(9);
  const int64_t lat = 33, dr = 7, dk = 13, dv = 11, kv_dim = lat + dr, dq = dk + dr;
  const float scale = 1.f / std::sqrt(float(dq));
  const Isa isa = isas().back();
  ThreadPool pool(2);
  Context ctx{&pool, &table(isa)};
  for (const Shape& sh : shapes()) {
    const int64_t H = sh.H, n = sh.n_q;
    KvWeight w(H * (dk + dv), lat, DType::F32, rng);
    Cache cache(sh.ctx0 + n, kv_dim, kPageRows, rng);
    std::vector<float> q = randn(size_t(n * H * dq), rng, 3.f);

    LatentDecompArgs d;
    d.n_q = n;
    d.H = H;
    d.lat = lat;
    d.dr = dr;
    d.dk = dk;
    d.dv = dv;
    d.w_kv = &w.view;
    d.q = q.data();
    d.ldq = H * dq;
    d.scale = scale;
    d.ctx0 = sh.ctx0;
    d.pages = cache.of(DType::F32);
    d.page_rows = kPageRows;
    d.ldo = H * dv;
    std::vector<float> dec(size_t(n * H * dv));
    d.out = dec.data();
    std::vector<float> s1(latent_attention_decompressed_scratch_floats(n, H, lat, dk, dr, dv, 2));
    d.scratch = s1.data();
    d.scratch_floats = s1.size();
    latent_attention_decompressed(ctx, d);

    // q̂ = [W_K(h)ᵀ q_k ; q_r] · scale
    std::vector<float> qa(size_t(n * H * kv_dim), 0.f);
    for (int64_t i = 0; i < n; i++)
      for (int64_t h = 0; h < H; h++) {
        const float* qi = q.data() + (i * H + h) * dq;
        float* o = qa.data() + (i * H + h) * kv_dim;
        for (int64_t r = 0; r < dk; r++)
          for (int64_t j = 0; j < lat; j++) o[j] += qi[r] * w.f32[size_t((h * (dk + dv) + r) * lat + j)] * scale;
        for (int64_t j = 0; j < dr; j++) o[lat + j] = qi[dk + j] * scale;
      }
    LatentAttnArgs a;
    a.n_q = n;
    a.H = H;
    a.kv_dim = kv_dim;
    a.v_dim = lat;
    a.q = qa.data();
    a.ctx0 = sh.ctx0;
    a.pages = cache.of(DType::F32);
    a.page_rows = kPageRows;
    std::vector<float> latent(size_t(n * H * lat));
    a.out = latent.data();
    std::vector<float> s2(latent_attention_absorbed_scratch_floats(H, kv_dim, lat, 2));
    a.scratch = s2.data();
    a.scratch_floats = s2.size();
    latent_attention_absorbed(ctx, a);
    std::vector<float> abs(dec.size(), 0.f);
    for (int64_t i = 0; i < n; i++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t e = 0; e < dv; e++)
          for (int64_t j = 0; j < lat; j++)
            abs[size_t((i * H + h) * dv + e)] +=
                w.f32[size_t((h * (dk + dv) + dk + e) * lat + j)] * latent[size_t((i * H + h) * lat + j)];
    EXPECT_LE(max_abs_diff(dec, abs), 2e-5f) << "H " << H << " n_q " << n << " ctx0 " << sh.ctx0;
  }
}

TEST(LatentAttention, TooSmallScratchIsAnError) {
  std::mt19937 rng(1);
  Cache cache(10, 8, kPageRows, rng);
  std::vector<float> q(8), out(4), scratch(4);
  LatentAttnArgs a;
  a.n_q = 1;
  a.H = 1;
  a.kv_dim = 8;
  a.v_dim = 4;
  a.q = q.data();
  a.ctx0 = 9;
  a.pages = cache.of(DType::F32);
  a.page_rows = kPageRows;
  a.out = out.data();
  a.scratch = scratch.data();
  a.scratch_floats = scratch.size();
  Context ctx{nullptr, &scalar_kernels()};
  EXPECT_THROW(latent_attention_absorbed(ctx, a), Error);
}

}  // namespace
}  // namespace kl
