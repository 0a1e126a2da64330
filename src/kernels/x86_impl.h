// Declarations of the x86 fast kernels (kernels-internal). The definitions live in *_avx2.cpp and
// *_avx512.cpp, compiled with those ISA flags; only dispatch.cpp and machine_limits.cpp call them,
// after checking the CPU. No intrinsics here: portable files include this header.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

#if defined(KL_HAVE_X86_KERNELS)

namespace kl::avx2 {
void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy_f32(float alpha, const float* x, float* y, int64_t n);
// Register-only fp32 FMA loop for the peak measurement: runs `iters` iterations, returns the
// flops done, writes a value depending on every result to *sink (so nothing is optimized away).
double fma_loop(int64_t iters, float* sink);
// Streaming reads for the bandwidth measurement: sum `bytes` (a multiple of 128) from p, in
// address order (read_sum_seq, as decode reads a call's weights) or as four streams at once, a
// quarter of the range apart (read_sum). Machines differ in which pattern streams faster.
uint64_t read_sum(const void* p, size_t bytes);
uint64_t read_sum_seq(const void* p, size_t bytes);
}  // namespace kl::avx2

namespace kl::avx512 {
void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1);
// The same for cores that run 512-bit operations as two halves (cpu.avx512_halves): one token
// with x on a 32-byte boundary reads a copy of x 16 bytes past one (matmul_avx512.cpp).
void matmul_rows_f32_halves(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16_halves(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_f16_halves(const MatmulArgs& a, int64_t r0, int64_t r1);
// Needs AVX512_BF16 on top of the AVX-512 base (cpu.avx512_bf16).
void matmul_rows_bf16_dot(const MatmulArgs& a, int64_t r0, int64_t r1);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy_f32(float alpha, const float* x, float* y, int64_t n);
double fma_loop(int64_t iters, float* sink);
// Same with vdpbf16ps (AVX512_BF16): 64 flops per instruction.
double dpbf16_loop(int64_t iters, float* sink);
uint64_t read_sum(const void* p, size_t bytes);
uint64_t read_sum_seq(const void* p, size_t bytes);
}  // namespace kl::avx512

#endif  // KL_HAVE_X86_KERNELS
