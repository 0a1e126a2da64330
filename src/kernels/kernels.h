// The kernel table: every heavy op has a plain scalar version (the spec of the op) and fast
// versions chosen once at start-up from the CPU's features (STYLE.md habit 3). Nothing here
// knows about Kimi.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace kl {

class ThreadPool;

// y[t, r] = Σ_i W[r, i] · x[t, i] for t in [0, n), r in [r0, r1), fp32 accumulation.
// x rows are `ldx` floats apart, y rows `ldy` floats apart. One call works on one block of
// output rows; the threaded driver (matmul() below) splits rows across the pool.
struct MatmulArgs {
  const WeightView* w;
  const float* x;
  int64_t n;    // tokens
  int64_t ldx;  // >= w->cols
  float* y;
  int64_t ldy;  // >= w->rows (or the caller's width)
};
using MatmulRowsFn = void (*)(const MatmulArgs& a, int64_t r0, int64_t r1);

struct Kernels {
  Isa isa = Isa::Scalar;
  // Indexed by DType; null where the format is not a weight format.
  MatmulRowsFn matmul_rows[10] = {};
  // Σ a[i]·b[i] over fp32 vectors.
  float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
  // y[i] += alpha · x[i]
  void (*axpy_f32)(float alpha, const float* x, float* y, int64_t n) = nullptr;
};

// The table for one ISA. Throws kl::Error when the CPU cannot run it.
const Kernels& kernels_for(Isa isa, const CpuFeatures& cpu);
// The scalar reference table (always available).
const Kernels& scalar_kernels();

// What every kernel call gets: the pool and the chosen table (DESIGN.md §5). Passed down,
// never global.
struct Context {
  ThreadPool* pool = nullptr;
  const Kernels* k = nullptr;
};

// Y[n, w.rows] = X[n, w.cols] · Wᵀ, contiguous rows, threaded over output rows.
void matmul(const Context& ctx, const WeightView& w, const float* x, int64_t n, float* y);
// Same with explicit row strides.
void matmul_strided(const Context& ctx, const WeightView& w, const float* x, int64_t n, int64_t ldx,
                    float* y, int64_t ldy);

}  // namespace kl
