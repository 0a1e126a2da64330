// The two forms of the MLA attention (spec §4.3) on the tiny-a fixture: forcing the absorbed or
// the decompressed form gives the same logits (to fp32 rounding) and both match the reference
// goldens, in chunks that put several queries after a non-empty cache; and the choice Auto makes.
#include <gtest/gtest.h>

#include "model/synthetic.h"
#include "model_test_util.h"

namespace kl::test {
namespace {

std::vector<float> run_with_form(const Model& m, Engine& e, const std::vector<int32_t>& tokens,
                                 const std::vector<int64_t>& chunks, MlaForm form) {
  const int64_t V = m.config().vocab_size;
  SequenceState st = m.new_state();
  Workspace ws(m.config(), 128, e.pool.size());
  ws.mla_form = form;
  std::vector<float> logits(tokens.size() * size_t(V));
  int64_t off = 0;
  for (int64_t n : chunks) {
    Batch b;
    b.runs.push_back({&st, tokens.data() + off, n});
    b.logits = LogitsFor::AllTokens;
    m.forward(e.ctx, b, ws, logits.data() + off * V);
    off += n;
  }
  EXPECT_EQ(off, int64_t(tokens.size()));
  return logits;
}

TEST(MlaForms, AbsorbedAndDecompressedGiveTheSameLogits) {
  const auto tokens = load_tokens("tokens_200.npy");
  std::vector<float> want = read_npy(golden("logits_200.npy")).as_f32();
  const float scale = max_abs(want.data(), want.size());
  ModelOptions opt;
  opt.router_weights = RouterWeights::Biased;
  auto m = Model::load(tiny_a(), opt);
  for (int threads : {1, 2}) {
    Engine e(threads);
    for (const std::vector<int64_t>& chunks :
         {std::vector<int64_t>{128, 72}, std::vector<int64_t>{1, 1, 5, 64, 1, 128}, std::vector<int64_t>{70, 1, 1, 128}}) {
      const auto abs = run_with_form(*m, e, tokens, chunks, MlaForm::Absorbed);
      const auto dec = run_with_form(*m, e, tokens, chunks, MlaForm::Decompressed);
      const auto autom = run_with_form(*m, e, tokens, chunks, MlaForm::Auto);
      EXPECT_LE(max_abs_diff(abs.data(), dec.data(), abs.size()), 1e-5f * scale) << "threads " << threads;
      EXPECT_LE(max_abs_diff(autom.data(), dec.data(), abs.size()), 1e-5f * scale) << "threads " << threads;
      EXPECT_LE(max_abs_diff(abs.data(), want.data(), want.size()), 1e-4f * scale) << "absorbed vs golden";
      EXPECT_LE(max_abs_diff(dec.data(), want.data(), want.size()), 1e-4f * scale) << "decompressed vs golden";
    }
  }
}

TEST(MlaForms, AutoPicksTheCheaperForm) {
  const KimiConfig c = synthetic_48b_config(4);  // c 512, r 64, nope = v = 128
  EXPECT_EQ(mla_cheaper_form(c, 1, 16384), MlaForm::Absorbed);       // decode
  EXPECT_EQ(mla_cheaper_form(c, 1, 100), MlaForm::Absorbed);
  EXPECT_EQ(mla_cheaper_form(c, 100, 16384), MlaForm::Absorbed);     // below ~171 queries
  EXPECT_EQ(mla_cheaper_form(c, 200, 16384), MlaForm::Decompressed);
  EXPECT_EQ(mla_cheaper_form(c, 512, 0), MlaForm::Decompressed);     // prompt chunks
  EXPECT_EQ(mla_cheaper_form(c, 512, 16384), MlaForm::Decompressed);
}

}  // namespace
}  // namespace kl::test
