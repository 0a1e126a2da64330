// Fills the kernel tables. The only place that maps an ISA to implementations.
#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/scalar_impl.h"

namespace kl {

namespace {
Kernels make_scalar() {
  Kernels k;
  k.isa = Isa::Scalar;
  k.matmul_rows[size_t(DType::F32)] = scalar::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = scalar::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = scalar::matmul_rows_f16;
  k.dot_f32 = scalar::dot_f32;
  k.axpy_f32 = scalar::axpy_f32;
  return k;
}
}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k = make_scalar();
  return k;
}

const Kernels& kernels_for(Isa isa, const CpuFeatures& cpu) {
  if (!cpu.supports(isa)) fail("this CPU cannot run the ", isa_name(isa), " kernels");
  switch (isa) {
    case Isa::Scalar:
      return scalar_kernels();
    default:
      // Fast paths are added per ISA; until then the scalar table serves every ISA.
      return scalar_kernels();
  }
}

void matmul_strided(const Context& ctx, const WeightView& w, const float* x, int64_t n, int64_t ldx,
                    float* y, int64_t ldy) {
  MatmulRowsFn fn = ctx.k->matmul_rows[size_t(w.dtype)];
  if (!fn) fail("matmul: weights in ", dtype_name(w.dtype), " are not supported");
  MatmulArgs a{&w, x, n, ldx, y, ldy};
  // Rows per task: enough work to amortize the hand-off, small enough to balance.
  int64_t grain = std::max<int64_t>(16, 65536 / std::max<int64_t>(1, w.cols * n));
  if (ctx.pool == nullptr || ctx.pool->size() == 1) {
    fn(a, 0, w.rows);
    return;
  }
  ctx.pool->parallel_range(w.rows, grain, [&](int64_t b, int64_t e, int) { fn(a, b, e); });
}

void matmul(const Context& ctx, const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_strided(ctx, w, x, n, w.cols, y, w.rows);
}

}  // namespace kl
