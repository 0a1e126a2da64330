// Declarations of the tile ops per ISA (kernels-internal; dispatch.cpp fills the table from them).
// The x86 ones are defined in tile_ops_avx2.cpp / tile_ops_avx512.cpp, compiled with those ISA
// flags and called only after the CPU check; the AArch64 ones in tile_ops_neon.cpp.
#pragma once
#include "kernels/tile_ops.h"

namespace kl::scalar {
void gemm_f32(const GemmF32Args& g);
void online_softmax_f32(const OnlineSoftmaxArgs& a);
void gemm_bf16(const GemmBf16Args& g);
void pack_bf16_rows(const PackBf16Args& p);
void pack_bf16_pairs(const PackBf16Args& p);
void interleave_bf16_pairs(const InterleaveBf16Args& p);
}  // namespace kl::scalar

#if defined(KL_HAVE_X86_KERNELS)
namespace kl::avx2 {
void gemm_f32(const GemmF32Args& g);
void online_softmax_f32(const OnlineSoftmaxArgs& a);
void gemm_bf16(const GemmBf16Args& g);  // bf16 widened to fp32, FMA
void pack_bf16_rows(const PackBf16Args& p);
void pack_bf16_pairs(const PackBf16Args& p);
void interleave_bf16_pairs(const InterleaveBf16Args& p);
}  // namespace kl::avx2

namespace kl::avx512 {
void gemm_f32(const GemmF32Args& g);
void online_softmax_f32(const OnlineSoftmaxArgs& a);
// vdpbf16ps: needs AVX512_BF16 on top of the AVX-512 base (cpu.avx512_bf16).
void gemm_bf16(const GemmBf16Args& g);
// The same on the AVX-512 base alone: bf16 widened to fp32, FMA.
void gemm_bf16_nodot(const GemmBf16Args& g);
// The packers use no AVX512_BF16 instruction (rounding in integer ops, denormals kept).
void pack_bf16_rows(const PackBf16Args& p);
void pack_bf16_pairs(const PackBf16Args& p);
void interleave_bf16_pairs(const InterleaveBf16Args& p);
}  // namespace kl::avx512
#endif

#if defined(__aarch64__) && defined(KL_HAVE_NEON_KERNELS)
namespace kl::neon {
void gemm_f32(const GemmF32Args& g);
void online_softmax_f32(const OnlineSoftmaxArgs& a);
void gemm_bf16(const GemmBf16Args& g);  // bf16 widened to fp32, FMA (BFDOT/BFMMLA are optional)
void pack_bf16_rows(const PackBf16Args& p);
void pack_bf16_pairs(const PackBf16Args& p);
void interleave_bf16_pairs(const InterleaveBf16Args& p);
}  // namespace kl::neon
#endif
