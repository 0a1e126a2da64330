// Declarations of the SIMD KDA kernels (kernels-internal) and the scratch layout they share with
// kda_chunk_scratch_floats(). The definitions live in kda_avx2.cpp / kda_avx512.cpp (compiled for
// that ISA, reached only through the kernel table after the CPU check) on top of the templates in
// kda_simd_impl.h. No intrinsics here: portable files include this header.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kda.h"

namespace kl {

// Where the SIMD chunk kernel keeps its per-chunk matrices inside the caller's scratch (offsets
// in floats, each a multiple of 16 so 64-byte aligned scratch stays aligned). Key-dim rows are
// padded to Kp with zeros so every key-dim loop runs whole vectors; value-dim rows to Vp.
struct KdaChunkLayout {
  int64_t Kp = 0, Vp = 0;  // K and V rounded up to 16
  size_t gam = 0;   // [C, Kp]  Γ, the inclusive cumsum of g inside the chunk
  size_t kc = 0;    // [C, Kp]  k̂ of the chunk
  size_t qc = 0;    // [C, Kp]  q̃ of the chunk
  size_t qke = 0;   // [2C, Kp] rows 0..n-1: q̃ ⊙ exp(Γ); rows n..2n-1: k̂ ⊙ exp(Γ)
  size_t lk = 0;    // [C/2, Kp] β_i k̂_i ⊙ exp(Γ_i − Γ_m) for the upper half of a split block
  size_t lq = 0;    // [C/2, Kp] q̃_i ⊙ exp(Γ_i − Γ_m)
  size_t r = 0;     // [C, Kp]  k̂_j ⊙ exp(Γ_m − Γ_j) (lower half), later k̂_j ⊙ exp(Γ_n − Γ_j)
  size_t egn = 0;   // [Kp]     exp(Γ_n)
  size_t akk = 0;   // [C, C]   β_i Σ_d k̂_i k̂_j exp(Γ_i − Γ_j), strictly lower
  size_t aqk = 0;   // [C, C]   Σ_d q̃_i k̂_j exp(Γ_i − Γ_j), lower incl. diagonal, zero above
  size_t tm = 0;    // [C, C]   (I + A_kk)^-1, zero above the diagonal
  size_t py = 0;    // [2C, Vp] rows 0..n-1: (q̃ ⊙ exp Γ) S0; rows n..2n-1: (k̂ ⊙ exp Γ) S0, then X
  size_t vn = 0;    // [C, Vp]  V_new
  size_t total = 0;
};
// Defined in kda.cpp (portable code), so every ISA agrees on one layout.
KdaChunkLayout kda_chunk_layout(int64_t K, int64_t V);

}  // namespace kl

#if defined(KL_HAVE_X86_KERNELS)

namespace kl::avx2 {
void kda_recurrent_head(const KdaSeqArgs& a, int64_t h);
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch);
// y[i] = exp(x[i]) for x[i] <= 0 with the kernels' vectorized exp (exposed for its unit test).
void kda_exp(const float* x, float* y, int64_t n);
}  // namespace kl::avx2

namespace kl::avx512 {
void kda_recurrent_head(const KdaSeqArgs& a, int64_t h);
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch);
void kda_exp(const float* x, float* y, int64_t n);
}  // namespace kl::avx512

#endif  // KL_HAVE_X86_KERNELS
