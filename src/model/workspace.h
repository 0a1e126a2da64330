// Activation buffers, sized once per session for the largest batch it runs (DESIGN.md §4);
// the forward pass does not allocate.
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/config.h"

namespace kl {

struct Workspace {
  Workspace(const KimiConfig& c, int64_t max_tokens, int n_threads);

  int64_t max_tokens;
  // Residual stream and layer buffers, [T, hidden].
  Buffer<float> x, xn, mix;
  // KDA [T, P] each; low-rank [T, head_dim]; beta [T, H].
  Buffer<float> kq, kk, kv, kg, kr, ko, klow, kbeta;
  Buffer<float> kconv;  // [W-1, P] conv history scratch
  Buffer<float> kda_chunk_scratch;  // per thread
  size_t kda_chunk_floats = 0;
  // MLA: q [T, Hq*dq], kva [T, c+r], absorbed q [T, Hq, c+r], latent out [T, Hq, c], attn [T, Hq*v].
  Buffer<float> mq, mkva, mqabs, mlat, mattn;
  Buffer<float> mrowbuf;  // per thread, one kv_b_proj row in fp32
  // MoE / MLP: router [T, E], selection [T, k], gathered rows [T, hidden], gate/up [T, F], out [T, hidden].
  Buffer<float> rlogits, rweight;
  std::vector<int32_t> ridx, expert_count, expert_offset, expert_tokens, expert_slot;
  Buffer<float> fx, fg, fu, fy;
  // Final norm rows for the logits.
  Buffer<float> fin;
};

}  // namespace kl
