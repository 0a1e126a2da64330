// Activation buffers, sized once per session for the largest batch it runs (DESIGN.md §4);
// the forward pass does not allocate.
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/config.h"

namespace kl {

// Form of the MLA attention (spec §4.3): Auto picks the cheaper one per run (cost model in
// mla.cpp); tests force one or the other to compare them.
enum class MlaForm { Auto, Absorbed, Decompressed };
// The form Auto picks for a run of n_queries tokens after ctx0 cached ones.
MlaForm mla_cheaper_form(const KimiConfig& c, int64_t n_queries, int64_t ctx0);

struct Workspace {
  Workspace(const KimiConfig& c, int64_t max_tokens, int n_threads);

  int64_t max_tokens;
  int n_threads;  // the per-thread scratch below serves a pool of at most this many threads
  // Residual stream and layer buffers, [T, hidden].
  Buffer<float> x, xn, mix;
  // KDA [T, P] each; low-rank [2, T, head_dim] (f, g); beta [T, H].
  Buffer<float> kq, kk, kv, kg, kr, ko, klow, kbeta;
  Buffer<float> kconv;  // [W-1, P] conv history scratch
  Buffer<float> kda_chunk_scratch;  // per thread
  size_t kda_chunk_floats = 0;
  // MLA: q [T, Hq*dq], kva [T, c+r], absorbed q [T, Hq, c+r], latent out [T, Hq, c], attn [T, Hq*v].
  Buffer<float> mq, mkva, mqabs, mlat, mattn;
  Buffer<float> mwuk;  // per thread, W_UK(h) [nope, c] in fp32 (query absorption)
  // Scratch of the attention kernels: the larger of the absorbed and decompressed needs
  // (score tiles, a decompressed K/V tile, transposed queries, per-thread partial results).
  Buffer<float> mattn_scratch;
  MlaForm mla_form = MlaForm::Auto;
  // MoE / MLP: router [T, E], selection [T, k]; the experts run in groups of at most
  // moe_group_rows gathered rows (>= T): gathered rows [G, hidden], gate/up [G, F], out [G, hidden].
  Buffer<float> rlogits, rweight;
  int64_t moe_group_rows = 0;
  std::vector<int32_t> ridx, expert_count, expert_offset, expert_tokens, expert_slot;
  Buffer<float> fx, fg, fu, fy;
  // Final norm rows for the logits.
  Buffer<float> fin;
};

}  // namespace kl
