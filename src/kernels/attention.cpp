// Absorbed latent attention (attention.h): the tiled kernel and its plain twin.
//
// Layout of the tiled kernel. Columns are (query, head) pairs, column i·H + h for query i, in
// groups of whole queries (about kGroupCols columns). For a group and a key tile of tn rows:
//   S^T [tn, cols]   = rows [tn, kv_dim] · Q^T [kv_dim, cols]    (gemm_f32, A = the cache rows)
//   online softmax per column (causal: column i·H + h sees keys <= ctx0 + i)
//   O   [cols, v_dim] = alpha ⊙ O + P [cols, tn] · rows[:, :v_dim]  (gemm_f32, A = S^T read
//                                                                  transposed, B = the cache rows)
// The tile (tn·kv_dim floats) stays in L2 between the two products, so the cache is streamed
// from memory once per group. Scores are kept keys x columns so neither product needs the
// cache transposed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/attention_util.h"
#include "kernels/tile_ops.h"

namespace kl {

using attn::align16;
using attn::for_tasks;
using attn::tile_rows;

namespace {

constexpr int64_t kTileRows = 128;  // keys per tile: 128·576 floats = 288 KiB, L2-resident
static_assert(kTileRows % 2 == 0, "packed bf16 probabilities need an even tile");
constexpr int64_t kGroupCols = 64;  // columns per group: 4 register vectors of scores
// With few groups (decode: one), the context of each group is split so that the pool gets
// about this many tasks per thread; the partial results are merged afterwards.
constexpr int64_t kSplitsPerThread = 4;


int64_t group_queries(int64_t H) { return std::max<int64_t>(1, kGroupCols / std::max<int64_t>(H, 1)); }

// Offsets (in floats) of the scratch areas.
struct Layout {
  int64_t cols = 0;  // most columns of a group
  size_t qt = 0, st = 0, m = 0, l = 0, alpha = 0, per_thread = 0;
  size_t rp = 0, pk = 0, vp = 0;  // bf16 cache only: padded rows, packed P, pair-packed values
  size_t partials = 0, max_partials = 0, partial_floats = 0;  // each: O [cols, v_dim], m, l
  size_t total = 0;
};

Layout layout(int64_t H, int64_t kv_dim, int64_t v_dim, int n_threads) {
  Layout L;
  L.cols = group_queries(H) * H;
  const size_t c = size_t(L.cols);
  L.qt = 0;
  L.st = L.qt + align16(size_t(kv_dim) * c);
  L.m = L.st + align16(size_t(kTileRows) * c);
  L.l = L.m + align16(c);
  L.alpha = L.l + align16(c);
  // bf16 areas (sizes in floats, two bf16 values each); qt also holds the pair-packed Q^T.
  L.rp = L.alpha + align16(c);
  L.pk = L.rp + align16(size_t(kTileRows * (kv_dim + 1) + 1) / 2);
  L.vp = L.pk + align16(c * size_t(kTileRows) / 2);
  L.per_thread = L.vp + align16(size_t(kTileRows * v_dim) / 2);
  L.partials = L.per_thread * size_t(n_threads);
  L.max_partials = size_t(2 * kSplitsPerThread * n_threads);
  L.partial_floats = align16(c * size_t(v_dim) + 2 * c);
  L.total = L.partials + L.max_partials * L.partial_floats;
  return L;
}

// Running state of one group over a range of keys.
struct GroupAcc {
  float* o;  // [cols, v_dim]
  float* m;  // [cols]
  float* l;  // [cols]
};

// Attends the columns of group g (queries q0 .. q0 + nq - 1) to keys [k0, k1).
void attend_range(const Context& ctx, const LatentAttnArgs& a, float* thread_scratch, const Layout& L, int64_t q0,
                  int64_t nq, int64_t k0, int64_t k1, const GroupAcc& acc) {
  const int64_t cols = nq * a.H;
  float* qt = thread_scratch + L.qt;  // [kv_dim, cols]
  float* st = thread_scratch + L.st;  // [tile, cols]
  float* alpha = thread_scratch + L.alpha;
  const float* q = a.q + q0 * a.H * a.kv_dim;
  const bool bf16 = a.cache_dtype == DType::BF16;
  const int64_t kv_even = a.kv_dim + a.kv_dim % 2;
  auto* qp = reinterpret_cast<uint16_t*>(qt);  // bf16: Q^T pair-packed [kv_even / 2, cols, 2]
  auto* rp = reinterpret_cast<uint16_t*>(thread_scratch + L.rp);
  auto* pk = reinterpret_cast<uint16_t*>(thread_scratch + L.pk);
  auto* vp = reinterpret_cast<uint16_t*>(thread_scratch + L.vp);
  if (bf16) {
    PackBf16Args p;  // Q^T [kv_dim, cols]: X[d, c] = q[c·kv_dim + d]
    p.src = q;
    p.rows = a.kv_dim;
    p.cols = cols;
    p.rs = 1;
    p.cs = a.kv_dim;
    p.dst = qp;
    p.ldd = 2 * cols;
    ctx.k->pack_bf16_pairs(p);
  } else {
    for (int64_t c = 0; c < cols; c++)
      for (int64_t d = 0; d < a.kv_dim; d++) qt[d * cols + c] = q[c * a.kv_dim + d];
  }
  std::fill(acc.o, acc.o + cols * a.v_dim, 0.f);
  std::fill(acc.m, acc.m + cols, -std::numeric_limits<float>::infinity());
  std::fill(acc.l, acc.l + cols, 0.f);

  for (int64_t t0 = k0; t0 < k1;) {
    const int64_t tn = tile_rows(t0, k1, kTileRows, a.page_rows);
    const int64_t in_page = t0 % a.page_rows;
    // The next tile's rows (one page range), fetched from memory while this tile computes: the
    // first half during the scores, the second during the values.
    const char* next = nullptr;
    int64_t next_bytes = 0;
    if (bf16 && t0 + tn < k1) {
      const int64_t t1 = t0 + tn, row_bytes = a.kv_dim * int64_t(sizeof(uint16_t));
      next = static_cast<const char*>(a.pages[t1 / a.page_rows]) + t1 % a.page_rows * row_bytes;
      next_bytes = tile_rows(t1, k1, kTileRows, a.page_rows) * row_bytes;
    }
    const int64_t half = next_bytes / 128 * 64;
    if (bf16) {
      // S^T = rows · Q^T straight from the page (rows are A: k contiguous), or from a
      // zero-padded copy when kv_dim is odd.
      const uint16_t* rows = static_cast<const uint16_t*>(a.pages[t0 / a.page_rows]) + in_page * a.kv_dim;
      const uint16_t* ra = rows;
      if (a.kv_dim % 2) {
        for (int64_t r = 0; r < tn; r++) {
          std::copy(rows + r * a.kv_dim, rows + (r + 1) * a.kv_dim, rp + r * kv_even);
          rp[r * kv_even + a.kv_dim] = 0;
        }
        ra = rp;
      }
      GemmBf16Args s;
      s.M = tn;
      s.N = cols;
      s.K = kv_even;
      s.a = ra;
      s.lda = kv_even;
      s.b = qp;
      s.ldb = 2 * cols;
      s.c = st;
      s.ldc = cols;
      s.prefetch = next;
      s.prefetch_bytes = half;
      ctx.k->gemm_bf16(s);
    } else {
      GemmF32Args s;
      s.M = tn;
      s.N = cols;
      s.K = a.kv_dim;
      s.a = static_cast<const float*>(a.pages[t0 / a.page_rows]) + in_page * a.kv_dim;
      s.a_rs = a.kv_dim;
      s.b = qt;
      s.ldb = cols;
      s.c = st;
      s.ldc = cols;
      ctx.k->gemm_f32(s);
    }

    OnlineSoftmaxArgs sm;
    sm.s = st;
    sm.n_keys = tn;
    sm.n_cols = cols;
    sm.ld = cols;
    sm.key0 = t0;
    sm.vis0 = a.ctx0 + q0 + 1;
    sm.cols_per_step = a.H;
    sm.m = acc.m;
    sm.l = acc.l;
    sm.alpha = alpha;
    ctx.k->online_softmax_f32(sm);

    if (bf16) {
      // O = alpha ⊙ O + P [cols, tn] · rows[:, :v_dim], both operands bf16.
      const uint16_t* rows = static_cast<const uint16_t*>(a.pages[t0 / a.page_rows]) + in_page * a.kv_dim;
      PackBf16Args p;  // P [cols, tn] from S^T [tn, cols]
      p.src = st;
      p.rows = cols;
      p.cols = tn;
      p.rs = 1;
      p.cs = cols;
      p.dst = pk;
      p.ldd = kTileRows;
      ctx.k->pack_bf16_rows(p);
      InterleaveBf16Args v;
      v.src = rows;
      v.rows = tn;
      v.cols = a.v_dim;
      v.rs = a.kv_dim;
      v.dst = vp;
      v.ldd = 2 * a.v_dim;
      ctx.k->interleave_bf16_pairs(v);
      GemmBf16Args o;
      o.M = cols;
      o.N = a.v_dim;
      o.K = tn + tn % 2;
      o.a = pk;
      o.lda = kTileRows;
      o.b = vp;
      o.ldb = 2 * a.v_dim;
      o.c = acc.o;
      o.ldc = a.v_dim;
      o.accumulate = true;
      o.row_scale = alpha;
      o.prefetch = next ? next + half : nullptr;
      o.prefetch_bytes = next_bytes - half;
      ctx.k->gemm_bf16(o);
    } else {
      const float* rows = static_cast<const float*>(a.pages[t0 / a.page_rows]) + in_page * a.kv_dim;
      GemmF32Args o;
      o.M = cols;
      o.N = a.v_dim;
      o.K = tn;
      o.a = st;
      o.a_rs = 1;
      o.a_cs = cols;
      o.b = rows;
      o.ldb = a.kv_dim;
      o.c = acc.o;
      o.ldc = a.v_dim;
      o.accumulate = true;
      o.row_scale = alpha;
      ctx.k->gemm_f32(o);
    }
    t0 += tn;
  }
}

}  // namespace

size_t latent_attention_absorbed_scratch_floats(int64_t H, int64_t kv_dim, int64_t v_dim, int n_threads) {
  return layout(H, kv_dim, v_dim, std::max(n_threads, 1)).total;
}

void latent_attention_absorbed(const Context& ctx, const LatentAttnArgs& a) {
  if (a.n_q <= 0) return;
  if (a.cache_dtype != DType::F32 && a.cache_dtype != DType::BF16)
    fail("latent_attention_absorbed: cache dtype ", dtype_name(a.cache_dtype), " is not supported");
  const int threads = ctx.pool ? ctx.pool->size() : 1;
  const Layout L = layout(a.H, a.kv_dim, a.v_dim, threads);
  if (!a.scratch || a.scratch_floats < L.total)
    fail("latent_attention_absorbed: scratch of ", a.scratch_floats, " floats, ", L.total, " needed for ", threads,
         " threads");
  const int64_t qpg = group_queries(a.H);
  const int64_t groups = (a.n_q + qpg - 1) / qpg;
  const int64_t target = kSplitsPerThread * threads;
  // Splits of each group's context; a split gets at least two tiles.
  const int64_t max_tiles = (a.ctx0 + a.n_q + kTileRows - 1) / kTileRows;
  const int64_t splits = groups >= target ? 1 : std::clamp<int64_t>((target + groups - 1) / groups, 1, std::max<int64_t>(1, max_tiles / 2));
  // groups < target here, so groups·splits < 2·target = max_partials.

  auto partial = [&](int64_t task) { return a.scratch + L.partials + size_t(task) * L.partial_floats; };
  for_tasks(ctx, groups * splits, [&](int64_t task, int thread) {
    const int64_t g = task / splits, s = task % splits;
    const int64_t q0 = g * qpg, nq = std::min(qpg, a.n_q - q0), cols = nq * a.H;
    const int64_t n_keys = a.ctx0 + q0 + nq;  // keys seen by the group's last query
    const int64_t tiles = (n_keys + kTileRows - 1) / kTileRows;
    const int64_t k0 = std::min(n_keys, s * tiles / splits * kTileRows);
    const int64_t k1 = std::min(n_keys, (s + 1) * tiles / splits * kTileRows);
    float* ts = a.scratch + size_t(thread) * L.per_thread;
    GroupAcc acc;
    if (splits == 1) {
      acc = {a.out + q0 * a.H * a.v_dim, ts + L.m, ts + L.l};
    } else {
      float* p = partial(task);
      acc = {p, p + size_t(cols * a.v_dim), p + size_t(cols * a.v_dim + cols)};
    }
    attend_range(ctx, a, ts, L, q0, nq, k0, k1, acc);
    if (splits == 1) {
      for (int64_t c = 0; c < cols; c++) {
        const float inv = 1.f / acc.l[c];
        for (int64_t e = 0; e < a.v_dim; e++) acc.o[c * a.v_dim + e] *= inv;
      }
    }
  });
  if (splits == 1) return;

  // Merge the splits of each group: out = Σ_s e^(m_s - m) O_s / Σ_s e^(m_s - m) l_s.
  for_tasks(ctx, groups, [&](int64_t g, int) {
    const int64_t q0 = g * qpg, nq = std::min(qpg, a.n_q - q0), cols = nq * a.H;
    const size_t ov = size_t(cols * a.v_dim);
    for (int64_t c = 0; c < cols; c++) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < splits; s++) m = std::max(m, partial(g * splits + s)[ov + size_t(c)]);
      float* out = a.out + (q0 * a.H + c) * a.v_dim;
      std::fill(out, out + a.v_dim, 0.f);
      float l = 0.f;
      for (int64_t s = 0; s < splits; s++) {
        const float* p = partial(g * splits + s);
        const float ms = p[ov + size_t(c)];
        if (ms == -std::numeric_limits<float>::infinity()) continue;  // split saw no key of this column
        const float w = std::exp(ms - m);
        l += w * p[ov + size_t(cols + c)];
        ctx.k->axpy_f32(w, p + c * a.v_dim, out, a.v_dim);
      }
      const float inv = 1.f / l;
      for (int64_t e = 0; e < a.v_dim; e++) out[e] *= inv;
    }
  });
}

// ---- the twin ----

namespace {
void attend_one(const Context& ctx, const LatentAttnArgs& a, int64_t i, int64_t h) {
  const bool bf16 = a.cache_dtype == DType::BF16;
  const float* q = a.q + (i * a.H + h) * a.kv_dim;
  std::vector<float> qr, wide;  // bf16 cache: the rounded query, one widened row
  if (bf16) {
    qr.resize(size_t(a.kv_dim));
    wide.resize(size_t(a.kv_dim));
    for (int64_t d = 0; d < a.kv_dim; d++) qr[size_t(d)] = bf16_to_f32(f32_to_bf16(q[d]));
    q = qr.data();
  }
  float* o = a.out + (i * a.H + h) * a.v_dim;
  std::memset(o, 0, sizeof(float) * size_t(a.v_dim));
  const int64_t n_ctx = a.ctx0 + i + 1;
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.f;
  for (int64_t t = 0; t < n_ctx; t++) {
    const void* page = a.pages[t / a.page_rows];
    const float* row;
    if (bf16) {
      convert_to_f32(DType::BF16, static_cast<const uint16_t*>(page) + (t % a.page_rows) * a.kv_dim, wide.data(),
                     size_t(a.kv_dim));
      row = wide.data();
    } else {
      row = static_cast<const float*>(page) + (t % a.page_rows) * a.kv_dim;
    }
    const float s = ctx.k->dot_f32(q, row, a.kv_dim);
    if (s > m) {  // rescale what has been accumulated so far
      const float r = std::exp(m - s);
      l *= r;
      for (int64_t e = 0; e < a.v_dim; e++) o[e] *= r;
      m = s;
    }
    const float p = std::exp(s - m);
    l += p;
    ctx.k->axpy_f32(p, row, o, a.v_dim);
  }
  const float inv = 1.f / l;
  for (int64_t e = 0; e < a.v_dim; e++) o[e] *= inv;
}
}  // namespace

void latent_attention_absorbed_reference(const Context& ctx, const LatentAttnArgs& a) {
  for_tasks(ctx, a.n_q * a.H, [&](int64_t task, int) { attend_one(ctx, a, task / a.H, task % a.H); });
}

}  // namespace kl
