// Fills the kernel tables. The only place that maps an ISA to implementations.
#include <algorithm>
#include <cmath>
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

Kernels make_avx512(bool bf16_dot, bool halves) {
  Kernels k = make_scalar();
  k.isa = Isa::Avx512;
  k.matmul_rows[size_t(DType::F32)] = halves ? avx512::matmul_rows_f32_halves : avx512::matmul_rows_f32;
  k.matmul_rows[size_t(DType::BF16)] = halves ? avx512::matmul_rows_bf16_halves : avx512::matmul_rows_bf16;
  k.matmul_rows[size_t(DType::F16)] = halves ? avx512::matmul_rows_f16_halves : avx512::matmul_rows_f16;
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
      // Immutable tables, built once: with and without the bf16 dot kernel, for cores that run
      // 512-bit operations whole or as two halves.
      static const Kernels tables[2][2] = {{make_avx512(false, false), make_avx512(false, true)},
                                           {make_avx512(true, false), make_avx512(true, true)}};
      return tables[cpu.avx512_bf16][cpu.avx512_halves];
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
// Decode-sized calls (n <= kSmallN) stream each weight byte once and are bandwidth bound: their
// rows are handed out in guided order (decode_tasks below).
constexpr int64_t kSmallN = 4;
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

constexpr int64_t kMaxBatchJobs = 1024;

// Decode-sized calls: the weight bytes of all the call's jobs, end to end, in guided order. Task
// k starts where 1 - q^k of the bytes lie behind it (q = 1 - 1/(kGuidedShare·threads)): each
// task takes that share of the bytes still left, so the first tasks are long streams and the
// last ones short, down to kMinDecodeTaskBytes, after which tasks keep that size. The threads
// then finish within one small task of each other. With equal tasks (4 per thread, 8 per
// thread in batches) the first thread done waited for up to a whole task of the other: on the
// Zen 4 host, 2 threads, the caller spent 1.7-5.3 % of a decode step waiting for the worker
// at the end of calls (2.2-2.9 % in three interleaved runs), 0.7-1.7 % with guided tasks.
constexpr double kGuidedShare = 2;
constexpr double kMinDecodeTaskBytes = 256 * 1024;

void decode_tasks(const Context& ctx, const MatmulJob* jobs, const MatmulRowsFn* fns, int64_t count) {
  // Where each job's bytes start in the call's (a row of no columns counts one byte: its
  // outputs are zeros to write).
  int64_t first[kMaxBatchJobs + 1];
  auto row_bytes = [&](int64_t j) { return std::max<int64_t>(1, int64_t(jobs[j].w->row_bytes())); };
  first[0] = 0;
  for (int64_t j = 0; j < count; j++) first[j + 1] = first[j] + (jobs[j].n > 0 ? jobs[j].w->rows * row_bytes(j) : 0);
  const double total = double(first[count]);
  if (total <= 0) return;
  const double q = 1 - 1 / (kGuidedShare * double(ctx.pool->size())), m = kMinDecodeTaskBytes;
  const int64_t guided =
      total * (1 - q) > m ? int64_t(std::ceil(std::log(m / (total * (1 - q))) / std::log(q))) : 0;
  const double guided_end = total * (1 - std::pow(q, double(guided)));
  const int64_t tasks = guided + int64_t(std::ceil((total - guided_end) / m));
  // (job, row) at the k-th task boundary; rows rounded down to whole kRowAlign groups, the last
  // boundary is (count, 0). Neighbouring tasks compute a shared boundary the same way.
  struct Pos {
    int64_t j, r;
  };
  auto boundary = [&](int64_t k) -> Pos {
    if (k >= tasks) return {count, 0};
    const double at = k <= guided ? total * (1 - std::pow(q, double(k))) : guided_end + double(k - guided) * m;
    const int64_t off = std::min(int64_t(at), first[count] - 1);
    const int64_t j = std::upper_bound(first, first + count + 1, off) - first - 1;
    const int64_t row = (off - first[j]) / row_bytes(j);
    return {j, row / kRowAlign * kRowAlign};
  };
  ctx.pool->parallel_for(tasks, [&](int64_t k, int) {
    const Pos a = boundary(k), b = boundary(k + 1);
    for (int64_t j = a.j; j <= b.j && j < count; j++) {
      const MatmulJob& job = jobs[j];
      const int64_t r0 = j == a.j ? a.r : 0, r1 = j == b.j ? b.r : job.w->rows;
      if (job.n > 0 && r0 < r1) fns[j](MatmulArgs{job.w, job.x, job.n, job.ldx, job.y, job.ldy}, r0, r1);
    }
  });
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
  if (n <= kSmallN) {
    const MatmulJob job{&w, x, n, ldx, y, ldy};
    decode_tasks(ctx, &job, &fn, 1);
    return;
  }
  // At least one task per thread.
  const int64_t per = aligned_task_rows(std::min(prompt_task_rows(w, n), (w.rows + threads - 1) / threads), w, n);
  const int64_t row_tasks = (w.rows + per - 1) / per;

  // Few rows and many tokens (a small weight over a prompt): split the tokens as well.
  int64_t token_tasks = 1;
  if (row_tasks < threads) {
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
// Batches with a prompt-sized job: each job's rows are cut into tasks of about total / (threads ·
// kBatchTasksPerThread) weight bytes (dynamic hand-out then leaves a thread idle for at most
// ~1/16 of the call), and no smaller than a job's share of a lone call would be for prompts
// (L2-sized row blocks). Decode-sized batches go through decode_tasks.
constexpr int64_t kBatchTasksPerThread = 8;
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
  bool decode = true;
  for (int64_t j = 0; j < count; j++) decode = decode && jobs[j].n <= kSmallN;
  if (decode) {
    decode_tasks(ctx, jobs, fns, count);
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
