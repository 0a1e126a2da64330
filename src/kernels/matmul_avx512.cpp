// AVX-512 matmul kernels: y[t, r] = Σ_i W[r, i]·x[t, i] (spec: the scalar twins in
// matmul_scalar.cpp). Compiled with the AVX-512 flags; reached only through dispatch.cpp after
// the CPU check.
//
// Shape of the work: W rows and x rows both run along i, so every output is a dot product. A
// tile of R rows x T tokens keeps R·T accumulators of 16 lanes in registers; each step loads R
// weight vectors (widened to fp32) and T activation vectors and does R·T FMAs. Lanes are summed
// once at the end of the row.
// - Decode (n <= 6, one token tile): bandwidth bound. Each weight byte is read once, with software
//   prefetch along the call's bytes (kernels/stream_prefetch.h); for n = 1 two accumulators per row.
// - Prompts: compute bound. 4 rows x up to 6 tokens (24 accumulators + 4 weights of the 32
//   registers); a block of rows that fits in L2 is reused by every token tile.
// - bf16 activations (matmul_rows_bf16_dot, opt-in): the same tiling over vdpbf16ps, 32 columns
//   per instruction, with x rounded to bf16 into a stack buffer.
// - Long prompts (n >= kGemmMinTokens = 96): a packed GEMM in broadcast form instead (W's rows
//   transposed into fp32 or bf16-pair panels per K-block, 6 tokens x 64 columns register tiles;
//   see "prompts: packed GEMM" below): ~92-95% of the FMA peak against ~82-85% for the tiles.

// GCC 12 warns about the `__Y = __Y` self-initialisation inside its own _mm512_undefined_*()
// helpers (GCC bug 105593, fixed in 13); the warning points into the header, not at this code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/row_tiles.h"
#include "kernels/stream_prefetch.h"
#include "kernels/x86_impl.h"

namespace kl::avx512 {

namespace {

// The tile code must be inlined whole: an accumulator array that escapes into a call (a lambda
// or store helper the compiler chose not to inline) lives in memory instead of registers.
#define KL_INLINE inline __attribute__((always_inline))

constexpr int kRows = 4;    // rows per tile
constexpr int kTokens = 6;  // most tokens per tile (4·6 accumulators)
// Weight bytes of one row block: half of a 512 KiB..2 MiB L2, leaving the rest for the x tiles.
constexpr size_t kRowBlockBytes = 256 * 1024;
// From this many tokens on, a call runs as a packed GEMM (see the prompts section below): below,
// packing W costs more than the GEMM's better FMA rate wins (measured on Zen 5: break-even near
// n = 64-96; +10-25% at n = 128-512). The bf16 dot path switches at the same n, and from n > 6
// on already when its stack buffer of x would hold less than one token tile (K > 5461).
constexpr int64_t kGemmMinTokens = 96;

// Weight formats: 16 consecutive weights at byte address p, widened to fp32. load_tail reads
// only the lanes set in m (masked loads never touch the others, so row ends are not over-read).
struct F32W {
  static constexpr size_t kSize = 4;
  static KL_INLINE __m512 load(const char* p) { return _mm512_loadu_ps(p); }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
  }
};
struct BF16W {
  static constexpr size_t kSize = 2;
  // bf16 is the top half of an fp32: widen to 32 bits and shift left by 16 (exact).
  static KL_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static KL_INLINE __m512 load(const char* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct F16W {
  static constexpr size_t kSize = 2;
  static KL_INLINE __m512 load(const char* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static KL_INLINE __m512 load_tail(const char* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};

// {Σa, Σb, Σc, Σd}: the lane sums of four vectors in one register (y[t, r..r+3] is contiguous).
KL_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Writes the R x T tile of lane sums: y[t·ldy + r] = Σ lanes of acc[r][t].
template <int R, int T>
KL_INLINE void store_tile(__m512 (&acc)[R][T], float* y, int64_t ldy) {
  if constexpr (R == 4) {
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
      _mm_storeu_ps(y + t * ldy, hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

using stream_prefetch::Stream;

// One tile over all columns: y[t, r] for R rows (from w, ldw bytes apart) x T tokens. U
// accumulators per (row, token) when R·T alone is too few chains to hide the FMA latency.
template <class W, int R, int T, int U>
KL_INLINE void tile(const char* w, size_t ldw, const float* x, int64_t ldx, int64_t cols, float* y,
                    int64_t ldy, const Stream& stream) {
  __m512 acc[U][R][T];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm512_setzero_ps();

  auto step = [&](int u, int64_t i, auto load) __attribute__((always_inline)) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = load(w + r * ldw + size_t(i) * W::kSize);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      __m512 xv = load.x(x + t * ldx + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[u][r][t] = _mm512_fmadd_ps(wv[r], xv, acc[u][r][t]);
    }
  };
  struct Full {
    KL_INLINE __m512 operator()(const char* p) const { return W::load(p); }
    KL_INLINE __m512 x(const float* p) const { return _mm512_loadu_ps(p); }
  };
  struct Tail {
    __mmask16 m;
    KL_INLINE __m512 operator()(const char* p) const { return W::load_tail(p, m); }
    KL_INLINE __m512 x(const float* p) const { return _mm512_maskz_loadu_ps(m, p); }
  };

  // The tile's R rows are consumed side by side: R·16·U weights per step, read as one stretch of
  // the call's bytes that starts at row 0 of the tile and moves R times as fast as a row.
  const char* ahead = w;
  int64_t i = 0;
  for (; i + 16 * U <= cols; i += 16 * U) {
    if (stream.end) {
      stream_prefetch::ahead<R * 16 * U * W::kSize, R>(ahead, stream);
      ahead += R * 16 * U * W::kSize;
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) step(u, i + 16 * u, Full{});
  }
  for (; i + 16 <= cols; i += 16) step(0, i, Full{});
  if (i < cols) step(0, i, Tail{__mmask16((1u << (cols - i)) - 1)});

#pragma GCC unroll 4
  for (int u = 1; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[u][r][t]);
  store_tile<R, T>(acc[0], y, ldy);
}

// Rows [r0, r1) x tokens [t0, t0 + T), in tiles of kRows rows; one token (decode) reads the rows
// one after another, four accumulators each: the call's bytes then stream in address order, which
// the hardware prefetchers follow far better than the four interleaved row streams of a 4-row
// tile (rows are only a few KiB, so each such stream is short). Measured on Zen 5, 2 threads, a
// decode step's weights: 63-69 GB/s against 53-56 for 4-row tiles while a read probe gave ~85 GB/s.
// Rows longer than row_tiles::kLongRowCols go two at a time, so x is loaded once for both.
template <int T>
constexpr int kTileRows = T == 1 ? 1 : kRows;
template <int T>
constexpr int kTileUnroll = T == 1 ? 4 : 1;

template <class W>
void rows_x_tokens(int T, const MatmulArgs& a, int64_t r0, int64_t r1, int64_t t0,
                   const Stream& stream) {
  const char* w = static_cast<const char*>(a.w->data);
  const size_t ldw = a.w->row_bytes();
  const float* x = a.x + t0 * a.ldx;
  float* y = a.y + t0 * a.ldy;
  if (T == 1 && a.w->cols > row_tiles::kLongRowCols) {  // long rows: 2 at a time (row_tiles.h)
    row_tiles::for_row_tiles<2>(r0, r1, [&]<int Rn>(int64_t r) {
      tile<W, Rn, 1, 4>(w + size_t(r) * ldw, ldw, x, a.ldx, a.w->cols, y + r, a.ldy, stream);
    });
    return;
  }
  row_tiles::with_count<kTokens>(T, [&]<int Tn>() {
    row_tiles::for_row_tiles<kTileRows<Tn>>(r0, r1, [&]<int Rn>(int64_t r) {
      tile<W, Rn, Tn, kTileUnroll<Tn>>(w + size_t(r) * ldw, ldw, x, a.ldx, a.w->cols, y + r, a.ldy, stream);
    });
  });
}

KL_INLINE __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// ---- prompts: packed GEMM (n >= kGemmMinTokens) ----
//
// The call's rows are the columns of C = x·Wᵀ. Per chunk of kChunkRows rows and K-block, W's
// block is widened to fp32 and transposed (16 x 16 blocks in registers) into panels of up to 64
// columns, P[k][j] = W[j0 + j, k0 + k]; the register tiles then run over every token: MR tokens x
// NV vectors of 16 columns, each step NV panel loads, MR broadcasts of x[t, k], MR·NV FMAs. The
// first K-block stores y, the later ones add to it. A 64 x 256 fp32 panel is 64 KiB (L2; a
// 32 KiB one for L1 measured no faster); the x block [n, 256] is read in place (a contiguous
// copy measured slower).
// The bf16 dot variant packs W's pairs without widening (P[k/2][j] = the 32-bit pair of row j)
// and rounds x's block to bf16 once per chunk and K-block.

// 6 tokens x 4 vectors: 24 accumulators + 4 panel vectors + a broadcast (as tile_ops' gemm_f32).
constexpr int kPanelVecs = 4;
constexpr int64_t kPanelCols = 16 * kPanelVecs;
constexpr int64_t kChunkRows = 128;  // rows (panels) packed per K-block: 128 KiB of fp32 panels
constexpr int64_t kKBlock = 256;     // fp32 panel: 64 x 256 x 4 B = 64 KiB (L2)
constexpr int64_t kKBlockDot = 256;  // bf16 pairs: 128 pairs x 64 x 4 B = 32 KiB
constexpr int64_t kXbTokens = 256;   // tokens of x rounded at a time: 256 x 256 x 2 B = 128 KiB

KL_INLINE __mmask16 lanes16(int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}
KL_INLINE __mmask32 lanes32(int64_t n) {
  return n <= 0 ? __mmask32(0) : n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1);
}

// In-register transpose of a 16 x 16 block of 32-bit values: r[i] lane j <- r[j] lane i.
KL_INLINE void transpose16(__m512i (&r)[16]) {
  __m512i t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    const __m512i w0 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i w1 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i w3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_shuffle_i32x4(w0, w2, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_i32x4(w0, w2, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_i32x4(w1, w3, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_i32x4(w1, w3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// r[q] = the 32-bit bf16 pairs qq + q of rows 0..nr-1 (lane i: row i; rows past nr and values
// past column kc are 0): rows from wj (column k0 of row 0), ldw bytes apart, transposed in
// registers. Reads nothing past column kc.
KL_INLINE void load_pairs_transposed(const char* wj, size_t ldw, int64_t nr, int64_t qq, int64_t kc,
                                     __m512i (&r)[16]) {
  const char* src = wj + size_t(qq) * 4;
  if (2 * qq + 32 <= kc) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
      r[i] = i < nr ? _mm512_loadu_si512(src + size_t(i) * ldw) : _mm512_setzero_si512();
  } else {
    const __mmask32 m = lanes32(kc - 2 * qq);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
      r[i] = i < nr ? _mm512_maskz_loadu_epi16(m, src + size_t(i) * ldw) : _mm512_setzero_si512();
  }
  transpose16(r);
}

// p[k·ldp + j] = W[j, k0 + k] (fp32) for k < kc, j < nrows; 0 for nrows <= j < ldp (ldp is a
// multiple of 16). w: row 0 of the panel, ldw bytes per row. Reads nothing past column k0 + kc.
template <class W>
void pack_panel(const char* w, size_t ldw, int64_t nrows, int64_t k0, int64_t kc, float* p,
                int64_t ldp) {
  if constexpr (std::is_same_v<W, BF16W>) {
    // bf16: transpose 32-bit pairs (16 rows x 32 k per 16 x 16 block, half the shuffles of a
    // widened transpose), then split each pair: even k shifted up, odd k with the low half cleared.
    const int64_t pairs = (kc + 1) / 2;
    const __m512i hi_half = _mm512_set1_epi32(int32_t(0xffff0000u));
    for (int64_t j0 = 0; j0 < ldp; j0 += 16) {
      const int64_t nr = std::min<int64_t>(16, nrows - j0);
      const char* wj = w + size_t(j0) * ldw + size_t(k0) * 2;
      for (int64_t qq = 0; qq < pairs; qq += 16) {
        __m512i r[16];
        load_pairs_transposed(wj, ldw, nr, qq, kc, r);
        float* d = p + 2 * qq * ldp + j0;
        if (2 * qq + 32 <= kc) {
#pragma GCC unroll 16
          for (int i = 0; i < 16; i++) {
            _mm512_store_si512(d + 2 * i * ldp, _mm512_slli_epi32(r[i], 16));
            _mm512_store_si512(d + (2 * i + 1) * ldp, _mm512_and_si512(r[i], hi_half));
          }
        } else {
          const int64_t nk = kc - 2 * qq;
          for (int i = 0; 2 * i < nk; i++) {
            _mm512_store_si512(d + 2 * i * ldp, _mm512_slli_epi32(r[i], 16));
            if (2 * i + 1 < nk)
              _mm512_store_si512(d + (2 * i + 1) * ldp, _mm512_and_si512(r[i], hi_half));
          }
        }
      }
    }
    return;
  }
  for (int64_t j0 = 0; j0 < ldp; j0 += 16) {
    const int64_t nr = std::min<int64_t>(16, nrows - j0);
    const char* wj = w + size_t(j0) * ldw + size_t(k0) * W::kSize;
    for (int64_t kk = 0; kk < kc; kk += 16) {
      __m512i r[16];
      const char* src = wj + size_t(kk) * W::kSize;
      if (kk + 16 <= kc) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
          r[i] = i < nr ? _mm512_castps_si512(W::load(src + size_t(i) * ldw)) : _mm512_setzero_si512();
      } else {
        const __mmask16 m = lanes16(kc - kk);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
          r[i] = i < nr ? _mm512_castps_si512(W::load_tail(src + size_t(i) * ldw, m))
                        : _mm512_setzero_si512();
      }
      transpose16(r);
      float* d = p + kk * ldp + j0;
      const int64_t nk = std::min<int64_t>(16, kc - kk);
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++)
        if (i < nk) _mm512_store_si512(d + i * ldp, r[i]);
    }
  }
}

// y[i, 16j..] = acc[i][j] (first K-block) or += it (later ones); the last vector masked by `last`.
template <int MR, int NV>
KL_INLINE void store_gemm_tile(__m512 (&acc)[MR][NV], float* y, int64_t ldy, __mmask16 last,
                               bool first) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    float* c = y + i * ldy;
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      const __mmask16 m = j + 1 < NV ? __mmask16(0xffff) : last;
      if (!first) acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_maskz_loadu_ps(m, c + 16 * j));
      _mm512_mask_storeu_ps(c + 16 * j, m, acc[i][j]);
    }
  }
}

// y[t, j] (+)= Σ_k x[t, k]·p[k, j] for MR tokens x NV vectors of columns (the last one `last`).
template <int MR, int NV>
void gemm_tile(const float* x, int64_t ldx, const float* p, int64_t kc, float* y, int64_t ldy,
               __mmask16 last, bool first) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++, p += 16 * NV) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) bv[j] = _mm512_load_ps(p + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m512 av = _mm512_set1_ps(x[i * ldx + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  store_gemm_tile<MR, NV>(acc, y, ldy, last, first);
}

// The same over the pair-packed bf16 panel (p[q·16·NV + j] = W's pair q of column j) and x
// rounded to bf16 (xb: ldxb bf16 per token, pairs·2 of them read).
template <int MR, int NV>
void gemm_tile_dot(const uint16_t* xb, int64_t ldxb, const uint32_t* p, int64_t pairs, float* y,
                   int64_t ldy, __mmask16 last, bool first) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();
  for (int64_t q = 0; q < pairs; q++, p += 16 * NV) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) bv[j] = _mm512_load_si512(p + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      int32_t pair;
      std::memcpy(&pair, xb + i * ldxb + 2 * q, 4);
      const __m512bh av = as_bh(_mm512_set1_epi32(pair));
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, as_bh(bv[j]));
    }
  }
  store_gemm_tile<MR, NV>(acc, y, ldy, last, first);
}

using GemmTileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t,
                            __mmask16, bool);
using GemmTileDotFn = void (*)(const uint16_t*, int64_t, const uint32_t*, int64_t, float*,
                               int64_t, __mmask16, bool);

template <int NV, int... I>
constexpr std::array<GemmTileFn, sizeof...(I)> gemm_tiles_for(std::integer_sequence<int, I...>) {
  return {&gemm_tile<I + 1, NV>...};
}
template <int NV, int... I>
constexpr std::array<GemmTileDotFn, sizeof...(I)> gemm_tiles_dot_for(
    std::integer_sequence<int, I...>) {
  return {&gemm_tile_dot<I + 1, NV>...};
}
using TokenSeq = std::make_integer_sequence<int, kTokens>;
// [NV - 1][MR - 1]
constexpr std::array<std::array<GemmTileFn, kTokens>, kPanelVecs> kGemmTiles = {
    gemm_tiles_for<1>(TokenSeq{}), gemm_tiles_for<2>(TokenSeq{}), gemm_tiles_for<3>(TokenSeq{}),
    gemm_tiles_for<4>(TokenSeq{})};
constexpr std::array<std::array<GemmTileDotFn, kTokens>, kPanelVecs> kGemmTilesDot = {
    gemm_tiles_dot_for<1>(TokenSeq{}), gemm_tiles_dot_for<2>(TokenSeq{}),
    gemm_tiles_dot_for<3>(TokenSeq{}), gemm_tiles_dot_for<4>(TokenSeq{})};

// The panels of one chunk: [j0, j0 + width) of the chunk's rows, packed at offset (j0 - c0)·kc.
template <class F>
void for_panels(int64_t c0, int64_t c1, F&& f) {
  for (int64_t j0 = c0; j0 < c1; j0 += kPanelCols) {
    const int64_t width = std::min(kPanelCols, c1 - j0);
    const int nv = int((width + 15) / 16);
    f(j0, width, nv, lanes16(width - 16 * (nv - 1)));
  }
}

template <class W>
__attribute__((noinline)) void gemm_rows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const size_t ldw = w.row_bytes();
  const int64_t K = w.cols;
  alignas(64) float panels[kChunkRows * kKBlock];  // 64 KiB
  auto at = [&](int64_t r) { return static_cast<const char*>(w.data) + size_t(r) * ldw; };
  for (int64_t c0 = r0; c0 < r1; c0 += kChunkRows) {
    const int64_t c1 = std::min(r1, c0 + kChunkRows);
    for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
      const int64_t kc = std::min(kKBlock, K - k0);
      for_panels(c0, c1, [&](int64_t j0, int64_t width, int nv, __mmask16) {
        pack_panel<W>(at(j0), ldw, width, k0, kc, panels + (j0 - c0) * kc, 16 * nv);
      });
      for_panels(c0, c1, [&](int64_t j0, int64_t, int nv, __mmask16 last) {
        const float* p = panels + (j0 - c0) * kc;
        row_tiles::for_token_tiles(a.n, kTokens, [&](int64_t t0, int T) {
          kGemmTiles[size_t(nv - 1)][size_t(T - 1)](a.x + t0 * a.ldx + k0, a.ldx, p, kc,
                                                    a.y + t0 * a.ldy + j0, a.ldy, last, k0 == 0);
        });
      });
    }
  }
}

template <class W>
void matmul_rows(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  if (a.n >= kGemmMinTokens && a.w->cols > 0) {
    gemm_rows<W>(a, r0, r1);
    return;
  }
  // One token tile: every weight byte is read once, from DRAM.
  Stream stream;
  if (a.n <= kTokens) stream.end = static_cast<const char*>(a.w->row(r1));
  const int64_t rb = row_tiles::row_block(a.w->row_bytes(), kRowBlockBytes, kRows);
  row_tiles::for_blocks(r0, r1, rb, a.n, kTokens, [&](int64_t b0, int64_t b1, int64_t t0, int T) {
    rows_x_tokens<W>(T, a, b0, b1, t0, stream);
  });
}

// ---- bf16 activations (vdpbf16ps) ----

// x rounded to bf16, one token per ldxb elements, zero-padded to a multiple of 32 so the dot
// steps never need a mask on x.
constexpr int64_t kXbElems = 32 * 1024;  // 64 KiB of stack: ~14 tokens of 2304 columns

// xb[0..cols) = bf16(x[0..cols)), xb[cols..ldxb) = 0. ldxb is a multiple of 32.
void round_to_bf16(const float* x, int64_t cols, int64_t ldxb, uint16_t* xb) {
  for (int64_t i = 0; i < ldxb; i += 32) {
    __m512 lo, hi;
    if (i + 32 <= cols) {
      lo = _mm512_loadu_ps(x + i);
      hi = _mm512_loadu_ps(x + i + 16);
    } else {
      int64_t rem = std::max<int64_t>(0, cols - i);
      __mmask16 mlo = __mmask16(rem >= 16 ? 0xffff : (1u << rem) - 1);
      __mmask16 mhi = __mmask16(rem >= 32 ? 0xffff : rem > 16 ? (1u << (rem - 16)) - 1 : 0);
      lo = _mm512_maskz_loadu_ps(mlo, x + i);
      hi = _mm512_maskz_loadu_ps(mhi, x + i + 16);
    }
    __m512bh h = _mm512_cvtne2ps_pbh(hi, lo);  // lo in the low 16 lanes
    _mm512_storeu_si512(xb + i, reinterpret_cast<__m512i&>(h));
  }
}

// p[q·ldp + j] = W[j, k0 + 2q], W[j, k0 + 2q + 1] (a 32-bit pair; 0 past k0 + kc) for
// q < (kc + 1) / 2, j < nrows; 0 for nrows <= j < ldp. A 32-bit transpose of W's rows.
void pack_panel_dot(const char* w, size_t ldw, int64_t nrows, int64_t k0, int64_t kc, uint32_t* p,
                    int64_t ldp) {
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t j0 = 0; j0 < ldp; j0 += 16) {
    const int64_t nr = std::min<int64_t>(16, nrows - j0);
    const char* wj = w + size_t(j0) * ldw + size_t(k0) * 2;
    for (int64_t qq = 0; qq < pairs; qq += 16) {
      __m512i r[16];
      load_pairs_transposed(wj, ldw, nr, qq, kc, r);
      uint32_t* d = p + qq * ldp + j0;
      const int64_t nq = std::min<int64_t>(16, pairs - qq);
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++)
        if (i < nq) _mm512_store_si512(d + i * ldp, r[i]);
    }
  }
}

// The GEMM path of matmul_rows_bf16_dot: per chunk and K-block, the pair-packed panels (64 KiB)
// and x's block rounded to bf16 kXbTokens tokens at a time (128 KiB).
__attribute__((noinline)) void gemm_rows_dot(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const WeightView& w = *a.w;
  const size_t ldw = w.row_bytes();
  const int64_t K = w.cols;
  alignas(64) uint32_t panels[kChunkRows * kKBlockDot / 2];
  alignas(64) uint16_t xb[kXbTokens * kKBlockDot];
  auto at = [&](int64_t r) { return static_cast<const char*>(w.data) + size_t(r) * ldw; };
  for (int64_t c0 = r0; c0 < r1; c0 += kChunkRows) {
    const int64_t c1 = std::min(r1, c0 + kChunkRows);
    for (int64_t k0 = 0; k0 < K; k0 += kKBlockDot) {
      const int64_t kc = std::min(kKBlockDot, K - k0);
      const int64_t pairs = (kc + 1) / 2;
      const int64_t ldxb = (kc + 31) / 32 * 32;
      for_panels(c0, c1, [&](int64_t j0, int64_t width, int nv, __mmask16) {
        pack_panel_dot(at(j0), ldw, width, k0, kc, panels + (j0 - c0) * pairs, 16 * nv);
      });
      for (int64_t x0 = 0; x0 < a.n; x0 += kXbTokens) {
        const int64_t nx = std::min(kXbTokens, a.n - x0);
        for (int64_t t = 0; t < nx; t++)
          round_to_bf16(a.x + (x0 + t) * a.ldx + k0, kc, ldxb, xb + t * ldxb);
        for_panels(c0, c1, [&](int64_t j0, int64_t, int nv, __mmask16 last) {
          const uint32_t* p = panels + (j0 - c0) * pairs;
          row_tiles::for_token_tiles(nx, kTokens, [&](int64_t t0, int T) {
            kGemmTilesDot[size_t(nv - 1)][size_t(T - 1)](xb + t0 * ldxb, ldxb, p, pairs,
                                                         a.y + (x0 + t0) * a.ldy + j0, a.ldy,
                                                         last, k0 == 0);
          });
        });
      }
    }
  }
}

template <int R, int T, int U>
KL_INLINE void tile_dot(const char* w, size_t ldw, const uint16_t* xb, int64_t ldxb, int64_t cols,
                        float* y, int64_t ldy, const Stream& stream) {
  __m512 acc[U][R][T];
#pragma GCC unroll 8
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[u][r][t] = _mm512_setzero_ps();

  auto step = [&](int u, int64_t i, auto wload) __attribute__((always_inline)) {
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = wload(w + r * ldw + size_t(i) * 2);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      __m512bh xv = as_bh(_mm512_loadu_si512(xb + t * ldxb + i));
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[u][r][t] = _mm512_dpbf16_ps(acc[u][r][t], as_bh(wv[r]), xv);
    }
  };
  auto full = [](const char* p) __attribute__((always_inline)) { return _mm512_loadu_si512(p); };
  const char* ahead = w;  // as in tile(): the R rows move through the call's bytes together
  int64_t i = 0;
  for (; i + 32 * U <= cols; i += 32 * U) {
    if (stream.end) {
      stream_prefetch::ahead<R * 32 * U * 2, R>(ahead, stream);
      ahead += R * 32 * U * 2;
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) step(u, i + 32 * u, full);
  }
  for (; i + 32 <= cols; i += 32) step(0, i, full);
  if (i < cols) {
    const __mmask32 m = __mmask32((1u << (cols - i)) - 1);
    step(
        0, i, [m](const char* p) __attribute__((always_inline)) {
          return _mm512_maskz_loadu_epi16(m, p);
        });
  }

#pragma GCC unroll 4
  for (int u = 1; u < U; u++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[u][r][t]);
  store_tile<R, T>(acc[0], y, ldy);
}

struct DotArgs {
  const WeightView* w;
  const uint16_t* xb;  // [T, ldxb] bf16
  int64_t ldxb;
  float* y;  // at token t0
  int64_t ldy;
  Stream stream;
};

// As rows_x_tokens, over x in bf16.
void rows_x_tokens_dot(int T, const DotArgs& a, int64_t r0, int64_t r1) {
  const char* w = static_cast<const char*>(a.w->data);
  const size_t ldw = a.w->row_bytes();
  row_tiles::with_count<kTokens>(T, [&]<int Tn>() {
    row_tiles::for_row_tiles<kTileRows<Tn>>(r0, r1, [&]<int Rn>(int64_t r) {
      tile_dot<Rn, Tn, kTileUnroll<Tn>>(w + size_t(r) * ldw, ldw, a.xb, a.ldxb, a.w->cols, a.y + r, a.ldy, a.stream);
    });
  });
}

#undef KL_INLINE

}  // namespace

void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F32W>(a, r0, r1); }
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1) {
  matmul_rows<BF16W>(a, r0, r1);
}
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows<F16W>(a, r0, r1); }

namespace {
// Zen 4 runs a 512-bit load as two 256-bit halves. Measured there (`kernels_bench`, a 1 GiB
// [233016 x 2304] BF16 matvec on 2 threads, x at each offset from a 64-byte boundary, medians):
// x at 0 or 32 bytes streamed 51.0 / 42.7 GB/s while the host read fast and 31.9 / 32.5 while it
// read slowly; at 4-28 or 48 bytes 56.5-60.9 and 33.7-34.6, as fast as the read probe and the
// AVX2 kernel at any offset. The model's activations sit on 64-byte boundaries, so a one-token
// call with x on a 32-byte boundary reads a copy 16 bytes past one (per call of the driver,
// a few KiB against the 256 KiB and more of weights each streams).
constexpr int64_t kShiftMaxCols = 16384;

template <class W>
void matmul_rows_halves(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n != 1 || (reinterpret_cast<uintptr_t>(a.x) & 31) != 0 || a.w->cols > kShiftMaxCols)
    return matmul_rows<W>(a, r0, r1);
  alignas(64) float xs[kShiftMaxCols + 4];
  std::memcpy(xs + 4, a.x, sizeof(float) * size_t(a.w->cols));
  MatmulArgs shifted = a;
  shifted.x = xs + 4;
  matmul_rows<W>(shifted, r0, r1);
}
}  // namespace

void matmul_rows_f32_halves(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows_halves<F32W>(a, r0, r1); }
void matmul_rows_bf16_halves(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows_halves<BF16W>(a, r0, r1); }
void matmul_rows_f16_halves(const MatmulArgs& a, int64_t r0, int64_t r1) { matmul_rows_halves<F16W>(a, r0, r1); }

// x is rounded to bf16 a chunk of tokens at a time into a 64 KiB stack buffer (each call converts
// its tokens once; the rows of the call then reuse them). Only rows wider than kXbElems columns
// need a heap buffer of one token.
void matmul_rows_bf16_dot(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n <= 0 || r1 <= r0) return;
  const int64_t ldxb_full = (a.w->cols + 31) / 32 * 32;
  if (a.w->cols > 0 &&
      (a.n >= kGemmMinTokens || (a.n > kTokens && kXbElems / ldxb_full < kTokens))) {
    gemm_rows_dot(a, r0, r1);
    return;
  }
  const WeightView& w = *a.w;
  const int64_t ldxb = (w.cols + 31) / 32 * 32;
  alignas(64) uint16_t stack_buf[kXbElems];
  std::vector<uint16_t> heap_buf;
  uint16_t* xb = stack_buf;
  int64_t chunk = kXbElems / std::max<int64_t>(ldxb, 1);
  if (chunk == 0) {
    heap_buf.resize(size_t(ldxb));
    xb = heap_buf.data();
    chunk = 1;
  } else if (chunk > kTokens) {
    chunk = chunk / kTokens * kTokens;  // whole tiles
  }
  const int64_t rb = row_tiles::row_block(w.row_bytes(), kRowBlockBytes, kRows);
  Stream stream;  // one token tile: every weight byte read once, from DRAM
  if (a.n <= kTokens) stream.end = static_cast<const char*>(w.row(r1));
  for (int64_t c0 = 0; c0 < a.n; c0 += chunk) {
    const int64_t nc = std::min(chunk, a.n - c0);
    for (int64_t t = 0; t < nc; t++)
      round_to_bf16(a.x + (c0 + t) * a.ldx, w.cols, ldxb, xb + t * ldxb);
    row_tiles::for_blocks(r0, r1, rb, nc, kTokens, [&](int64_t b0, int64_t b1, int64_t t0, int T) {
      DotArgs d{&w, xb + t0 * ldxb, ldxb, a.y + (c0 + t0) * a.ldy, a.ldy, stream};
      rows_x_tokens_dot(T, d, b0, b1);
    });
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
      acc[u] =
          _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * u), _mm512_loadu_ps(b + i + 16 * u), acc[u]);
  }
  for (; i + 16 <= n; i += 16)
    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    acc[1] =
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc[1]);
  }
  return _mm512_reduce_add_ps(
      _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    __mmask16 m = __mmask16((1u << (n - i)) - 1);
    __m512 v =
        _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

}  // namespace kl::avx512
