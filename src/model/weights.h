// The weight table (STYLE.md habit 5): for every tensor the config requires, our binding, the
// checkpoint's name and the exact expected shape. The loader checks every tensor against it and
// binds views without copying; `inspect` and the synthetic model use the same table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace kl {

// SwiGLU MLP: y = down( SiLU(gate x) ⊙ up x ). Dense MLP, shared experts and routed experts.
struct MlpWeights {
  WeightView gate;  // [inter, hidden]  (experts: w1)
  WeightView up;    // [inter, hidden]  (experts: w3)
  WeightView down;  // [hidden, inter]  (experts: w2)
};

// spec §3. P = num_heads * head_dim.
struct KdaWeights {
  WeightView q_proj, k_proj, v_proj;  // [P, hidden]
  WeightView f_a_proj;                // [head_dim, hidden]  forget gate, low rank down
  WeightView f_b_proj;                // [P, head_dim]       forget gate, low rank up
  WeightView b_proj;                  // [H, hidden]         beta logits
  WeightView g_a_proj;                // [head_dim, hidden]  output gate down
  WeightView g_b_proj;                // [P, head_dim]       output gate up
  WeightView o_proj;                  // [hidden, P]
  // Small parameters, held as fp32 copies (a few KB per layer).
  std::vector<float> q_conv, k_conv, v_conv;  // [P, 1, W] depthwise taps, tap W-1 = current token
  std::vector<float> dt_bias;                 // [P]
  std::vector<float> A_log;                   // [1, 1, H, 1]
  std::vector<float> o_norm;                  // [head_dim]
};

// spec §4. Hq = num_attention_heads, dq = nope + rope, c = kv_lora_rank.
struct MlaWeights {
  WeightView q_proj;              // [Hq*dq, hidden]
  WeightView kv_a_proj_with_mqa;  // [c + rope, hidden]
  WeightView kv_b_proj;           // [Hq*(nope+v), c]  head-major: W_UK(h) rows then W_UV(h) rows
  WeightView o_proj;              // [hidden, Hq*v]
  std::vector<float> kv_a_layernorm;  // [c]
};

// spec §5.
struct MoeWeights {
  WeightView router;                     // gate.weight [E, hidden]
  std::vector<float> correction_bias;    // gate.e_score_correction_bias [E]
  std::vector<MlpWeights> experts;       // E of them, [moe_inter, hidden] / [hidden, moe_inter]
  MlpWeights shared;                     // [moe_inter*n_shared, hidden] ...
};

struct LayerWeights {
  MixerKind mixer;
  FfnKind ffn;
  std::vector<float> input_layernorm;           // [hidden]
  std::vector<float> post_attention_layernorm;  // [hidden]
  KdaWeights kda;  // when mixer == Kda
  MlaWeights mla;  // when mixer == Mla
  MlpWeights mlp;  // when ffn == Dense
  MoeWeights moe;  // when ffn == Moe
};

struct ModelWeights {
  WeightView embed_tokens;       // [vocab, hidden]
  WeightView lm_head;            // [vocab, hidden]
  std::vector<float> final_norm;  // [hidden]
  std::vector<LayerWeights> layers;
};

// One row of the table.
struct WeightSpec {
  std::string name;            // the checkpoint's tensor name
  std::vector<int64_t> shape;  // expected, PyTorch order
  WeightView* matrix = nullptr;      // 2-d weights: bound as a view over the file's bytes
  std::vector<float>* small = nullptr;  // small parameters: converted to an fp32 copy
  int64_t numel() const;
};

// Sizes `w` for the config and returns the table of every required tensor, pointing into `w`.
std::vector<WeightSpec> weight_table(const KimiConfig& c, ModelWeights& w);

}  // namespace kl
