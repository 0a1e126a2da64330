// Per-sequence state: its contents after a prompt match the reference cache, and feeding the
// same tokens in any split (prompt chunks, token by token, several sequences in one batch)
// gives the same logits.
#include <gtest/gtest.h>

#include <random>

#include "kernels/ops.h"
#include "model_test_util.h"

namespace kl::test {
namespace {

std::unique_ptr<Model> biased_model() {
  ModelOptions opt;
  opt.router_weights = RouterWeights::Biased;
  return Model::load(tiny_a(), opt);
}

void expect_logits_close(const std::vector<float>& got, const std::vector<float>& want, float rel,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  const float scale = max_abs(want.data(), want.size());
  const float diff = max_abs_diff(got.data(), want.data(), want.size());
  EXPECT_LE(diff, rel * scale) << what << ": max|diff| " << diff << " vs max|logit| " << scale;
}

TEST(StateTest, AfterPromptMatchesReferenceCache) {
  Engine e;
  auto m = biased_model();
  const KimiConfig& c = m->config();
  const auto tokens = load_tokens("tokens_200.npy");
  SequenceState st = m->new_state();
  run_chunks(*m, e, tokens, {200}, &st);
  ASSERT_EQ(st.n_tokens, 200);
  const int64_t P = c.kda_proj_dim(), W = c.short_conv_kernel_size;
  int64_t kda_slot = 0, mla_slot = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; l++) {
    const std::string pre = "state_after_200/layer" + std::to_string(l) + "_";
    if (c.mixer[size_t(l)] == MixerKind::Kda) {
      const KdaLayerState& ks = st.kda[size_t(kda_slot++)];
      std::vector<float> S = read_npy(golden(pre + "kda_recurrent_state.npy")).as_f32();
      ASSERT_EQ(S.size(), ks.recurrent.size());
      const float scale = max_abs(S.data(), S.size());
      EXPECT_LE(max_abs_diff(S.data(), ks.recurrent.data(), S.size()), 1e-4f * scale) << pre << "recurrent";
      const char* names[3] = {"q", "k", "v"};
      for (int j = 0; j < 3; j++) {
        // Reference [1, P, W] (newest last); ours keeps the last W-1 columns as [W-1, P].
        NpyArray ref = read_npy(golden(pre + "conv_state_" + names[j] + ".npy"));
        ASSERT_EQ(ref.shape, (std::vector<int64_t>{1, P, W}));
        std::vector<float> r = ref.as_f32();
        const float* ours = ks.conv.data() + j * (W - 1) * P;
        float diff = 0;
        for (int64_t ch = 0; ch < P; ch++)
          for (int64_t col = 1; col < W; col++)
            diff = std::max(diff, std::fabs(r[size_t(ch * W + col)] - ours[(col - 1) * P + ch]));
        EXPECT_LE(diff, 1e-4f * std::max(1.f, max_abs(r.data(), r.size()))) << pre << "conv " << names[j];
      }
    } else {
      // Rebuild the reference's decompressed K [1, Hq, T, nope+rope] and V [1, Hq, T, v] from
      // our latent rows with kv_b_proj (spec §4.3).
      const LatentCache& cache = st.mla[size_t(mla_slot++)];
      ASSERT_EQ(cache.rows(), 200);
      const MlaWeights& w = m->weights().layers[size_t(l)].mla;
      const int64_t Hq = c.num_attention_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
      const int64_t vd = c.v_head_dim, lat = c.kv_lora_rank;
      NpyArray kref = read_npy(golden(pre + "mla_key_cache.npy"));
      NpyArray vref = read_npy(golden(pre + "mla_value_cache.npy"));
      ASSERT_EQ(kref.shape, (std::vector<int64_t>{1, Hq, 200, nope + rope}));
      ASSERT_EQ(vref.shape, (std::vector<int64_t>{1, Hq, 200, vd}));
      std::vector<float> K = kref.as_f32(), V = vref.as_f32();
      std::vector<float> kv(size_t(Hq * (nope + vd)));
      float kdiff = 0, vdiff = 0;
      std::vector<float> row(size_t(cache.width()));
      for (int64_t t = 0; t < 200; t++) {
        cache.read_row(t, row.data());
        matmul(e.ctx, w.kv_b_proj, row.data(), 1, kv.data());
        for (int64_t h = 0; h < Hq; h++) {
          for (int64_t i = 0; i < nope; i++)
            kdiff = std::max(kdiff, std::fabs(kv[size_t(h * (nope + vd) + i)] -
                                              K[size_t(((h * 200) + t) * (nope + rope) + i)]));
          for (int64_t i = 0; i < rope; i++)
            kdiff = std::max(kdiff, std::fabs(row[size_t(lat + i)] -
                                              K[size_t(((h * 200) + t) * (nope + rope) + nope + i)]));
          for (int64_t i = 0; i < vd; i++)
            vdiff = std::max(vdiff, std::fabs(kv[size_t(h * (nope + vd) + nope + i)] -
                                              V[size_t(((h * 200) + t) * vd + i)]));
        }
      }
      EXPECT_LE(kdiff, 1e-4f * std::max(1.f, max_abs(K.data(), K.size()))) << pre << "K";
      EXPECT_LE(vdiff, 1e-4f * std::max(1.f, max_abs(V.data(), V.size()))) << pre << "V";
    }
  }
}

// The 200-token prompt in different splits gives the same logits as one pass.
TEST(StateTest, ChunkSplitsGiveSameLogits) {
  Engine e;
  auto m = biased_model();
  const auto tokens = load_tokens("tokens_200.npy");
  std::vector<float> full = run_chunks(*m, e, tokens, {200});
  std::vector<float> want = read_npy(golden("logits_200.npy")).as_f32();
  expect_logits_close(full, want, 1e-4f, "[200] vs golden");
  for (const std::vector<int64_t>& split :
       {std::vector<int64_t>{1, 66, 133}, {64, 65, 71}, {100, 100}, {3, 1, 1, 195}}) {
    std::vector<float> got = run_chunks(*m, e, tokens, split);
    std::string name;
    for (int64_t n : split) name += std::to_string(n) + "+";
    expect_logits_close(got, full, 1e-5f, "split " + name + " vs [200]");
    expect_logits_close(got, want, 1e-4f, "split " + name + " vs golden");
  }
  // Token by token.
  std::vector<float> steps = run_chunks(*m, e, tokens, std::vector<int64_t>(200, 1));
  expect_logits_close(steps, full, 1e-5f, "token by token vs [200]");
}

// Greedy decoding through the state reproduces the reference's ids and step logits.
TEST(StateTest, GreedyDecodingMatchesReference) {
  Engine e;
  auto m = biased_model();
  const int64_t V = m->config().vocab_size;
  for (std::string name : {"p7", "p65"}) {
    const auto prompt = load_tokens("greedy_" + name + "_prompt.npy");
    const auto ids = load_tokens("greedy_" + name + "_ids.npy");
    std::vector<float> step_logits = read_npy(golden("greedy_" + name + "_logits.npy")).as_f32();
    ASSERT_EQ(ids.size(), 32u);
    ASSERT_EQ(step_logits.size(), 32u * size_t(V));
    SequenceState st = m->new_state();
    Workspace ws(m->config(), int64_t(prompt.size()), e.pool.size());
    std::vector<float> logits(static_cast<size_t>(V));
    Batch b;
    b.runs.push_back({&st, prompt.data(), int64_t(prompt.size())});
    m->forward(e.ctx, b, ws, logits.data());
    for (size_t i = 0; i < 32; i++) {
      expect_logits_close(logits, std::vector<float>(step_logits.begin() + i * V, step_logits.begin() + (i + 1) * V),
                          1e-4f, name + " step " + std::to_string(i));
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ASSERT_EQ(next, ids[i]) << name << " step " << i;
      Batch d;
      d.runs.push_back({&st, &next, 1});
      m->forward(e.ctx, d, ws, logits.data());
    }
  }
}

// Several sequences in one batch (a prompt chunk next to decode steps) give the same logits
// as each sequence run alone.
TEST(StateTest, BatchOfSequencesMatchesSeparateRuns) {
  Engine e;
  auto m = biased_model();
  const int64_t V = m->config().vocab_size;
  const auto a = load_tokens("tokens_129.npy");
  const auto b = load_tokens("tokens_65.npy");
  std::vector<float> la = run_chunks(*m, e, a, {129});
  std::vector<float> lb = run_chunks(*m, e, b, {65});

  SequenceState sa = m->new_state(), sb = m->new_state();
  Workspace ws(m->config(), 200, e.pool.size());
  std::vector<float> out(size_t(200 * V));
  // Step 1: a[0..100) and b[0..30) together; step 2: a[100..129) with b[30..65).
  Batch b1;
  b1.logits = LogitsFor::AllTokens;
  b1.runs = {{&sa, a.data(), 100}, {&sb, b.data(), 30}};
  m->forward(e.ctx, b1, ws, out.data());
  std::vector<float> got_a(out.begin(), out.begin() + 100 * V), got_b(out.begin() + 100 * V, out.begin() + 130 * V);
  Batch b2;
  b2.logits = LogitsFor::AllTokens;
  b2.runs = {{&sb, b.data() + 30, 35}, {&sa, a.data() + 100, 29}};
  m->forward(e.ctx, b2, ws, out.data());
  got_b.insert(got_b.end(), out.begin(), out.begin() + 35 * V);
  got_a.insert(got_a.end(), out.begin() + 35 * V, out.begin() + 64 * V);
  expect_logits_close(got_a, la, 1e-5f, "sequence a in a batch");
  expect_logits_close(got_b, lb, 1e-5f, "sequence b in a batch");
}

// A copy of the state is a snapshot: continuing from it reproduces the original continuation.
TEST(StateTest, SnapshotAndRestore) {
  Engine e;
  auto m = biased_model();
  const int64_t V = m->config().vocab_size;
  const auto tokens = load_tokens("tokens_200.npy");
  SequenceState st = m->new_state();
  Workspace ws(m->config(), 200, e.pool.size());
  std::vector<float> l1(static_cast<size_t>(V)), l2(static_cast<size_t>(V));
  Batch b;
  b.runs.push_back({&st, tokens.data(), 150});
  m->forward(e.ctx, b, ws, l1.data());
  SequenceState snap = st;  // snapshot at 150
  b.runs = {{&st, tokens.data() + 150, 50}};
  m->forward(e.ctx, b, ws, l1.data());
  st = snap;  // restore and continue the same way
  ASSERT_EQ(st.n_tokens, 150);
  b.runs = {{&st, tokens.data() + 150, 50}};
  m->forward(e.ctx, b, ws, l2.data());
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(snap.n_tokens, 150);
  EXPECT_EQ(snap.mla[0].rows(), 150);  // the snapshot's cache was not touched by the writes
}

}  // namespace
}  // namespace kl::test
