// Declarations of the scalar twins (kernels-internal).
#pragma once
#include "kernels/kernels.h"

namespace kl::scalar {
void matmul_rows_f32(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_f16(const MatmulArgs& a, int64_t r0, int64_t r1);
void matmul_rows_bf16_dot(const MatmulArgs& a, int64_t r0, int64_t r1);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy_f32(float alpha, const float* x, float* y, int64_t n);
}  // namespace kl::scalar
