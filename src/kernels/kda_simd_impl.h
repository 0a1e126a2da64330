// The fast KDA kernels (spec §3.6 decode, §3.8 prefill), written once over a vector-ops type `O`
// that kda_avx2.cpp and kda_avx512.cpp supply. Include only from a file compiled for that ISA.
// Everything here has internal linkage (an unnamed namespace, on purpose in a header): each ISA
// file gets its own private copy, so the linker can never pick one file's copy of an inline
// function, compiled with AVX-512 instructions, for a caller on an AVX2-only CPU.
//
// O provides: V (a vector of W floats), M (a lane mask), zero, set1, load, store, loadm/storem
// (masked: lanes outside the mask are neither read nor written; loadm returns 0 there), mask(n)
// (the first n lanes, 0 <= n <= W), add, sub, mul, fmadd(a,b,c) = a·b+c, fnmadd(a,b,c) = c−a·b,
// hsum, hsum4 (four lane sums to out[0..3]), exp (see below), and the tile shapes kRecVecs,
// kGemmRows, kGemmVecs.
//
// O::exp(x) is exp for x <= 0 with relative error under ~2e-7 while the result is a normal float;
// results below FLT_MIN (x < -87.33) are flushed to 0. Every exponent these kernels form is a
// difference Γ_i − Γ_j with i >= j, or Γ_i, or g: never positive (spec §3.8 numerical rules).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/kda.h"
#include "kernels/kda_simd.h"

namespace kl::kda_simd {
namespace {

// Tiles must be inlined whole: an accumulator array that escapes into a call lives in memory.
#define KL_KDA_INLINE inline __attribute__((always_inline))

// Vector v of a tile whose last vector may be partial (Masked): masked there, whole elsewhere.
template <class O, bool Masked>
KL_KDA_INLINE typename O::V ld(const float* p, bool last, typename O::M m) {
  if constexpr (Masked) {
    if (last) return O::loadm(p, m);
  }
  return O::load(p);
}
template <class O, bool Masked>
KL_KDA_INLINE void st(float* p, typename O::V x, bool last, typename O::M m) {
  if constexpr (Masked) {
    if (last) return O::storem(p, m, x);
  }
  O::store(p, x);
}
// The first min(n, W) floats at p, zeros after.
template <class O>
KL_KDA_INLINE typename O::V load_part(const float* p, int64_t n) {
  if (n <= 0) return O::zero();
  return n >= O::W ? O::load(p) : O::loadm(p, O::mask(int(n)));
}

// Asks for the n floats at p to be brought into the cache ahead of use. The inputs are rows of
// all heads (16 KiB apart at the model's shape), so each head's slice of a row sits on its own
// page, where the hardware prefetchers do not follow; without this, prompts stall on them.
template <class O>
KL_KDA_INLINE void prefetch_row(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// ---------------------------------------------------------------------------------------------
// Decode: the recurrence of spec §3.6, one fused pass over the state per token.
//
// Column e of S only ever meets column e of the other quantities (kv[e] = Σ_d k[d] S[d][e], u[e],
// o[e]), so a strip of NV vectors of columns over all K rows is processed for a whole block of
// tokens while it stays in L1/L2 (AVX-512: whole 128-column rows, 64 KiB). Per token and strip:
//   kv = Σ_d (k̂[d] α[d]) S[d]            (α = exp g; the decayed state itself is not stored)
//   u  = β (v − kv)
//   S[d] = α[d] S[d] + k̂[d] u,  o += q̃[d] S[d]   (o on the updated state)
// and the kv of the next token is accumulated in that same pass over the new S[d], so each token
// costs one load and one store of the strip.

struct RecBlock {
  const KdaSeqArgs* a = nullptr;
  int64_t h = 0, t0 = 0, nb = 0;  // head, first token, tokens in the block
  int64_t Kp = 0;                 // row stride of alpha, kalpha
  const float* alpha = nullptr;   // [nb, Kp] exp(g_t)
  const float* kalpha = nullptr;  // [nb, Kp] k̂_t ⊙ exp(g_t)
  float* S = nullptr;             // [K, V] state of head h
};

template <class O, int NV, bool Masked>
void rec_tile(const RecBlock& b, int64_t c0, typename O::M tail) {
  using V = typename O::V;
  constexpr int W = O::W;
  const KdaSeqArgs& a = *b.a;
  const int64_t K = a.K, Vd = a.V, h = b.h;
  float* S = b.S + c0;
  V kv[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) kv[v] = O::zero();
  for (int64_t d = 0; d < K; d++) {
    const V ka = O::set1(b.kalpha[d]);
    const float* row = S + d * Vd;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) kv[v] = O::fmadd(ka, ld<O, Masked>(row + v * W, v == NV - 1, tail), kv[v]);
  }
  for (int64_t tb = 0; tb < b.nb; tb++) {
    const int64_t t = b.t0 + tb;
    const float* q = a.q + t * a.ld_qkg + h * K;
    const float* k = a.k + t * a.ld_qkg + h * K;
    const float* vin = a.v + t * a.ld_v + h * Vd + c0;
    float* out = a.out + t * a.ld_v + h * Vd + c0;
    const V beta = O::set1(a.beta[t * a.H + h]);
    const float* al = b.alpha + tb * b.Kp;
    if (c0 == 0 && t + b.nb < a.T) {  // the next block's rows, while this one computes
      const int64_t row = (t + b.nb) * a.ld_qkg + h * K;
      prefetch_row<O>(a.g + row, K), prefetch_row<O>(a.k + row, K), prefetch_row<O>(a.q + row, K);
      prefetch_row<O>(a.v + (t + b.nb) * a.ld_v + h * Vd, Vd);
    }
    V u[NV], o[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      u[v] = O::mul(beta, O::sub(ld<O, Masked>(vin + v * W, v == NV - 1, tail), kv[v]));
      o[v] = O::zero();
    }
    if (tb + 1 < b.nb) {
      const float* kan = b.kalpha + (tb + 1) * b.Kp;
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) kv[v] = O::zero();
      for (int64_t d = 0; d < K; d++) {
        const V ad = O::set1(al[d]), kd = O::set1(k[d]), qd = O::set1(q[d]), kn = O::set1(kan[d]);
        float* row = S + d * Vd;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
          V s = ld<O, Masked>(row + v * W, v == NV - 1, tail);
          s = O::fmadd(ad, s, O::mul(kd, u[v]));
          o[v] = O::fmadd(qd, s, o[v]);
          kv[v] = O::fmadd(kn, s, kv[v]);
          st<O, Masked>(row + v * W, s, v == NV - 1, tail);
        }
      }
    } else {
      for (int64_t d = 0; d < K; d++) {
        const V ad = O::set1(al[d]), kd = O::set1(k[d]), qd = O::set1(q[d]);
        float* row = S + d * Vd;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
          V s = ld<O, Masked>(row + v * W, v == NV - 1, tail);
          s = O::fmadd(ad, s, O::mul(kd, u[v]));
          o[v] = O::fmadd(qd, s, o[v]);
          st<O, Masked>(row + v * W, s, v == NV - 1, tail);
        }
      }
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) st<O, Masked>(out + v * W, o[v], v == NV - 1, tail);
  }
}

// A strip of nv <= NV vectors, the last one partial when `masked`.
template <class O, int NV>
void rec_strip(const RecBlock& b, int64_t c0, int nv, bool masked, typename O::M tail) {
  if constexpr (NV > 1) {
    if (nv < NV) return rec_strip<O, NV - 1>(b, c0, nv, masked, tail);
  }
  if (masked)
    rec_tile<O, NV, true>(b, c0, tail);
  else
    rec_tile<O, NV, false>(b, c0, tail);
}

template <class O>
void recurrent_head(const KdaSeqArgs& a, int64_t h) {
  constexpr int W = O::W, NV = O::kRecVecs;
  // exp(g) and k̂ ⊙ exp(g) for a block of tokens: 32 KiB of stack, 32 tokens at K = 128.
  constexpr int64_t kBuf = 8192;
  alignas(64) float buf[kBuf];
  const int64_t K = a.K, Vd = a.V, Kp = (K + W - 1) / W * W;
  const int64_t max_block = kBuf / (2 * Kp) > 0 ? kBuf / (2 * Kp) : 1;  // K <= kKdaMaxDim
  float* S = a.state + h * K * Vd;
  for (int64_t t0 = 0; t0 < a.T;) {
    const int64_t nb = a.T - t0 < max_block ? a.T - t0 : max_block;
    float* alpha = buf;
    float* kalpha = buf + nb * Kp;
    for (int64_t tb = 0; tb < nb; tb++) {
      const float* g = a.g + (t0 + tb) * a.ld_qkg + h * K;
      const float* k = a.k + (t0 + tb) * a.ld_qkg + h * K;
      prefetch_row<O>(a.q + (t0 + tb) * a.ld_qkg + h * K, K);  // for the strips below
      prefetch_row<O>(a.v + (t0 + tb) * a.ld_v + h * Vd, Vd);
      for (int64_t d = 0; d < K; d += W) {
        const typename O::V e = O::exp(load_part<O>(g + d, K - d));
        O::store(alpha + tb * Kp + d, e);
        O::store(kalpha + tb * Kp + d, O::mul(load_part<O>(k + d, K - d), e));
      }
    }
    const RecBlock blk{&a, h, t0, nb, Kp, alpha, kalpha, S};
    for (int64_t c0 = 0; c0 < Vd; c0 += NV * W) {
      const int64_t cols = Vd - c0 < NV * W ? Vd - c0 : NV * W;
      const int nv = int((cols + W - 1) / W);
      const int rem = int(cols - (nv - 1) * W);
      rec_strip<O, NV>(blk, c0, nv, rem != W, O::mask(rem));
    }
    t0 += nb;
  }
}

// ---------------------------------------------------------------------------------------------
// Small register-blocked matrix product for the chunk kernel:
//   C[i, :] = diag(c0_scale) C0[i, :] + Σ_k A(i, k) B[k, :],  i < M, columns < N, k < Kd
// R rows x NV vectors of C live in registers; each k loads NV vectors of B and broadcasts R
// values of A. Column strips are the outer loop so a strip of B stays in L1 for every row tile.

struct Gemm {
  int64_t M = 0, N = 0, Kd = 0;
  const float* a = nullptr;  // A(i, k) = a[i·rsa + k·csa]
  int64_t rsa = 0, csa = 0;
  const float* b = nullptr;  // B [Kd, N], rows ldb apart
  int64_t ldb = 0;
  float* c = nullptr;  // C [M, N], rows ldc apart; may be C0 (in place)
  int64_t ldc = 0;
  const float* c0 = nullptr;  // null: C = A·B
  int64_t ldc0 = 0;
  const float* c0_scale = nullptr;  // [M]; null: 1
  // A is lower triangular with its zeros stored: the row tile [i0, i0+R) sums k < i0+R only.
  bool lower = false;
};

template <class O, int R, int NV, bool Masked>
void gemm_tile(const Gemm& g, int64_t i0, int64_t j0, typename O::M tail) {
  using V = typename O::V;
  constexpr int W = O::W;
  V acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    const float* c0 = g.c0 ? g.c0 + (i0 + r) * g.ldc0 + j0 : nullptr;
    const V s = O::set1(g.c0_scale ? g.c0_scale[i0 + r] : 1.f);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++)
      acc[r][v] = c0 ? O::mul(s, ld<O, Masked>(c0 + v * W, v == NV - 1, tail)) : O::zero();
  }
  const int64_t kend = g.lower && i0 + R < g.Kd ? i0 + R : g.Kd;
  const float* ap = g.a + i0 * g.rsa;
  const float* bp = g.b + j0;
  for (int64_t k = 0; k < kend; k++, ap += g.csa, bp += g.ldb) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) bv[v] = ld<O, Masked>(bp + v * W, v == NV - 1, tail);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const V av = O::set1(ap[r * g.rsa]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) acc[r][v] = O::fmadd(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    float* c = g.c + (i0 + r) * g.ldc + j0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) st<O, Masked>(c + v * W, acc[r][v], v == NV - 1, tail);
  }
}

template <class O, int R, int NV>
void gemm_cols(const Gemm& g, int64_t i0, int64_t j0, int nv, bool masked, typename O::M tail) {
  if constexpr (NV > 1) {
    if (nv < NV) return gemm_cols<O, R, NV - 1>(g, i0, j0, nv, masked, tail);
  }
  if (masked)
    gemm_tile<O, R, NV, true>(g, i0, j0, tail);
  else
    gemm_tile<O, R, NV, false>(g, i0, j0, tail);
}

template <class O, int R>
void gemm_rows(const Gemm& g, int64_t i0, int64_t j0, int rows, int nv, bool masked, typename O::M tail) {
  if constexpr (R > 1) {
    if (rows < R) return gemm_rows<O, R - 1>(g, i0, j0, rows, nv, masked, tail);
  }
  gemm_cols<O, R, O::kGemmVecs>(g, i0, j0, nv, masked, tail);
}

template <class O>
void gemm(const Gemm& g) {
  constexpr int W = O::W, R = O::kGemmRows, NV = O::kGemmVecs;
  for (int64_t j0 = 0; j0 < g.N; j0 += NV * W) {
    const int64_t cols = g.N - j0 < NV * W ? g.N - j0 : NV * W;
    const int nv = int((cols + W - 1) / W);
    const int rem = int(cols - (nv - 1) * W);
    for (int64_t i0 = 0; i0 < g.M; i0 += R) {
      const int rows = int(g.M - i0 < R ? g.M - i0 : R);
      gemm_rows<O, R>(g, i0, j0, rows, nv, rem != W, O::mask(rem));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Prefill: the chunkwise form of spec §3.8, per head and chunk of n <= 64 tokens, rearranged so
// that almost all of the work is in the products above:
//   1. Γ = cumsum g; Q̂ = Q̃ ⊙ exp Γ, K̂ = K ⊙ exp Γ.
//   2+6. A_kk, A_qk. The pairwise decays exp(Γ_i − Γ_j) are split through a reference row, as
//      the Triton kernel does with its 16-row sub-chunks: for j < m <= i,
//      exp(Γ_i − Γ_j) = exp(Γ_i − Γ_m) · exp(Γ_m − Γ_j), both exponents <= 0. Halving the chunk
//      recursively (m = the first row of the upper half), each level costs n·K exps for all the
//      pairs it separates, instead of one K-vector of exps per pair; the pairs left inside
//      blocks of kLeaf rows get theirs directly.
//   3. T = (I + A_kk)^-1, forward substitution by rows: T_i = e_i − Σ_{m<i} A_kk[i,m] T_m.
//   4+5. V_new = U − W S0 = T · X with X = diag(β) (V − K̂ S0): one product fewer than forming
//      W and U.
//   7. O = Q̂ S0 + A_qk V_new        ([Q̂; K̂] S0 is one product).
//   8. S = diag(exp Γ_n) S0 + (K ⊙ exp(Γ_n − Γ))ᵀ V_new.

// Rows of the smallest blocks whose pairs get their own exps. Splitting further would cost as
// many exps as it saves; kLeaf = 4 also keeps the column blocks of the split products whole.
constexpr int64_t kLeaf = 4;

// out[d] = x[d] · exp(ga[d] − gb[d]) over Kp (a multiple of W) columns.
template <class O>
KL_KDA_INLINE void decayed_row(float* out, const float* x, const float* ga, const float* gb, int64_t Kp) {
  for (int64_t d = 0; d < Kp; d += O::W)
    O::store(out + d, O::mul(O::load(x + d), O::exp(O::sub(O::load(ga + d), O::load(gb + d)))));
}

template <class O>
void chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch) {
  using V = typename O::V;
  constexpr int W = O::W;
  constexpr int64_t C = kKdaChunk;
  const KdaChunkLayout L = kda_chunk_layout(a.K, a.V);
  const int64_t K = a.K, Vd = a.V, Kp = L.Kp, Vp = L.Vp;
  float* G = scratch + L.gam;
  float* Kc = scratch + L.kc;
  float* Qc = scratch + L.qc;
  float* QKe = scratch + L.qke;
  float* Lk = scratch + L.lk;
  float* Lq = scratch + L.lq;
  float* Rm = scratch + L.r;
  float* eGn = scratch + L.egn;
  float* Akk = scratch + L.akk;
  float* Aqk = scratch + L.aqk;
  float* Tm = scratch + L.tm;
  float* PY = scratch + L.py;
  float* Vn = scratch + L.vn;
  float* S = a.state + h * K * Vd;  // [K, V]

  for (int64_t t0 = 0; t0 < a.T; t0 += C) {
    const int64_t n = a.T - t0 < C ? a.T - t0 : C;
    auto beta = [&](int64_t i) { return a.beta[(t0 + i) * a.H + h]; };

    // 1. Chunk copies of k̂, q̃ and Γ, zero-padded to Kp (the pads give exp(0)·0 = 0 below).
    for (int64_t i = 0; i < n; i++) {
      const int64_t row = (t0 + i) * a.ld_qkg + h * K;
      for (int64_t d = 0; d < Kp; d += W) {
        O::store(Kc + i * Kp + d, load_part<O>(a.k + row + d, K - d));
        O::store(Qc + i * Kp + d, load_part<O>(a.q + row + d, K - d));
        const V gd = load_part<O>(a.g + row + d, K - d);
        O::store(G + i * Kp + d, i == 0 ? gd : O::add(O::load(G + (i - 1) * Kp + d), gd));
      }
    }
    float* Qe = QKe;           // [n, Kp]
    float* Ke = QKe + n * Kp;  // [n, Kp]
    for (int64_t i = 0; i < n; i++)
      for (int64_t d = 0; d < Kp; d += W) {
        const V e = O::exp(O::load(G + i * Kp + d));
        O::store(Qe + i * Kp + d, O::mul(O::load(Qc + i * Kp + d), e));
        O::store(Ke + i * Kp + d, O::mul(O::load(Kc + i * Kp + d), e));
        if (i == n - 1) O::store(eGn + d, e);
      }

    // 2 + 6. A_kk (strictly lower, scaled by β_i) and A_qk (lower incl. diagonal, zero above).
    // Inside leaves of kLeaf rows every pair gets its own exp(Γ_i − Γ_j) (exp(0) = 1 on the
    // diagonal); every other pair is split where its rows first part in the halving of the chunk.
    for (int64_t i = 0; i < n; i++) {
      if (t0 + C + i < a.T) {  // row i of the next chunk, while this one computes
        const int64_t row = (t0 + C + i) * a.ld_qkg + h * K;
        prefetch_row<O>(a.g + row, K), prefetch_row<O>(a.k + row, K), prefetch_row<O>(a.q + row, K);
        prefetch_row<O>(a.v + (t0 + C + i) * a.ld_v + h * Vd, Vd);
      }
      const float *gi = G + i * Kp, *ki = Kc + i * Kp, *qi = Qc + i * Kp;
      const float bi = beta(i);
      for (int64_t j = i / kLeaf * kLeaf; j < i; j++) {
        const float *gj = G + j * Kp, *kj = Kc + j * Kp;
        V skk = O::zero(), sqk = O::zero();
        for (int64_t d = 0; d < Kp; d += W) {
          const V kje = O::mul(O::load(kj + d), O::exp(O::sub(O::load(gi + d), O::load(gj + d))));
          skk = O::fmadd(O::load(ki + d), kje, skk);
          sqk = O::fmadd(O::load(qi + d), kje, sqk);
        }
        Akk[i * C + j] = bi * O::hsum(skk);
        Aqk[i * C + j] = O::hsum(sqk);
      }
      V sqk = O::zero();
      for (int64_t d = 0; d < Kp; d += W) sqk = O::fmadd(O::load(qi + d), O::load(ki + d), sqk);
      Akk[i * C + i] = 0.f;
      Aqk[i * C + i] = O::hsum(sqk);
      if (i + 1 < n) std::memset(Aqk + i * C + i + 1, 0, sizeof(float) * size_t(n - i - 1));
    }
    for (int64_t s = 2 * kLeaf; s <= C; s *= 2) {
      for (int64_t r0 = 0; r0 + s / 2 < n; r0 += s) {
        // Rows i in [m, i1) against rows j in [r0, m), through the reference row m.
        const int64_t m = r0 + s / 2, i1 = r0 + s < n ? r0 + s : n;
        const float* gm = G + m * Kp;
        for (int64_t i = m; i < i1; i++) {
          const V bi = O::set1(beta(i));  // A_kk's row scale, applied here once
          for (int64_t d = 0; d < Kp; d += W) {
            const V e = O::exp(O::sub(O::load(G + i * Kp + d), O::load(gm + d)));
            O::store(Lk + (i - m) * Kp + d, O::mul(O::mul(bi, O::load(Kc + i * Kp + d)), e));
            O::store(Lq + (i - m) * Kp + d, O::mul(O::load(Qc + i * Kp + d), e));
          }
        }
        for (int64_t j = r0; j < m; j++) decayed_row<O>(Rm + (j - r0) * Kp, Kc + j * Kp, gm, G + j * Kp, Kp);
        for (int64_t i = m; i < i1; i++) {
          const float *lk = Lk + (i - m) * Kp, *lq = Lq + (i - m) * Kp;
          for (int64_t j = r0; j < m; j += 4) {  // m − r0 is a multiple of kLeaf
            const float* rj = Rm + (j - r0) * Kp;
            V skk[4], sqk[4];
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++) skk[jj] = sqk[jj] = O::zero();
            for (int64_t d = 0; d < Kp; d += W) {
              const V vk = O::load(lk + d), vq = O::load(lq + d);
#pragma GCC unroll 4
              for (int jj = 0; jj < 4; jj++) {
                const V r = O::load(rj + jj * Kp + d);
                skk[jj] = O::fmadd(vk, r, skk[jj]);
                sqk[jj] = O::fmadd(vq, r, sqk[jj]);
              }
            }
            O::hsum4(skk[0], skk[1], skk[2], skk[3], Akk + i * C + j);
            O::hsum4(sqk[0], sqk[1], sqk[2], sqk[3], Aqk + i * C + j);
          }
        }
      }
    }

    // 3. T = (I + A_kk)^-1. Rows are written whole (C columns), zero above the diagonal, which
    // the products below rely on; two sets of accumulators shorten the dependency chains.
    {
      constexpr int TV = int(C / W);
      constexpr int kSets = TV <= 4 ? 2 : 1;
      for (int64_t i = 0; i < n; i++) {
        const float* ai = Akk + i * C;
        V acc[kSets][TV];
#pragma GCC unroll 8
        for (int s = 0; s < kSets; s++)
#pragma GCC unroll 8
          for (int v = 0; v < TV; v++) acc[s][v] = O::zero();
        int64_t m = 0;
        for (; m + kSets <= i; m += kSets)
#pragma GCC unroll 8
          for (int s = 0; s < kSets; s++) {
            const V am = O::set1(ai[m + s]);
#pragma GCC unroll 8
            for (int v = 0; v < TV; v++) acc[s][v] = O::fnmadd(am, O::load(Tm + (m + s) * C + v * W), acc[s][v]);
          }
        for (; m < i; m++) {
          const V am = O::set1(ai[m]);
#pragma GCC unroll 8
          for (int v = 0; v < TV; v++) acc[0][v] = O::fnmadd(am, O::load(Tm + m * C + v * W), acc[0][v]);
        }
#pragma GCC unroll 8
        for (int v = 0; v < TV; v++) {
          V x = acc[0][v];
          if constexpr (kSets == 2) x = O::add(x, acc[1][v]);
          O::store(Tm + i * C + v * W, x);
        }
        Tm[i * C + i] = 1.f;
      }
    }

    // 7 (first half) and 5 (first half): [Q̂; K̂] S0 -> rows 0..n-1 P, rows n..2n-1 Y.
    {
      Gemm g;
      g.M = 2 * n, g.N = Vd, g.Kd = K;
      g.a = QKe, g.rsa = Kp, g.csa = 1;
      g.b = S, g.ldb = Vd;
      g.c = PY, g.ldc = Vp;
      gemm<O>(g);
    }
    // X = diag(β) (V − Y), in place of Y.
    float* X = PY + n * Vp;
    for (int64_t i = 0; i < n; i++) {
      const float* vi = a.v + (t0 + i) * a.ld_v + h * Vd;
      float* xi = X + i * Vp;
      const V bi = O::set1(beta(i));
      for (int64_t e = 0; e < Vd; e += W) {
        if (Vd - e >= W) {
          O::store(xi + e, O::mul(bi, O::sub(O::load(vi + e), O::load(xi + e))));
        } else {
          const typename O::M m = O::mask(int(Vd - e));
          O::storem(xi + e, m, O::mul(bi, O::sub(O::loadm(vi + e, m), O::loadm(xi + e, m))));
        }
      }
    }
    // 4-5. V_new = T X.
    {
      Gemm g;
      g.M = n, g.N = Vd, g.Kd = n;
      g.a = Tm, g.rsa = C, g.csa = 1;
      g.b = X, g.ldb = Vp;
      g.c = Vn, g.ldc = Vp;
      g.lower = true;
      gemm<O>(g);
    }
    // 7. O = P + A_qk V_new.
    {
      Gemm g;
      g.M = n, g.N = Vd, g.Kd = n;
      g.a = Aqk, g.rsa = C, g.csa = 1;
      g.b = Vn, g.ldb = Vp;
      g.c = a.out + t0 * a.ld_v + h * Vd, g.ldc = a.ld_v;
      g.c0 = PY, g.ldc0 = Vp;
      g.lower = true;
      gemm<O>(g);
    }
    // 8. S = diag(exp Γ_n) S0 + Kdᵀ V_new with Kd_j = k̂_j ⊙ exp(Γ_n − Γ_j), in place.
    const float* gn = G + (n - 1) * Kp;
    for (int64_t j = 0; j < n; j++) decayed_row<O>(Rm + j * Kp, Kc + j * Kp, gn, G + j * Kp, Kp);
    {
      Gemm g;
      g.M = K, g.N = Vd, g.Kd = n;
      g.a = Rm, g.rsa = 1, g.csa = Kp;
      g.b = Vn, g.ldb = Vp;
      g.c = S, g.ldc = Vd;
      g.c0 = S, g.ldc0 = Vd;
      g.c0_scale = eGn;
      gemm<O>(g);
    }
  }
}

template <class O>
void exp_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += O::W) {
    if (n - i >= O::W) {
      O::store(y + i, O::exp(O::load(x + i)));
    } else {
      const typename O::M m = O::mask(int(n - i));
      O::storem(y + i, m, O::exp(O::loadm(x + i, m)));
    }
  }
}

}  // namespace
}  // namespace kl::kda_simd
