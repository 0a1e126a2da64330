// Declarations of the AArch64 NEON fast kernels (kernels-internal). The definitions live in
// *_neon.cpp, compiled only for AArch64, where Advanced SIMD is part of the base ISA; only
// dispatch.cpp calls them. No intrinsics here: portable files include this header.
#pragma once
#include <cstdint>

#include "kernels/kda.h"
#include "kernels/kernels.h"

#if defined(KL_HAVE_NEON_KERNELS)

namespace kl::neon {
void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy_f32(float alpha, const float* x, float* y, int64_t n);
// The peak-throughput loop of machine_limits.cpp: iters steps of fp32 FMA chains; returns FLOPs.
double fma_loop(int64_t iters, float* sink);
// KDA (kda_neon.cpp): as kl::avx2's in kda_simd.h.
void kda_recurrent_head(const KdaSeqArgs& a, int64_t h);
void kda_chunk_head(const KdaSeqArgs& a, int64_t h, float* scratch);
void kda_exp(const float* x, float* y, int64_t n);
}  // namespace kl::neon

#endif  // KL_HAVE_NEON_KERNELS
