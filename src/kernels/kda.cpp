#include "kernels/kda.h"
#include "kernels/kda_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace kl {

void kda_recurrent_head(const KdaSeqArgs& a, int64_t h) {
  const int64_t K = a.K, V = a.V;
  float* S = a.state + h * K * V;  // [K, V]
  float kv[kKdaMaxDim], u[kKdaMaxDim];  // V <= kKdaMaxDim (checked by the caller's config)
  for (int64_t t = 0; t < a.T; t++) {
    const float* q = a.q + t * a.ld_qkg + h * K;
    const float* k = a.k + t * a.ld_qkg + h * K;
    const float* g = a.g + t * a.ld_qkg + h * K;
    const float* v = a.v + t * a.ld_v + h * V;
    const float beta = a.beta[t * a.H + h];
    float* o = a.out + t * a.ld_v + h * V;
    // 1. S <- Diag(exp g) S, and kv = Sᵀk on the decayed state, in one pass.
    std::memset(kv, 0, sizeof(float) * size_t(V));
    for (int64_t d = 0; d < K; d++) {
      const float alpha = std::exp(g[d]);
      float* row = S + d * V;
      const float kd = k[d];
      for (int64_t e = 0; e < V; e++) {
        row[e] *= alpha;
        kv[e] += kd * row[e];
      }
    }
    // 2. u = beta (v - Sᵀk).
    for (int64_t e = 0; e < V; e++) u[e] = beta * (v[e] - kv[e]);
    // 3-4. S += k uᵀ, then o = Sᵀq on the updated state.
    std::memset(o, 0, sizeof(float) * size_t(V));
    for (int64_t d = 0; d < K; d++) {
      float* row = S + d * V;
      const float kd = k[d], qd = q[d];
      for (int64_t e = 0; e < V; e++) {
        row[e] += kd * u[e];
        o[e] += qd * row[e];
      }
    }
  }
}

KdaChunkLayout kda_chunk_layout(int64_t K, int64_t V) {
  const size_t C = size_t(kKdaChunk);
  KdaChunkLayout L;
  L.Kp = (K + 15) / 16 * 16;
  L.Vp = (V + 15) / 16 * 16;
  const size_t Kp = size_t(L.Kp), Vp = size_t(L.Vp);
  size_t at = 0;
  auto take = [&](size_t floats) {
    size_t off = at;
    at += (floats + 15) / 16 * 16;
    return off;
  };
  L.gam = take(C * Kp);
  L.kc = take(C * Kp);
  L.qc = take(C * Kp);
  L.qke = take(2 * C * Kp);
  L.lk = take(C / 2 * Kp);
  L.lq = take(C / 2 * Kp);
  L.r = take(C * Kp);
  L.egn = take(Kp);
  L.akk = take(C * C);
  L.aqk = take(C * C);
  L.tm = take(C * C);
  L.py = take(2 * C * Vp);
  L.vn = take(C * Vp);
  L.total = at;
  return L;
}

size_t kda_chunk_scratch_floats(int64_t K, int64_t V) {
  const int64_t C = kKdaChunk;
  // Scalar twin: Gamma [C,K], Akk [C,C], Aqk [C,C], Tinv [C,C], W [C,K], U [C,V].
  const size_t scalar = size_t(C * K + 3 * C * C + C * K + C * V);
  // Every table shares the caller's scratch, so size it for the largest user; a multiple of 16
  // keeps per-thread slices of 64-byte aligned scratch aligned.
  const size_t need = std::max(scalar, kda_chunk_layout(K, V).total);
  return (need + 15) / 16 * 16;
}

void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch) {
  const int64_t K = a.K, V = a.V, C = kKdaChunk;
  float* S = a.state + h * K * V;
  float* Gam = scratch;        // [C, K] inclusive cumsum of g inside the chunk
  float* Akk = Gam + C * K;    // [C, C] strictly lower
  float* Aqk = Akk + C * C;    // [C, C] lower incl. diagonal
  float* Tm = Aqk + C * C;     // [C, C] (I + Akk)^-1
  float* Wm = Tm + C * C;      // [C, K]
  float* Um = Wm + C * K;      // [C, V]; becomes V_new in place

  for (int64_t t0 = 0; t0 < a.T; t0 += C) {
    const int64_t n = std::min<int64_t>(C, a.T - t0);
    auto q = [&](int64_t i) { return a.q + (t0 + i) * a.ld_qkg + h * K; };
    auto k = [&](int64_t i) { return a.k + (t0 + i) * a.ld_qkg + h * K; };
    auto g = [&](int64_t i) { return a.g + (t0 + i) * a.ld_qkg + h * K; };
    auto v = [&](int64_t i) { return a.v + (t0 + i) * a.ld_v + h * V; };
    auto beta = [&](int64_t i) { return a.beta[(t0 + i) * a.H + h]; };

    // 1. Gamma_i = sum_{s<=i} g_s (restarts every chunk).
    for (int64_t d = 0; d < K; d++) Gam[d] = g(0)[d];
    for (int64_t i = 1; i < n; i++)
      for (int64_t d = 0; d < K; d++) Gam[i * K + d] = Gam[(i - 1) * K + d] + g(i)[d];

    // 2 + 6. Pairwise decays exp(Gamma_i - Gamma_j) <= 1 for i >= j, shared by A_kk and A_qk.
    for (int64_t i = 0; i < n; i++) {
      const float* Gi = Gam + i * K;
      const float* ki = k(i);
      const float* qi = q(i);
      for (int64_t j = 0; j <= i; j++) {
        const float* Gj = Gam + j * K;
        const float* kj = k(j);
        float skk = 0.f, sqk = 0.f;
        for (int64_t d = 0; d < K; d++) {
          const float e = std::exp(Gi[d] - Gj[d]);
          const float kje = kj[d] * e;
          skk += ki[d] * kje;
          sqk += qi[d] * kje;
        }
        Akk[i * C + j] = (j < i) ? beta(i) * skk : 0.f;
        Aqk[i * C + j] = sqk;
      }
    }

    // 3. T = (I + A_kk)^-1 by forward substitution (unit lower triangular).
    for (int64_t i = 0; i < n; i++) {
      for (int64_t j = 0; j < i; j++) {
        float s = 0.f;
        for (int64_t m = j; m < i; m++) s += Akk[i * C + m] * Tm[m * C + j];
        Tm[i * C + j] = -s;
      }
      Tm[i * C + i] = 1.f;
    }

    // 4. W = T diag(beta) (exp(Gamma) ⊙ K),  U = T diag(beta) V.
    for (int64_t i = 0; i < n; i++) {
      float* Wi = Wm + i * K;
      float* Ui = Um + i * V;
      std::memset(Wi, 0, sizeof(float) * size_t(K));
      std::memset(Ui, 0, sizeof(float) * size_t(V));
      for (int64_t j = 0; j <= i; j++) {
        const float c = Tm[i * C + j] * beta(j);
        const float* kj = k(j);
        const float* Gj = Gam + j * K;
        for (int64_t d = 0; d < K; d++) Wi[d] += c * kj[d] * std::exp(Gj[d]);
        const float* vj = v(j);
        for (int64_t e = 0; e < V; e++) Ui[e] += c * vj[e];
      }
    }

    // 5. V_new = U - W S0 (row i is the delta-rule update u of token i).
    for (int64_t i = 0; i < n; i++) {
      float* Ui = Um + i * V;
      const float* Wi = Wm + i * K;
      for (int64_t d = 0; d < K; d++) {
        const float w = Wi[d];
        const float* Sd = S + d * V;
        for (int64_t e = 0; e < V; e++) Ui[e] -= w * Sd[e];
      }
    }

    // 7. O = (Q ⊙ exp(Gamma)) S0 + A_qk V_new.
    for (int64_t i = 0; i < n; i++) {
      float* o = a.out + (t0 + i) * a.ld_v + h * V;
      std::memset(o, 0, sizeof(float) * size_t(V));
      const float* qi = q(i);
      const float* Gi = Gam + i * K;
      for (int64_t d = 0; d < K; d++) {
        const float w = qi[d] * std::exp(Gi[d]);
        const float* Sd = S + d * V;
        for (int64_t e = 0; e < V; e++) o[e] += w * Sd[e];
      }
      for (int64_t j = 0; j <= i; j++) {
        const float w = Aqk[i * C + j];
        const float* Uj = Um + j * V;
        for (int64_t e = 0; e < V; e++) o[e] += w * Uj[e];
      }
    }

    // 8. S = Diag(exp(Gamma_n)) S0 + (K ⊙ exp(Gamma_n - Gamma))ᵀ V_new.
    const float* Gn = Gam + (n - 1) * K;
    for (int64_t d = 0; d < K; d++) {
      float* Sd = S + d * V;
      const float dec = std::exp(Gn[d]);
      for (int64_t e = 0; e < V; e++) Sd[e] *= dec;
      for (int64_t j = 0; j < n; j++) {
        const float w = k(j)[d] * std::exp(Gn[d] - Gam[j * K + d]);
        const float* Uj = Um + j * V;
        for (int64_t e = 0; e < V; e++) Sd[e] += w * Uj[e];
      }
    }
  }
}

}  // namespace kl
