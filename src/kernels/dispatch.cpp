// Fills the kernel tables. The only place that maps an ISA to implementations.
#include <algorithm>
#include <iterator>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kda_simd.h"
#include "kernels/kernels.h"
#include "kernels/neon_impl.h"
#include "kernels/scalar_impl.h"
#include "kernels/tile_ops_impl.h"
#include "kernels/x86_impl.h"

namespace kl {

namespace {
Kernels make_scalar() {
  Kernels k;
  k.isa = Isa::Scalar;
  k.matmul_rows[size_t(DType::F32)] = scalar::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = scalar::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = scalar::matmul_rows_f16;
  k.matmul_rows_bf16_dot = scalar::matmul_rows_bf16_dot;
  k.dot_f32 = scalar::dot_f32;
  k.axpy_f32 = scalar::axpy_f32;
  k.gemm_f32 = scalar::gemm_f32;
  k.online_softmax_f32 = scalar::online_softmax_f32;
  k.gemm_bf16 = scalar::gemm_bf16;
  k.pack_bf16_rows = scalar::pack_bf16_rows;
  k.pack_bf16_pairs = scalar::pack_bf16_pairs;
  k.interleave_bf16_pairs = scalar::interleave_bf16_pairs;
  k.kda_recurrent_head = kl::kda_recurrent_head;  // the scalar twins (kernels/kda.cpp)
  k.kda_chunk_head = kl::kda_chunk_head;
  return k;
}

#if defined(KL_HAVE_X86_KERNELS)
Kernels make_avx2() {
  Kernels k = make_scalar();
  k.isa = Isa::Avx2;
  k.matmul_rows[size_t(DType::F32)] = avx2::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = avx2::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = avx2::matmul_rows_f16;
  k.matmul_rows_bf16_dot = nullptr;  // no bf16 dot instruction below AVX512_BF16
  k.dot_f32 = avx2::dot_f32;
  k.axpy_f32 = avx2::axpy_f32;
  k.gemm_f32 = avx2::gemm_f32;
  k.online_softmax_f32 = avx2::online_softmax_f32;
  k.gemm_bf16 = avx2::gemm_bf16;
  k.pack_bf16_rows = avx2::pack_bf16_rows;
  k.pack_bf16_pairs = avx2::pack_bf16_pairs;
  k.interleave_bf16_pairs = avx2::interleave_bf16_pairs;
  k.kda_recurrent_head = avx2::kda_recurrent_head;
  k.kda_chunk_head = avx2::kda_chunk_head;
  return k;
}

Kernels make_avx512(bool bf16_dot) {
  Kernels k = make_scalar();
  k.isa = Isa::Avx512;
  k.matmul_rows[size_t(DType::F32)] = avx512::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = avx512::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = avx512::matmul_rows_f16;
  k.matmul_rows_bf16_dot = bf16_dot ? avx512::matmul_rows_bf16_dot : nullptr;
  k.dot_f32 = avx512::dot_f32;
  k.axpy_f32 = avx512::axpy_f32;
  k.gemm_f32 = avx512::gemm_f32;
  k.online_softmax_f32 = avx512::online_softmax_f32;
  k.gemm_bf16 = bf16_dot ? avx512::gemm_bf16 : avx512::gemm_bf16_nodot;
  k.pack_bf16_rows = avx512::pack_bf16_rows;
  k.pack_bf16_pairs = avx512::pack_bf16_pairs;
  k.interleave_bf16_pairs = avx512::interleave_bf16_pairs;
  k.kda_recurrent_head = avx512::kda_recurrent_head;
  k.kda_chunk_head = avx512::kda_chunk_head;
  return k;
}
#endif

#if defined(__aarch64__) && defined(KL_HAVE_NEON_KERNELS)
// Every op of the table has a NEON version; gemm_bf16 widens bf16 to fp32 (no bf16 dot: BFDOT
// is an optional armv8.6 extension).
Kernels make_neon() {
  Kernels k = make_scalar();
  k.isa = Isa::Neon;
  k.matmul_rows[size_t(DType::F32)] = neon::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = neon::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = neon::matmul_rows_f16;
  k.matmul_rows_bf16_dot = nullptr;  // no bf16 dot path (BFDOT is an optional armv8.6 extension)
  k.dot_f32 = neon::dot_f32;
  k.axpy_f32 = neon::axpy_f32;
  k.gemm_f32 = neon::gemm_f32;
  k.online_softmax_f32 = neon::online_softmax_f32;
  k.gemm_bf16 = neon::gemm_bf16;
  k.pack_bf16_rows = neon::pack_bf16_rows;
  k.pack_bf16_pairs = neon::pack_bf16_pairs;
  k.interleave_bf16_pairs = neon::interleave_bf16_pairs;
  k.kda_recurrent_head = neon::kda_recurrent_head;
  k.kda_chunk_head = neon::kda_chunk_head;
  return k;
}
#endif
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
#if defined(KL_HAVE_X86_KERNELS)
    case Isa::Avx2: {
      static const Kernels k = make_avx2();
      return k;
    }
    case Isa::Avx512: {
      // Two immutable tables, built once: with and without the bf16 dot kernel.
      static const Kernels with_dot = make_avx512(true);
      static const Kernels without_dot = make_avx512(false);
      return cpu.avx512_bf16 ? with_dot : without_dot;
    }
#endif
#if defined(__aarch64__) && defined(KL_HAVE_NEON_KERNELS)
    case Isa::Neon: {
      static const Kernels k = make_neon();
      return k;
    }
#endif
    default:
      // No fast path for this ISA in this build: the scalar table serves it.
      return scalar_kernels();
  }
}

MatmulRowsFn matmul_rows_fn(const Kernels& k, DType t) {
  if (t == DType::BF16 && k.bf16_activations) {
    if (!k.matmul_rows_bf16_dot)
      fail("matmul: bf16 activations requested but the ", isa_name(k.isa),
           " kernels have no bf16 dot path on this CPU");
    return k.matmul_rows_bf16_dot;
  }
  size_t i = size_t(t);
  return i < std::size(k.matmul_rows) ? k.matmul_rows[i] : nullptr;
}

namespace {
// Work split of the threaded driver. Rows per task are a multiple of 16: whole 4-row tiles, and
// neighbouring tasks write y in separate 64-byte lines (when y rows are 64-byte aligned).
constexpr int64_t kRowAlign = 16;
// Decode-sized batches (n <= kSmallN) stream each weight byte once and are bandwidth bound:
// ~4 tasks per thread balance the load.
constexpr int64_t kSmallN = 4;
constexpr int64_t kTasksPerThread = 4;
// Larger batches are compute bound: a task's weight rows should stay in L2 while every token
// tile passes over them (the kernels block their rows the same way inside a task).
constexpr int64_t kTaskWeightBytes = 256 * 1024;
// From about this many tokens on, the AVX-512 kernels run a call as a packed GEMM over panels of
// 64 rows, chunks of 128 (matmul_avx512.cpp, kGemmMinTokens; the bf16 dot path of a wide weight
// from n > 6): a task gets at least one whole chunk, so that its panels are full and each pass
// over x serves 128 outputs of every token (a wide weight, e.g. 2304 x 9216, would otherwise
// give tasks of 16 rows). The row-tiled kernels below that n block their rows themselves.
constexpr int64_t kGemmTokens = 16;
constexpr int64_t kGemmTaskRows = 128;
// A task must do at least this many multiply-adds to pay for its hand-off (~microseconds).
constexpr int64_t kMinTaskMacs = 64 * 1024;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The fewest rows a prompt-sized task (n > kSmallN) should get: an L2-sized row block, and from
// kGemmTokens on a whole GEMM chunk.
int64_t prompt_task_rows(const WeightView& w, int64_t n) {
  int64_t per = kTaskWeightBytes / std::max<int64_t>(1, int64_t(w.row_bytes()));
  return n >= kGemmTokens ? std::max(per, kGemmTaskRows) : per;
}

// Rows per task, final: at least kMinTaskMacs multiply-adds, whole kRowAlign groups.
int64_t aligned_task_rows(int64_t per, const WeightView& w, int64_t n) {
  return round_up(std::max({per, int64_t(1), kMinTaskMacs / std::max<int64_t>(1, w.cols * n)}), kRowAlign);
}
}  // namespace

void matmul_strided(const Context& ctx, const WeightView& w, const float* x, int64_t n, int64_t ldx,
                    float* y, int64_t ldy) {
  MatmulRowsFn fn = matmul_rows_fn(*ctx.k, w.dtype);
  if (!fn) fail("matmul: weights in ", dtype_name(w.dtype), " are not supported");
  if (n <= 0 || w.rows <= 0) return;
  MatmulArgs a{&w, x, n, ldx, y, ldy};
  const int64_t threads = ctx.pool ? ctx.pool->size() : 1;
  if (threads == 1) {
    fn(a, 0, w.rows);
    return;
  }
  int64_t per;
  if (n <= kSmallN)
    per = (w.rows + threads * kTasksPerThread - 1) / (threads * kTasksPerThread);
  else  // at least one task per thread
    per = std::min(prompt_task_rows(w, n), (w.rows + threads - 1) / threads);
  per = aligned_task_rows(per, w, n);
  const int64_t row_tasks = (w.rows + per - 1) / per;

  // Few rows and many tokens (a small weight over a prompt): split the tokens as well.
  int64_t token_tasks = 1;
  if (row_tasks < threads && n > kSmallN) {
    token_tasks = std::min((threads + row_tasks - 1) / row_tasks, n / kSmallN);
    token_tasks = std::max<int64_t>(1, token_tasks);
  }
  const int64_t tokens_per = (n + token_tasks - 1) / token_tasks;
  ctx.pool->parallel_for(row_tasks * token_tasks, [&](int64_t task, int) {
    const int64_t r0 = (task % row_tasks) * per, r1 = std::min(w.rows, r0 + per);
    const int64_t t0 = (task / row_tasks) * tokens_per, t1 = std::min(n, t0 + tokens_per);
    if (r0 >= r1 || t0 >= t1) return;
    MatmulArgs part{&w, x + t0 * ldx, t1 - t0, ldx, y + t0 * ldy, ldy};
    fn(part, r0, r1);
  });
}

void matmul(const Context& ctx, const WeightView& w, const float* x, int64_t n, float* y) {
  matmul_strided(ctx, w, x, n, w.cols, y, w.rows);
}

namespace {
// Batches: each job's rows are cut into tasks of about total / (threads · kBatchTasksPerThread)
// weight bytes (dynamic hand-out then leaves a thread idle for at most ~1/16 of the call), and no
// smaller than a job's share of a lone call would be for prompts (L2-sized row blocks).
constexpr int64_t kBatchTasksPerThread = 8;
constexpr int64_t kMaxBatchJobs = 1024;
}  // namespace

void matmul_batch(const Context& ctx, const MatmulJob* jobs, int64_t count) {
  KL_ASSERT(count >= 0 && count <= kMaxBatchJobs);
  const int64_t threads = ctx.pool ? ctx.pool->size() : 1;
  MatmulRowsFn fns[kMaxBatchJobs];
  for (int64_t j = 0; j < count; j++) {
    const MatmulJob& b = jobs[j];
    fns[j] = matmul_rows_fn(*ctx.k, b.w->dtype);
    if (!fns[j]) fail("matmul: weights in ", dtype_name(b.w->dtype), " are not supported");
  }
  if (threads == 1 || count == 1) {
    for (int64_t j = 0; j < count; j++) {
      const MatmulJob& b = jobs[j];
      if (threads == 1) {
        if (b.n > 0 && b.w->rows > 0) fns[j](MatmulArgs{b.w, b.x, b.n, b.ldx, b.y, b.ldy}, 0, b.w->rows);
      } else {
        matmul_strided(ctx, *b.w, b.x, b.n, b.ldx, b.y, b.ldy);
      }
    }
    return;
  }
  // Rows per task of each job, and where each job's tasks start in the combined range.
  double total_bytes = 0;
  for (int64_t j = 0; j < count; j++)
    if (jobs[j].n > 0) total_bytes += double(jobs[j].w->rows) * double(jobs[j].w->row_bytes());
  const double target = std::max(1.0, total_bytes / double(threads * kBatchTasksPerThread));
  int64_t per_task[kMaxBatchJobs], first_task[kMaxBatchJobs + 1];
  first_task[0] = 0;
  for (int64_t j = 0; j < count; j++) {
    const MatmulJob& b = jobs[j];
    int64_t tasks = 0;
    per_task[j] = 1;
    if (b.n > 0 && b.w->rows > 0) {
      int64_t per = int64_t(target / double(std::max<size_t>(1, b.w->row_bytes())));
      if (b.n > kSmallN) per = std::max(per, prompt_task_rows(*b.w, b.n));
      per = aligned_task_rows(per, *b.w, b.n);
      per_task[j] = per;
      tasks = (b.w->rows + per - 1) / per;
    }
    first_task[j + 1] = first_task[j] + tasks;
  }
  ctx.pool->parallel_for(first_task[count], [&](int64_t task, int) {
    const int64_t j = std::upper_bound(first_task, first_task + count + 1, task) - first_task - 1;
    const MatmulJob& b = jobs[j];
    const int64_t r0 = (task - first_task[j]) * per_task[j], r1 = std::min(b.w->rows, r0 + per_task[j]);
    fns[j](MatmulArgs{b.w, b.x, b.n, b.ldx, b.y, b.ldy}, r0, r1);
  });
}

}  // namespace kl
