// Decompressed latent attention (attention.h): the tiled kernel and its plain twin.
//
// Per key tile of tn cache rows:
//   KV [tn, H·(dk + dv)] = rows[:, :lat] · W_kvᵀ          (matmul: threaded, any weight format)
// then for every (head h, block of up to kQueryBlock queries), one task:
//   S^T [tn, nb]  = KV[:, h, :dk] · Q_k^T[h] + rows[:, lat:] · Q_r^T[h]   (gemm_f32 twice)
//   online softmax per query (causal: query i sees keys <= ctx0 + i)
//   out[i, h, :]  = alpha ⊙ out + P [nb, tn] · KV[:, h, dk:]             (gemm_f32)
// Q^T (per head, scale applied) is built once per call. Tasks of one head are consecutive, so
// the head's slice of the decompressed tile is shared in cache by its query blocks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "core/dtype.h"

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

// Keys per tile: the decompressed tile is 128 x 8192 floats (4 MiB) for the real model, in L3,
// and the matmul that makes it has enough tokens to run at its compute-bound rate.
constexpr int64_t kTileRows = 128;
constexpr int64_t kQueryBlock = 64;  // score tile columns: 4 register vectors


static_assert(kTileRows % 2 == 0, "packed bf16 probabilities need an even tile");

int64_t even(int64_t n) { return n + n % 2; }

// Columns of W_kv per pair-packed panel (the bf16 decompression GEMM's B operand).
constexpr int64_t kPanel = 64;
int64_t panels(int64_t cols) { return (cols + kPanel - 1) / kPanel; }

// Offsets in floats. The bf16 areas (bf16 cache only) hold two bf16 values per float.
struct Layout {
  size_t kv = 0, qt = 0, m = 0, l = 0, acc = 0;
  size_t wide = 0, kb = 0, vb = 0, rp = 0, qk = 0, qr = 0, wpk = 0;  // bf16 cache only
  size_t threads = 0;
  size_t st = 0, alpha = 0, pk = 0, kvh = 0, per_thread = 0;  // offsets inside one thread's area
  size_t total = 0;
};

Layout layout(int64_t max_q, int64_t H, int64_t dk, int64_t dr, int64_t dv, int64_t lat, int n_threads) {
  Layout L;
  L.kv = 0;
  const int64_t max_qp = (max_q + kQueryBlock - 1) / kQueryBlock * kQueryBlock;  // whole blocks
  L.qt = L.kv + align16(size_t(kTileRows * H * (dk + dv)));
  L.m = L.qt + align16(size_t(H * (dk + dr) * max_qp));
  L.l = L.m + align16(size_t(H * max_q));
  L.acc = L.l + align16(size_t(H * max_q));
  L.wide = L.acc + align16(size_t(H * max_qp * dv));               // tile rows widened [tile, lat + dr]
  L.kb = L.wide + align16(size_t(kTileRows * (lat + dr)));           // K per head [H, tile, dk even]
  L.vb = L.kb + align16(size_t(H * kTileRows * even(dk)) / 2);      // V per head, pair-packed
  L.rp = L.vb + align16(size_t(H * kTileRows * dv) / 2);            // shared key part [tile, dr even]
  L.qk = L.rp + align16(size_t(kTileRows * even(dr)) / 2);          // Q_k^T per (head, block), pair-packed
  L.qr = L.qk + align16(size_t(H * even(dk) * max_qp) / 2);         // Q_r^T per (head, block), pair-packed
  L.wpk = L.qr + align16(size_t(H * even(dr) * max_qp) / 2);       // W_kv pair-packed per (head, panel)
  L.threads = L.wpk + align16(size_t(H * panels(dk + dv) * kPanel * even(lat)) / 2);
  L.st = 0;
  L.alpha = L.st + align16(size_t(kTileRows * kQueryBlock));
  L.pk = L.alpha + align16(size_t(kQueryBlock));                    // P [block, tile] bf16
  L.kvh = L.pk + align16(size_t(kQueryBlock * kTileRows) / 2);      // one head's K and V [tile, dk + dv]
  L.per_thread = L.kvh + align16(size_t(kTileRows * (dk + dv)));
  L.total = L.threads + L.per_thread * size_t(n_threads);
  return L;
}

void check_args(const LatentDecompArgs& a, const char* who) {
  if (!a.w_kv || a.w_kv->rows != a.H * (a.dk + a.dv) || a.w_kv->cols != a.lat)
    fail(who, ": w_kv must be [H·(dk + dv), lat] = [", a.H * (a.dk + a.dv), ", ", a.lat, "]");
  if (a.cache_dtype != DType::F32 && a.cache_dtype != DType::BF16)
    fail(who, ": cache dtype ", dtype_name(a.cache_dtype), " is not supported");
}

}  // namespace

size_t latent_attention_decompressed_scratch_floats(int64_t max_q, int64_t H, int64_t lat, int64_t dk, int64_t dr,
                                                    int64_t dv, int n_threads) {
  return layout(max_q, H, dk, dr, dv, lat, std::max(n_threads, 1)).total;
}

void latent_attention_decompressed(const Context& ctx, const LatentDecompArgs& a) {
  if (a.n_q <= 0) return;
  check_args(a, "latent_attention_decompressed");
  const int threads = ctx.pool ? ctx.pool->size() : 1;
  const Layout L = layout(a.n_q, a.H, a.dk, a.dr, a.dv, a.lat, threads);
  if (!a.scratch || a.scratch_floats < L.total)
    fail("latent_attention_decompressed: scratch of ", a.scratch_floats, " floats, ", L.total, " needed for ", a.n_q,
         " queries and ", threads, " threads");
  const bool bf16 = a.cache_dtype == DType::BF16;
  const int64_t n_q = a.n_q, H = a.H, dq = a.dk + a.dr, kvw = a.dk + a.dv, ld_kv = H * kvw;
  const int64_t kv_dim = a.lat + a.dr, dk_e = even(a.dk), dr_e = even(a.dr);
  float* kv = a.scratch + L.kv;  // [tile, H, dk + dv]
  // Q^T per (head, query block), each block contiguous [dq, kQueryBlock]: the B operand of the
  // score GEMM stays in a few KiB (rows n_q apart would alias in the L1 sets).
  float* qt = a.scratch + L.qt;  // [H, blocks, dq, kQueryBlock]
  float* m = a.scratch + L.m;    // [H, n_q]
  float* l = a.scratch + L.l;    // [H, n_q]
  // bf16 cache: operands of gemm_bf16 (tile_ops.h layouts).
  float* wide = a.scratch + L.wide;                                  // tile rows as fp32
  auto* kb = reinterpret_cast<uint16_t*>(a.scratch + L.kb);          // [H, tile, dk_e]
  auto* vb = reinterpret_cast<uint16_t*>(a.scratch + L.vb);          // [H][tile/2, dv, 2]
  auto* rp = reinterpret_cast<uint16_t*>(a.scratch + L.rp);          // [tile, dr_e]
  auto* qk = reinterpret_cast<uint16_t*>(a.scratch + L.qk);          // [H, blocks][dk_e/2, kQueryBlock, 2]
  auto* qr = reinterpret_cast<uint16_t*>(a.scratch + L.qr);          // [H, blocks][dr_e/2, kQueryBlock, 2]
  const int64_t blocks = (n_q + kQueryBlock - 1) / kQueryBlock;
  auto qt_block = [&](int64_t h, int64_t b) { return qt + (h * blocks + b) * dq * kQueryBlock; };
  auto qk_block = [&](int64_t h, int64_t b) { return qk + (h * blocks + b) * dk_e * kQueryBlock; };
  auto qr_block = [&](int64_t h, int64_t b) { return qr + (h * blocks + b) * dr_e * kQueryBlock; };
  // Running outputs per (head, query block), contiguous, so that a task's C streams through
  // the cache (out's rows are H·dv floats apart); copied to out at the end.
  float* acc = a.scratch + L.acc;
  auto acc_block = [&](int64_t h, int64_t b) { return acc + (h * blocks + b) * kQueryBlock * a.dv; };
  // The decompression reads bf16 rows exactly, so with BF16 weights it may use the bf16 dot
  // kernel (exact products) whatever the activation setting.
  Kernels dot_table = *ctx.k;
  if (bf16 && a.w_kv->dtype == DType::BF16 && dot_table.matmul_rows_bf16_dot) dot_table.bf16_activations = true;
  const Context dctx{ctx.pool, &dot_table};

  for_tasks(ctx, H, [&](int64_t h, int) {
    for (int64_t b = 0; b < blocks; b++) {
      const int64_t i0 = b * kQueryBlock, nb = std::min(kQueryBlock, n_q - i0);
      float* qb = qt_block(h, b);
      // 16 source rows read in step, 16 contiguous floats written.
      for (int64_t j0 = 0; j0 < nb; j0 += 16) {
        const int64_t j1 = std::min(nb, j0 + 16);
        for (int64_t d = 0; d < dq; d++)
          for (int64_t j = j0; j < j1; j++) qb[d * kQueryBlock + j] = a.q[(i0 + j) * a.ldq + h * dq + d] * a.scale;
      }
      if (bf16) {
        PackBf16Args p;  // Q_k^T [dk, nb] and Q_r^T [dr, nb], pair-packed
        p.src = qb;
        p.rows = a.dk;
        p.cols = nb;
        p.rs = kQueryBlock;
        p.cs = 1;
        p.dst = qk_block(h, b);
        p.ldd = 2 * kQueryBlock;
        ctx.k->pack_bf16_pairs(p);
        if (a.dr > 0) {
          p.src = qb + a.dk * kQueryBlock;
          p.rows = a.dr;
          p.dst = qr_block(h, b);
          ctx.k->pack_bf16_pairs(p);
        }
      }
    }
    std::fill(acc_block(h, 0), acc_block(h + 1, 0), 0.f);
    std::fill(m + h * n_q, m + (h + 1) * n_q, -std::numeric_limits<float>::infinity());
    std::fill(l + h * n_q, l + (h + 1) * n_q, 0.f);
  });

  // bf16 cache and BF16 weights: the decompression is a bf16 GEMM with the cache rows as A
  // (exact products, as the matmul's bf16 dot path would compute them, without widening the
  // rows or reducing dot products across lanes). W_kv is pair-packed once per call, per head
  // in panels of kPanel columns: B(h, j)[k, n] = W_kv[h·(dk + dv) + j·kPanel + n, k].
  const bool gemm_decomp = bf16 && a.w_kv->dtype == DType::BF16 && a.lat % 2 == 0;
  auto* wpk = reinterpret_cast<uint16_t*>(a.scratch + L.wpk);
  auto w_panel = [&](int64_t h, int64_t j) { return wpk + (h * panels(kvw) + j) * a.lat * kPanel; };
  if (gemm_decomp) {
    for_tasks(ctx, H * panels(kvw), [&](int64_t task, int) {
      const int64_t h = task / panels(kvw), j = task % panels(kvw);
      const int64_t n0 = h * kvw + j * kPanel, nn = std::min(kPanel, kvw - j * kPanel);
      // The 32-bit pairs of W's rows, transposed: pair-packed [lat, nn] with rows of kPanel.
      uint16_t* dst = w_panel(h, j);
      for (int64_t n = 0; n < nn; n++) {
        const auto* row = static_cast<const uint16_t*>(a.w_kv->row(n0 + n));
        for (int64_t k2 = 0; k2 < a.lat / 2; k2++) std::memcpy(dst + 2 * (k2 * kPanel + n), row + 2 * k2, 4);
      }
    });
  }

  const int64_t n_keys = a.ctx0 + n_q;
  for (int64_t t0 = 0; t0 < n_keys;) {
    const int64_t tn = tile_rows(t0, n_keys, kTileRows, a.page_rows);
    const void* page = a.pages[t0 / a.page_rows];
    const int64_t in_page = t0 % a.page_rows;
    const float* rows = nullptr;  // fp32 cache: the tile in place
    if (bf16) {
      const uint16_t* r16 = static_cast<const uint16_t*>(page) + in_page * kv_dim;
      for (int64_t r = 0; r < tn; r++) {
        std::copy(r16 + r * kv_dim + a.lat, r16 + (r + 1) * kv_dim, rp + r * dr_e);
        if (a.dr % 2) rp[r * dr_e + a.dr] = 0;
      }
      if (!gemm_decomp) {  // widen the tile and use the weight format's matmul
        convert_to_f32(DType::BF16, r16, wide, size_t(tn * kv_dim));
        matmul_strided(dctx, *a.w_kv, wide, tn, kv_dim, kv, ld_kv);
      }
      for_tasks(ctx, H, [&](int64_t h, int thread) {
        const float* src = kv + h * kvw;  // K(h) and V(h) of the tile as fp32 rows
        int64_t lds = ld_kv;
        if (gemm_decomp) {  // [tile, dk + dv] = rows[:, :lat] · W_kv(h)ᵀ, the rows as A straight from the page
          float* kvh = a.scratch + L.threads + size_t(thread) * L.per_thread + L.kvh;
          for (int64_t j = 0; j < panels(kvw); j++) {
            GemmBf16Args g;
            g.M = tn;
            g.N = std::min(kPanel, kvw - j * kPanel);
            g.K = a.lat;
            g.a = r16;
            g.lda = kv_dim;
            g.b = w_panel(h, j);
            g.ldb = 2 * kPanel;
            g.c = kvh + j * kPanel;
            g.ldc = kvw;
            ctx.k->gemm_bf16(g);
          }
          src = kvh;
          lds = kvw;
        }
        PackBf16Args p;  // K(h) as rows [tile, dk_e], V(h) pair-packed [tile/2, dv, 2]
        p.src = src;
        p.rows = tn;
        p.cols = a.dk;
        p.rs = lds;
        p.cs = 1;
        p.dst = kb + h * kTileRows * dk_e;
        p.ldd = dk_e;
        ctx.k->pack_bf16_rows(p);
        p.src = src + a.dk;
        p.cols = a.dv;
        p.dst = vb + h * kTileRows * a.dv;
        p.ldd = 2 * a.dv;
        ctx.k->pack_bf16_pairs(p);
      });
    } else {
      rows = static_cast<const float*>(page) + in_page * kv_dim;
      matmul_strided(ctx, *a.w_kv, rows, tn, kv_dim, kv, ld_kv);
    }

    const int64_t first_block = std::max<int64_t>(0, t0 - a.ctx0) / kQueryBlock;  // earlier queries see none
    const int64_t live_blocks = blocks - first_block;
    for_tasks(ctx, H * live_blocks, [&](int64_t task, int thread) {
      const int64_t h = task / live_blocks, blk = first_block + task % live_blocks, i0 = blk * kQueryBlock;
      const int64_t nb = std::min(kQueryBlock, n_q - i0);
      float* ts = a.scratch + L.threads + size_t(thread) * L.per_thread;
      float* st = ts + L.st;  // [tn, nb]
      float* alpha = ts + L.alpha;

      if (bf16) {
        GemmBf16Args s;
        s.M = tn;
        s.N = nb;
        s.K = dk_e;
        s.a = kb + h * kTileRows * dk_e;
        s.lda = dk_e;
        s.b = qk_block(h, blk);
        s.ldb = 2 * kQueryBlock;
        s.c = st;
        s.ldc = nb;
        ctx.k->gemm_bf16(s);
        if (a.dr > 0) {
          s.K = dr_e;
          s.a = rp;
          s.lda = dr_e;
          s.b = qr_block(h, blk);
          s.accumulate = true;
          ctx.k->gemm_bf16(s);
        }
      } else {
        GemmF32Args s;
        s.M = tn;
        s.N = nb;
        s.K = a.dk;
        s.a = kv + h * kvw;
        s.a_rs = ld_kv;
        s.b = qt_block(h, blk);
        s.ldb = kQueryBlock;
        s.c = st;
        s.ldc = nb;
        ctx.k->gemm_f32(s);
        if (a.dr > 0) {
          s.K = a.dr;
          s.a = rows + a.lat;
          s.a_rs = kv_dim;
          s.b = qt_block(h, blk) + a.dk * kQueryBlock;
          s.accumulate = true;
          ctx.k->gemm_f32(s);
        }
      }

      OnlineSoftmaxArgs sm;
      sm.s = st;
      sm.n_keys = tn;
      sm.n_cols = nb;
      sm.ld = nb;
      sm.key0 = t0;
      sm.vis0 = a.ctx0 + i0 + 1;
      sm.cols_per_step = 1;
      sm.m = m + h * n_q + i0;
      sm.l = l + h * n_q + i0;
      sm.alpha = alpha;
      ctx.k->online_softmax_f32(sm);

      if (bf16) {
        auto* pk = reinterpret_cast<uint16_t*>(ts + L.pk);  // P [nb, tile] from S^T [tn, nb]
        PackBf16Args p;
        p.src = st;
        p.rows = nb;
        p.cols = tn;
        p.rs = 1;
        p.cs = nb;
        p.dst = pk;
        p.ldd = kTileRows;
        ctx.k->pack_bf16_rows(p);
        GemmBf16Args o;
        o.M = nb;
        o.N = a.dv;
        o.K = even(tn);
        o.a = pk;
        o.lda = kTileRows;
        o.b = vb + h * kTileRows * a.dv;
        o.ldb = 2 * a.dv;
        o.c = acc_block(h, blk);
        o.ldc = a.dv;
        o.accumulate = true;
        o.row_scale = alpha;
        ctx.k->gemm_bf16(o);
      } else {
        GemmF32Args o;
        o.M = nb;
        o.N = a.dv;
        o.K = tn;
        o.a = st;
        o.a_rs = 1;
        o.a_cs = nb;
        o.b = kv + h * kvw + a.dk;
        o.ldb = ld_kv;
        o.c = acc_block(h, blk);
        o.ldc = a.dv;
        o.accumulate = true;
        o.row_scale = alpha;
        ctx.k->gemm_f32(o);
      }
    });
    t0 += tn;
  }

  for_tasks(ctx, H, [&](int64_t h, int) {
    for (int64_t i = 0; i < n_q; i++) {
      const float inv = 1.f / l[h * n_q + i];
      const float* src = acc_block(h, i / kQueryBlock) + (i % kQueryBlock) * a.dv;
      float* o = a.out + i * a.ldo + h * a.dv;
      for (int64_t e = 0; e < a.dv; e++) o[e] = src[e] * inv;
    }
  });
}

// ---- the twin ----

void latent_attention_decompressed_reference(const Context& ctx, const LatentDecompArgs& a) {
  if (a.n_q <= 0) return;
  check_args(a, "latent_attention_decompressed_reference");
  const bool bf16 = a.cache_dtype == DType::BF16;
  auto round = [bf16](float x) { return bf16 ? bf16_to_f32(f32_to_bf16(x)) : x; };
  const int64_t H = a.H, dq = a.dk + a.dr, kvw = a.dk + a.dv, kv_dim = a.lat + a.dr;
  const int64_t n_keys = a.ctx0 + a.n_q;
  std::vector<float> rows(size_t(n_keys * kv_dim));  // the cache as fp32
  for (int64_t t = 0; t < n_keys; t++) {
    const void* page = a.pages[t / a.page_rows];
    if (bf16)
      convert_to_f32(DType::BF16, static_cast<const uint16_t*>(page) + (t % a.page_rows) * kv_dim,
                     rows.data() + t * kv_dim, size_t(kv_dim));
    else
      std::copy_n(static_cast<const float*>(page) + (t % a.page_rows) * kv_dim, kv_dim, rows.data() + t * kv_dim);
  }
  std::vector<float> kv(size_t(n_keys * H * kvw));  // [n_keys, H, dk + dv]
  for (int64_t t = 0; t < n_keys; t++) matmul(ctx, *a.w_kv, rows.data() + t * kv_dim, 1, kv.data() + t * H * kvw);
  for (float& x : kv) x = round(x);
  for_tasks(ctx, a.n_q * H, [&](int64_t task, int) {
    const int64_t i = task / H, h = task % H, n = a.ctx0 + i + 1;
    std::vector<float> q(static_cast<size_t>(dq));
    for (int64_t d = 0; d < dq; d++) q[size_t(d)] = round(a.q[i * a.ldq + h * dq + d] * a.scale);
    std::vector<float> s(static_cast<size_t>(n));
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < n; t++) {
      const float* row = rows.data() + t * kv_dim;
      const float* k = kv.data() + (t * H + h) * kvw;
      float dot = 0.f;
      for (int64_t d = 0; d < a.dk; d++) dot += q[size_t(d)] * k[d];
      for (int64_t d = 0; d < a.dr; d++) dot += q[size_t(a.dk + d)] * row[a.lat + d];
      s[size_t(t)] = dot;
      mx = std::max(mx, s[size_t(t)]);
    }
    float sum = 0.f;
    for (float& x : s) sum += (x = std::exp(x - mx));
    float* o = a.out + i * a.ldo + h * a.dv;
    std::fill(o, o + a.dv, 0.f);
    for (int64_t t = 0; t < n; t++) {
      const float* v = kv.data() + (t * H + h) * kvw + a.dk;
      for (int64_t e = 0; e < a.dv; e++) o[e] += s[size_t(t)] / sum * v[e];
    }
  });
}

}  // namespace kl
