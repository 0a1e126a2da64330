// The kernel table: every heavy op has a plain scalar version (the spec of the op) and fast
// versions chosen once at start-up from the CPU's features (STYLE.md habit 3). Nothing here
// knows about Kimi.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/kda.h"

namespace kl {

class ThreadPool;
struct GemmF32Args;         // kernels/tile_ops.h
struct OnlineSoftmaxArgs;   // kernels/tile_ops.h
struct GemmBf16Args;        // kernels/tile_ops.h
struct PackBf16Args;        // kernels/tile_ops.h
struct InterleaveBf16Args;  // kernels/tile_ops.h

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
  // Indexed by DType; null where the format is not a weight format. fp32 activations, fp32
  // accumulation: the fast versions differ from the scalar twins only in summation order.
  MatmulRowsFn matmul_rows[10] = {};
  // BF16 weights times activations rounded to bf16 (AVX512_BF16 `vdpbf16ps`, about twice the
  // fp32 FMA rate on prompts). It changes the numerics (x loses its low 16 bits), so it is used
  // only when `bf16_activations` is set. Null where the CPU has no such path (AVX2, AVX-512
  // without BF16); the scalar table holds its twin (round x to bf16, then the scalar matmul).
  // Each call rounds its tokens of x to bf16 once, into a stack buffer (64 KiB for the row
  // tiles; K-blocks of 256 tokens for the packed-GEMM prompt path of matmul_avx512.cpp; a heap
  // buffer of one token only when a row is wider than 32768 columns).
  MatmulRowsFn matmul_rows_bf16_dot = nullptr;
  // Off by default. Set it on a copy of the table, only where matmul_rows_bf16_dot is non-null:
  //   Kernels k = kernels_for(isa, cpu); k.bf16_activations = k.matmul_rows_bf16_dot != nullptr;
  bool bf16_activations = false;
  // Σ a[i]·b[i] over fp32 vectors.
  float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
  // y[i] += alpha · x[i]
  void (*axpy_f32)(float alpha, const float* x, float* y, int64_t n) = nullptr;
  // KDA delta rule for head h (kernels/kda.h): token by token (decode, short runs) and chunkwise
  // (prompts; scratch of kda_chunk_scratch_floats(K, V) floats per calling thread). The fast
  // versions agree with the scalar twins to fp32 rounding.
  void (*kda_recurrent_head)(const KdaSeqArgs& a, int64_t h) = nullptr;
  void (*kda_chunk_head)(const KdaSeqArgs& a, int64_t h, float* scratch) = nullptr;
  // Tile ops of the tiled attention kernels (kernels/tile_ops.h): a small fp32 GEMM on
  // strided operands and the online-softmax update of one tile of scores. Single-threaded.
  void (*gemm_f32)(const GemmF32Args& g) = nullptr;
  void (*online_softmax_f32)(const OnlineSoftmaxArgs& a) = nullptr;
  // The bf16 tile GEMM and its packers (tile_ops.h), for attention over a bf16 latent cache.
  // Present in every table: without AVX512_BF16 the fast versions widen to fp32 and use FMA.
  void (*gemm_bf16)(const GemmBf16Args& g) = nullptr;
  void (*pack_bf16_rows)(const PackBf16Args& p) = nullptr;
  void (*pack_bf16_pairs)(const PackBf16Args& p) = nullptr;
  void (*interleave_bf16_pairs)(const InterleaveBf16Args& p) = nullptr;
};

// The row kernel matmul() uses for weights of format t under table k (honours bf16_activations);
// null when the format is not supported. Use it when calling row kernels directly.
MatmulRowsFn matmul_rows_fn(const Kernels& k, DType t);

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

// One threaded call over several independent products Y_j[n_j, w_j.rows] = X_j · W_jᵀ (e.g. the
// gate and up projections of every active expert): the pool's tasks are cut from all of them
// at once, so small products share one hand-off and no thread waits at a barrier between them.
// Computed by the same row kernels as matmul_strided. At most 1024 jobs.
struct MatmulJob {
  const WeightView* w;
  const float* x;
  int64_t n;    // tokens (0: nothing to do)
  int64_t ldx;  // >= w->cols
  float* y;
  int64_t ldy;  // >= w->rows
};
void matmul_batch(const Context& ctx, const MatmulJob* jobs, int64_t count);

}  // namespace kl
