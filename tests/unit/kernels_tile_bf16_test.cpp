// The bf16 tile GEMM and its packers (kernels/tile_ops.h) against their scalar twins, on every
// fast kernel table this CPU runs: NEON (AArch64), AVX2, AVX-512 with vdpbf16ps (AVX512_BF16) and the AVX-512
// table without it (widening to fp32), built from this CPU's features with AVX512_BF16 masked
// off. The GEMM over awkward shapes (rows and columns around the register tiles, K up to 576),
// strided operands whose padding holds NaN bf16 (to prove it is never read), plain and
// accumulating with and without row_scale; it may differ from the twin only in summation order.
// The packers bit for bit, with NaN, infinities, signed zeros, denormals and round-to-even ties,
// on contiguous, transposed and strided sources. Finally the packers feeding the GEMM against a
// double-precision product.
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "kernels/kernels.h"
#include "kernels/tile_ops.h"
#include "kernels/tile_ops_impl.h"

namespace kl {
namespace {

struct Table {
  std::string name;
  const Kernels* k;
};

// The fast tables this CPU runs (the scalar table holds the twins themselves).
std::vector<Table> fast_tables() {
  const CpuFeatures cpu = CpuFeatures::detect();
  std::vector<Table> out;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (cpu.supports(isa) && kernels_for(isa, cpu).gemm_bf16 != scalar_kernels().gemm_bf16)
      out.push_back({isa_name(isa) + std::string(isa == Isa::Avx512 && cpu.avx512_bf16 ? " (bf16 dot)" : ""),
                     &kernels_for(isa, cpu)});
  if (cpu.supports(Isa::Avx512) && cpu.avx512_bf16) {
    CpuFeatures base = cpu;
    base.avx512_bf16 = false;
    out.push_back({"avx512 (no bf16 dot)", &kernels_for(Isa::Avx512, base)});
  }
  return out;
}

constexpr uint16_t kNanPad = 0xffc3;   // a negative quiet NaN with a payload
constexpr uint16_t kSentinel = 0xabcd;  // destination padding the packers must not touch

uint16_t bf16_of(float f) { return f32_to_bf16(f); }
float f32_of(uint32_t bits) { return std::bit_cast<float>(bits); }

// A [rows, cols] bf16 matrix with row stride ld; the padding holds kNanPad.
std::vector<uint16_t> random_bf16(int64_t rows, int64_t cols, int64_t ld, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<uint16_t> v(size_t(rows * ld), kNanPad);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) v[size_t(r * ld + c)] = bf16_of(d(rng));
  return v;
}

std::vector<uint16_t> abs_bf16(std::vector<uint16_t> v) {
  for (uint16_t& x : v) x &= 0x7fff;
  return v;
}

// One gemm_bf16 call's random operands: A [M, K] and B (K / 2 row pairs) with NaN padding, a
// row_scale and a C [M, ldc] of normals.
struct Bf16Case {
  int64_t M, N, K, lda, ldb, ldc;
  std::vector<uint16_t> a, b;
  std::vector<float> scale, c0;
  Bf16Case(int64_t M_, int64_t N_, int64_t K_, int64_t lda_, int64_t ldb_, int64_t ldc_, std::mt19937& rng)
      : M(M_), N(N_), K(K_), lda(lda_), ldb(ldb_), ldc(ldc_), a(random_bf16(M, K, lda, rng)),
        b(random_bf16(K / 2, 2 * N, ldb, rng)), scale(static_cast<size_t>(M)), c0(static_cast<size_t>(M * ldc)) {
    std::normal_distribution<float> d(0.f, 1.f);
    for (float& x : scale) x = d(rng);
    for (float& x : c0) x = d(rng);
  }
  // C = A·B (c, accumulate and row_scale left to the caller).
  GemmBf16Args args() const {
    GemmBf16Args g;
    g.M = M, g.N = N, g.K = K;
    g.a = a.data(), g.lda = lda, g.b = b.data(), g.ldb = ldb, g.ldc = ldc;
    return g;
  }
};

TEST(TileBf16, TablesHoldTheBf16Ops) {
  const CpuFeatures cpu = CpuFeatures::detect();
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (!cpu.supports(isa)) continue;
    const Kernels& k = kernels_for(isa, cpu);
    EXPECT_TRUE(k.gemm_bf16 && k.pack_bf16_rows && k.pack_bf16_pairs && k.interleave_bf16_pairs) << isa_name(isa);
  }
#if defined(KL_HAVE_X86_KERNELS)
  if (cpu.supports(Isa::Avx512)) {
    EXPECT_EQ(kernels_for(Isa::Avx512, cpu).gemm_bf16, cpu.avx512_bf16 ? &avx512::gemm_bf16 : &avx512::gemm_bf16_nodot);
    CpuFeatures base = cpu;
    base.avx512_bf16 = false;
    EXPECT_EQ(kernels_for(Isa::Avx512, base).gemm_bf16, &avx512::gemm_bf16_nodot);
  }
#endif
}

TEST(TileBf16, GemmMatchesScalarTwin) {
  std::mt19937 rng(5);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  const Kernels& ref = scalar_kernels();
  for (int64_t M : {1, 5, 7, 8, 9, 13, 32, 64, 128})
    for (int64_t N : {1, 15, 16, 17, 31, 32, 33, 64, 65, 130, 512})
      for (int64_t K : {0, 2, 64, 128, 576, 200})
        for (int mode = 0; mode < 3; mode++) {  // 0: C = A·B, 1: C += A·B, 2: C = row_scale·C + A·B
          // Padding on every operand: A rows, B row pairs and C rows are wider than used.
          const Bf16Case cs(M, N, K, K + 6, 2 * N + 10, N + 3, rng);
          const int64_t ldc = cs.ldc;
          const std::vector<float>& scale = cs.scale;
          const std::vector<float>& c0 = cs.c0;
          GemmBf16Args g = cs.args();
          g.accumulate = mode > 0;
          g.row_scale = mode == 2 ? scale.data() : nullptr;
          std::vector<float> want = c0;
          g.c = want.data();
          ref.gemm_bf16(g);

          // The error bound: Σ_k |a_k·b_k| (+ |row_scale·c|), from the twin on |A|, |B|.
          const std::vector<uint16_t> a_abs = abs_bf16(cs.a), b_abs = abs_bf16(cs.b);
          std::vector<float> bound(size_t(M * ldc));
          GemmBf16Args ga = g;
          ga.a = a_abs.data(), ga.b = b_abs.data(), ga.c = bound.data(), ga.accumulate = false, ga.row_scale = nullptr;
          ref.gemm_bf16(ga);
          for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
              const float keep = mode == 2 ? scale[size_t(m)] : mode == 1 ? 1.f : 0.f;
              bound[size_t(m * ldc + n)] += std::fabs(keep * c0[size_t(m * ldc + n)]);
            }

          for (const Table& t : tables) {
            std::vector<float> got = c0;
            g.c = got.data();
            t.k->gemm_bf16(g);
            int bad = 0;
            for (int64_t m = 0; m < M; m++)
              for (int64_t n = 0; n < ldc; n++) {
                const size_t i = size_t(m * ldc + n);
                if (n >= N) {  // C's padding is untouched
                  if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(c0[i]) && bad++ < 3)
                    ADD_FAILURE() << t.name << " wrote C padding at m " << m << " n " << n;
                  continue;
                }
                const float tol = 1e-5f * bound[i] + 1e-30f;
                if (!(std::fabs(got[i] - want[i]) <= tol) && bad++ < 3)
                  ADD_FAILURE() << t.name << " M " << M << " N " << N << " K " << K << " mode " << mode << " at m "
                                << m << " n " << n << ": " << got[i] << " vs twin " << want[i] << " (tol " << tol
                                << ")";
              }
          }
        }
}

// The prefetch hint changes nothing in C, whatever it covers: nothing, less than the product's
// steps, about as much, or many lines per step (and an unaligned start and length).
TEST(TileBf16, PrefetchHintLeavesTheProductUnchanged) {
  std::mt19937 rng(6);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  const std::vector<uint16_t> far = random_bf16(1, 1 << 20, 1 << 20, rng);  // 2 MiB to hint at
  for (auto [M, N, K] : {std::array<int64_t, 3>{128, 32, 576}, {32, 512, 128}, {7, 33, 10}, {5, 17, 0}})
    for (int64_t bytes : {int64_t(0), int64_t(100), int64_t(73000), int64_t(2 << 20) - 3}) {
      const Bf16Case cs(M, N, K, K + 2, 2 * N + 4, N + 1, rng);
      GemmBf16Args g = cs.args();
      g.accumulate = true, g.row_scale = cs.scale.data();
      for (const Table& t : tables) {
        std::vector<float> plain = cs.c0, hinted = cs.c0;
        g.c = plain.data();
        g.prefetch = nullptr, g.prefetch_bytes = 0;
        t.k->gemm_bf16(g);
        g.c = hinted.data();
        g.prefetch = reinterpret_cast<const char*>(far.data()) + 3, g.prefetch_bytes = bytes;
        t.k->gemm_bf16(g);
        for (size_t i = 0; i < plain.size(); i++)
          ASSERT_EQ(std::bit_cast<uint32_t>(plain[i]), std::bit_cast<uint32_t>(hinted[i]))
              << t.name << " M " << M << " N " << N << " K " << K << " hint " << bytes << " bytes, at " << i;
      }
    }
}

// fp32 values that exercise the rounding: specials, ties, carries into the exponent.
std::vector<float> tricky_floats() {
  std::vector<float> v;
  for (uint32_t bits : {
           0x00000000u, 0x80000000u,              // ±0
           0x7f800000u, 0xff800000u,              // ±inf
           0x7fc00000u, 0xffc00000u,              // quiet NaNs
           0x7f800001u, 0xff800001u,              // signalling NaNs (payload only in the low half)
           0x7fa00000u, 0x7f80ffffu, 0xffffffffu, // NaNs with payloads, all ones
           0x00000001u, 0x80000001u, 0x007fffffu, 0x00008000u, 0x00018000u,  // denormals
           0x00800000u, 0x80800000u,              // smallest normals
           0x7f7fffffu, 0xff7fffffu,              // largest finite: rounds to ±inf
           0x7f7f7fffu, 0x7f7f8000u,              // just below / at the tie under the largest bf16
           0x3f7fffffu, 0xbf7fffffu,              // round up across an exponent boundary
           0x3f808000u, 0x3f818000u,              // ties: to even (down), to even (up)
           0x3f808001u, 0x3f807fffu,              // just above / below a tie
           0x3f800000u, 0xc0490fdbu, 0x4b7fffffu, 0x3effffffu}) {
    v.push_back(f32_of(bits));
  }
  return v;
}

// A strided fp32 source X[r, c] = buf[r·rs + c·cs] of rows x cols, every element of buf filled
// (padding included) from random normals with tricky values mixed in.
std::vector<float> tricky_source(int64_t n, std::mt19937& rng) {
  const std::vector<float> tricky = tricky_floats();
  std::normal_distribution<float> d(0.f, 1.f);
  std::uniform_int_distribution<size_t> pick(0, tricky.size() - 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); i++) {
    // Random fp32 with random low bits (to hit the rounding), every third one a tricky value.
    v[i] = i % 3 == 0 ? tricky[pick(rng)] : f32_of(std::bit_cast<uint32_t>(d(rng)) ^ uint32_t(rng() & 0x1ffff));
  }
  return v;
}

struct Layout {
  const char* name;
  int64_t rs, cs, size;  // strides and buffer length for a rows x cols source
};

std::vector<Layout> layouts(int64_t rows, int64_t cols) {
  return {
      {"row-major", cols + 3, 1, rows * (cols + 3)},
      {"column-major", 1, rows + 5, cols * (rows + 5)},
      {"strided", 2 * cols + 1, 2, rows * (2 * cols + 1)},
  };
}

const std::vector<int64_t> kPackSizes = {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 47, 64, 65, 130};

TEST(TileBf16, PackRowsMatchesScalarTwinBitForBit) {
  std::mt19937 rng(9);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  for (int64_t rows : kPackSizes)
    for (int64_t cols : kPackSizes)
      for (const Layout& l : layouts(rows, cols)) {
        const std::vector<float> src = tricky_source(l.size, rng);
        PackBf16Args p;
        p.src = src.data(), p.rows = rows, p.cols = cols, p.rs = l.rs, p.cs = l.cs;
        p.ldd = cols + cols % 2 + 7;
        std::vector<uint16_t> want(size_t(rows * p.ldd), kSentinel);
        p.dst = want.data();
        scalar_kernels().pack_bf16_rows(p);
        for (const Table& t : tables) {
          std::vector<uint16_t> got(want.size(), kSentinel);
          p.dst = got.data();
          t.k->pack_bf16_rows(p);
          EXPECT_EQ(got, want) << t.name << " rows " << rows << " cols " << cols << " " << l.name;
        }
      }
}

TEST(TileBf16, PackPairsMatchesScalarTwinBitForBit) {
  std::mt19937 rng(10);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  for (int64_t rows : kPackSizes)
    for (int64_t cols : kPackSizes)
      for (const Layout& l : layouts(rows, cols)) {
        const std::vector<float> src = tricky_source(l.size, rng);
        PackBf16Args p;
        p.src = src.data(), p.rows = rows, p.cols = cols, p.rs = l.rs, p.cs = l.cs;
        p.ldd = 2 * cols + 6;
        std::vector<uint16_t> want(size_t((rows + 1) / 2 * p.ldd), kSentinel);
        p.dst = want.data();
        scalar_kernels().pack_bf16_pairs(p);
        for (const Table& t : tables) {
          std::vector<uint16_t> got(want.size(), kSentinel);
          p.dst = got.data();
          t.k->pack_bf16_pairs(p);
          EXPECT_EQ(got, want) << t.name << " rows " << rows << " cols " << cols << " " << l.name;
        }
      }
}

TEST(TileBf16, InterleaveMatchesScalarTwinBitForBit) {
  std::mt19937 rng(11);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  for (int64_t rows : kPackSizes)
    for (int64_t cols : kPackSizes) {
      const int64_t rs = cols + 9;
      std::vector<uint16_t> src(size_t(rows * rs));
      for (uint16_t& x : src) x = uint16_t(rng());  // every bit pattern, NaNs included
      InterleaveBf16Args p;
      p.src = src.data(), p.rows = rows, p.cols = cols, p.rs = rs;
      p.ldd = 2 * cols + 4;
      std::vector<uint16_t> want(size_t((rows + 1) / 2 * p.ldd), kSentinel);
      p.dst = want.data();
      scalar_kernels().interleave_bf16_pairs(p);
      for (const Table& t : tables) {
        std::vector<uint16_t> got(want.size(), kSentinel);
        p.dst = got.data();
        t.k->interleave_bf16_pairs(p);
        EXPECT_EQ(got, want) << t.name << " rows " << rows << " cols " << cols;
      }
    }
}

// The rounding itself on every tricky value and on 2^20 random bit patterns, through one long
// row (the vector path, then the tail) and one long column pair (rows of two: cs == 1 too).
TEST(TileBf16, PackRoundsAsF32ToBf16) {
  std::mt19937 rng(12);
  const std::vector<Table> tables = fast_tables();
  if (tables.empty()) GTEST_SKIP() << "no fast kernel table on this CPU";
  std::vector<float> v = tricky_floats();
  for (int i = 0; i < (1 << 20) + 5; i++) v.push_back(f32_of(uint32_t(rng())));
  const int64_t n = int64_t(v.size());
  std::vector<uint16_t> want(size_t(n + 1), kSentinel);
  for (int64_t i = 0; i < n; i++) want[size_t(i)] = f32_to_bf16(v[size_t(i)]);
  if (n % 2) want[size_t(n)] = 0;
  for (const Table& t : tables) {
    std::vector<uint16_t> got(size_t(n + 1), kSentinel);
    PackBf16Args p;
    p.src = v.data(), p.rows = 1, p.cols = n, p.rs = n, p.cs = 1, p.dst = got.data(), p.ldd = n + 1;
    t.k->pack_bf16_rows(p);
    EXPECT_EQ(got, want) << t.name << " pack_bf16_rows";
    // The same values as X[r, 0] of a one-column matrix: a pair-packed column of n rows.
    std::vector<uint16_t> pairs(size_t(n + 1), kSentinel);
    p.rows = n, p.cols = 1, p.rs = 1, p.cs = n, p.dst = pairs.data(), p.ldd = 2;
    t.k->pack_bf16_pairs(p);
    EXPECT_EQ(pairs, want) << t.name << " pack_bf16_pairs";
  }
}

// pack_bf16_rows (A) and pack_bf16_pairs (B) give gemm_bf16 its operands: the product of any
// fp32 A and B (also with odd K, and read transposed) is that of their bf16 roundings, summed in
// fp32: against a double-precision product of the rounded values.
TEST(TileBf16, PackedOperandsFeedGemm) {
  std::mt19937 rng(13);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<Table> tables = fast_tables();
  tables.push_back({"scalar", &scalar_kernels()});
  for (int64_t M : {1, 7, 64, 128})
    for (int64_t N : {1, 17, 64, 130})
      for (int64_t K : {1, 63, 128, 576})
        for (bool transposed : {false, true}) {
          // A [M, K] and B [K, N] in fp32, row-major or (transposed) column-major.
          std::vector<float> a(size_t(M * K)), b(size_t(K * N));
          for (float& x : a) x = d(rng);
          for (float& x : b) x = d(rng);
          auto A = [&](int64_t m, int64_t k) { return transposed ? a[size_t(k * M + m)] : a[size_t(m * K + k)]; };
          auto B = [&](int64_t k, int64_t n) { return transposed ? b[size_t(n * K + k)] : b[size_t(k * N + n)]; };
          const int64_t K2 = K + K % 2, lda = K2 + 4, ldb = 2 * N + 2;
          std::vector<double> want(size_t(M * N)), bound(size_t(M * N));
          for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
              double s = 0, sa = 0;
              for (int64_t k = 0; k < K; k++) {
                const double p = double(bf16_to_f32(f32_to_bf16(A(m, k)))) * bf16_to_f32(f32_to_bf16(B(k, n)));
                s += p;
                sa += std::fabs(p);
              }
              want[size_t(m * N + n)] = s;
              bound[size_t(m * N + n)] = sa;
            }
          for (const Table& t : tables) {
            std::vector<uint16_t> a16(size_t(M * lda), kNanPad), b16(size_t(K2 / 2 * ldb), kNanPad);
            PackBf16Args pa;
            pa.src = a.data(), pa.rows = M, pa.cols = K, pa.dst = a16.data(), pa.ldd = lda;
            pa.rs = transposed ? 1 : K, pa.cs = transposed ? M : 1;
            t.k->pack_bf16_rows(pa);
            PackBf16Args pb;
            pb.src = b.data(), pb.rows = K, pb.cols = N, pb.dst = b16.data(), pb.ldd = ldb;
            pb.rs = transposed ? 1 : N, pb.cs = transposed ? K : 1;
            t.k->pack_bf16_pairs(pb);
            std::vector<float> c(size_t(M * N), std::nanf(""));
            GemmBf16Args g;
            g.M = M, g.N = N, g.K = K2, g.a = a16.data(), g.lda = lda, g.b = b16.data(), g.ldb = ldb;
            g.c = c.data(), g.ldc = N;
            t.k->gemm_bf16(g);
            int bad = 0;
            for (size_t i = 0; i < c.size(); i++)
              if (!(std::fabs(double(c[i]) - want[i]) <= 1e-5 * bound[i] + 1e-30) && bad++ < 3)
                ADD_FAILURE() << t.name << " M " << M << " N " << N << " K " << K << (transposed ? " transposed" : "")
                              << " at " << i << ": " << c[i] << " vs " << want[i];
          }
        }
}

}  // namespace
}  // namespace kl
