// Two small single-threaded tile ops that tiled (flash-style) attention is built from: a dense
// fp32 GEMM on strided operands and the online-softmax update of one tile of scores. Reached
// through the Kernels table (gemm_f32, online_softmax_f32); the scalar twins in
// tile_ops_scalar.cpp are their spec. Nothing here knows about attention layouts beyond
// "scores of keys (rows) for columns (queries)".
#pragma once
#include <cstdint>

namespace kl {

// C[M, N] = A[M, K] · B[K, N]                          (accumulate = false)
// C[M, N] = row_scale[m] · C[M, N] + A[M, K] · B[K, N]  (accumulate = true; no row_scale: 1)
// fp32 in and out, fp32 accumulation. A[m, k] is at a[m·a_rs + k·a_cs] (row- or column-major
// A, e.g. a transposed tile of probabilities); B rows are ldb floats apart, C rows ldc apart.
// The fast versions differ from the twin only in summation order.
struct GemmF32Args {
  int64_t M = 0, N = 0, K = 0;
  const float* a = nullptr;
  int64_t a_rs = 0, a_cs = 1;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
  const float* row_scale = nullptr;  // [M] or null; only read when accumulate
};

// One step of the online softmax over a tile of scores laid out keys x columns: s[r, j] is the
// score of key key0 + r for column j (a column is one (query, head) pair). Per column, with the
// running max m[j] and running sum l[j] of the keys seen so far:
//   m' = max(m, max_r s[r, j] over visible keys),  alpha[j] = exp(m - m'),
//   s[r, j] <- exp(s[r, j] - m') (0 where not visible),  l' = alpha·l + Σ_r s[r, j].
// The caller multiplies what it accumulated for column j by alpha[j] before adding this tile's
// probabilities · values. Causal mask: column j sees key key0 + r iff
//   key0 + r < vis0 + j / cols_per_step
// (columns come in runs of cols_per_step that share a query, each next query sees one more key).
// A column that has seen no visible key yet keeps m = -inf, l = 0 and gets alpha = 1.
struct OnlineSoftmaxArgs {
  float* s = nullptr;  // [n_keys, n_cols], rows ld floats apart; scores in, probabilities out
  int64_t n_keys = 0, n_cols = 0, ld = 0;
  int64_t key0 = 0, vis0 = 0, cols_per_step = 1;
  float* m = nullptr;      // [n_cols] running max, -inf before the first key
  float* l = nullptr;      // [n_cols] running sum of exp(s - m)
  float* alpha = nullptr;  // [n_cols] out
};

}  // namespace kl
