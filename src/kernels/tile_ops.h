// Small single-threaded tile ops that tiled (flash-style) attention is built from: a dense fp32
// GEMM on strided operands, its bf16 twin (bf16 operands, fp32 accumulation: the attention of a
// bf16 latent cache), the packing of fp32 or bf16 tiles into the bf16 layouts that GEMM reads,
// and the online-softmax update of one tile of scores. Reached through the Kernels table; the
// scalar twins in tile_ops_scalar.cpp are their spec. Nothing here knows about attention
// layouts beyond "scores of keys (rows) for columns (queries)".
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

// The bf16 GEMM: C[M, N] = A[M, K] · B[K, N] with bf16 A and B, fp32 accumulation, and
// accumulate / row_scale exactly as in GemmF32Args. Products of two bf16 values are exact in
// fp32, so the fast versions (AVX512_BF16 `vdpbf16ps`) differ from the twin only in summation
// order (and in flushing fp32 denormals, which vdpbf16ps does).
//   A: row-major, k contiguous: A[m, k] = a[m·lda + k]            (lda >= K, in bf16 values)
//   B: "pair-packed": consecutive k come in pairs per column,
//      B[k, n] = b[(k / 2)·ldb + 2·n + k % 2]                      (ldb >= 2·N, in bf16 values)
// K must be even (the packers below pad an odd K with a zero row/column).
struct GemmBf16Args {
  int64_t M = 0, N = 0, K = 0;
  const uint16_t* a = nullptr;
  int64_t lda = 0;
  const uint16_t* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
  const float* row_scale = nullptr;  // [M] or null; only read when accumulate
  // A hint, no effect on C: bytes [prefetch, prefetch + prefetch_bytes) that the caller reads
  // next (e.g. the next tile of an attention cache, still in DRAM), requested into L2 a line or
  // so per step of the product, spread over the call, so that fetching them overlaps this
  // compute-bound work. The AVX-512 versions honour it; the twin, AVX2 and NEON ignore it.
  const void* prefetch = nullptr;
  int64_t prefetch_bytes = 0;
};

// Packing into those layouts, from a strided fp32 matrix X[r, c] = src[r·rs + c·cs] of `rows` x
// `cols` (rounded to nearest even, as f32_to_bf16):
//   pack_bf16_rows:  dst[r·ldd + c] = bf16(X[r, c]); when cols is odd, dst[r·ldd + cols] = 0
//                    (an A operand with K = cols rounded up to even).
//   pack_bf16_pairs: the pair-packed B operand of X as [K = rows, N = cols]:
//                    dst[(r / 2)·ldd + 2·c + r % 2] = bf16(X[r, c]); when rows is odd, the
//                    missing partner of the last row is 0.
struct PackBf16Args {
  const float* src = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t rs = 0, cs = 1;
  uint16_t* dst = nullptr;
  int64_t ldd = 0;
};

// Pair-packs a bf16 matrix (no rounding: a copy that interleaves consecutive rows):
//   dst[(r / 2)·ldd + 2·c + r % 2] = src[r·rs + c] for r < rows, c < cols, 0 for the missing
//   partner of an odd last row.
struct InterleaveBf16Args {
  const uint16_t* src = nullptr;
  int64_t rows = 0, cols = 0, rs = 0;
  uint16_t* dst = nullptr;
  int64_t ldd = 0;
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
// A column that has seen no visible key yet keeps m = -inf, l = 0 and gets alpha = 1; so does
// one whose visible scores were all -inf so far (its probabilities are 0, not exp(NaN)).
struct OnlineSoftmaxArgs {
  float* s = nullptr;  // [n_keys, n_cols], rows ld floats apart; scores in, probabilities out
  int64_t n_keys = 0, n_cols = 0, ld = 0;
  int64_t key0 = 0, vis0 = 0, cols_per_step = 1;
  float* m = nullptr;      // [n_cols] running max, -inf before the first key
  float* l = nullptr;      // [n_cols] running sum of exp(s - m)
  float* alpha = nullptr;  // [n_cols] out
};

}  // namespace kl
