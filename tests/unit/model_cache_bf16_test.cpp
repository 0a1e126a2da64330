// The bf16 latent cache (--cache-type bf16): the cache's storage and conversions, the model's
// logits against the fp32 reference goldens (bf16 rounding of the cache and of the attention
// operands: a looser bound than the fp32 path's 1e-4), consistency across prompt splits and
// decode, and sessions saved with one cache type and loaded with another.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "model_test_util.h"
#include "runtime/engine.h"

namespace kl::test {
namespace {

// Logits of the bf16-cache model stay within this fraction of max |logit| of the goldens
// (measured: 0.9e-3 to 1.5e-3; the fp32 cache gets ~1e-6).
constexpr float kBf16Rel = 1e-2f;

std::unique_ptr<Model> model(DType cache, RouterWeights rw = RouterWeights::Biased) {
  ModelOptions opt;
  opt.router_weights = rw;
  opt.cache_dtype = cache;
  return Model::load(tiny_a(), opt);
}

float rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  return max_abs_diff(got.data(), want.data(), want.size()) / max_abs(want.data(), want.size());
}

TEST(LatentCacheBf16, RowsAreRoundedToNearestEven) {
  LatentCache c(5, DType::BF16);
  EXPECT_EQ(c.row_bytes(), 10u);
  c.resize(300);  // two pages
  const float in[5] = {1.f, 1.00390625f /* tie: rounds to even 1.0 */, 1.01171875f /* tie: up */, -3.1415927f, 1e-30f};
  c.write_row(299, in);
  float out[5];
  c.read_row(299, out);
  for (int i = 0; i < 5; i++) EXPECT_EQ(out[i], bf16_to_f32(f32_to_bf16(in[i]))) << i;
  EXPECT_EQ(out[1], 1.f);
  EXPECT_EQ(out[2], 1.015625f);
  EXPECT_EQ(c.allocated_bytes(), 2u * LatentCache::kPageRows * 10u);
  // Copy on write also for bf16 pages: the snapshot keeps its row.
  LatentCache snap = c;
  const float z[5] = {};
  c.write_row(299, z);
  snap.read_row(299, out);
  EXPECT_EQ(out[0], 1.f);
  EXPECT_THROW(LatentCache(5, DType::F16), Error);
}

// Unset (the default, --cache-type auto): the cache follows the weights' format, so the F32
// fixture keeps the exact fp32 cache; an explicit choice wins.
TEST(LatentCacheBf16, DefaultFollowsTheWeights) {
  EXPECT_EQ(Model::load(tiny_a(), {})->cache_dtype(), DType::F32);
  EXPECT_EQ(model(DType::BF16)->cache_dtype(), DType::BF16);
  auto m = Model::load(tiny_a(), {});
  m->set_cache_dtype(DType::BF16);
  EXPECT_EQ(m->new_state().mla[0].dtype(), DType::BF16);
  m->set_cache_dtype(std::nullopt);
  EXPECT_EQ(m->new_state().mla[0].dtype(), DType::F32);
  EXPECT_THROW(m->set_cache_dtype(DType::F16), Error);
}

TEST(LatentCacheBf16, HalvesTheCache) {
  auto m32 = model(DType::F32), m16 = model(DType::BF16);
  EXPECT_EQ(m16->state_sizes().mla_cache_bytes_per_token * 2, m32->state_sizes().mla_cache_bytes_per_token);
  Engine e;
  const auto tokens = load_tokens("tokens_200.npy");
  SequenceState s32, s16;
  run_chunks(*m32, e, tokens, {200}, &s32);
  run_chunks(*m16, e, tokens, {200}, &s16);
  ASSERT_EQ(s16.mla.size(), s32.mla.size());
  for (size_t i = 0; i < s16.mla.size(); i++) {
    EXPECT_EQ(s16.mla[i].dtype(), DType::BF16);
    EXPECT_EQ(s16.mla[i].allocated_bytes() * 2, s32.mla[i].allocated_bytes());
  }
  // The first MLA layer's bf16 rows are its fp32 rows rounded (the latent is computed in fp32;
  // later MLA layers see hidden states that bf16 attention has already touched).
  std::vector<float> a(size_t(s32.mla[0].width())), b(a.size());
  for (int64_t t = 0; t < 200; t += 37) {
    s32.mla[0].read_row(t, a.data());
    s16.mla[0].read_row(t, b.data());
    for (size_t j = 0; j < a.size(); j++) ASSERT_EQ(b[j], bf16_to_f32(f32_to_bf16(a[j]))) << "row " << t;
  }
}

// Positions whose expert choice differs between two runs (a near-tie in the router that the
// bf16 rounding tips over; the logits of such a token move by much more than rounding).
std::vector<bool> routing_differs(const ForwardTrace& a, const ForwardTrace& b, int64_t T) {
  std::vector<bool> out(size_t(T), false);
  for (size_t l = 0; l < a.router.size(); l++) {
    const size_t k = a.router[l].idx.size() / size_t(T);
    for (size_t i = 0; i < a.router[l].idx.size(); i++)
      if (a.router[l].idx[i] != b.router[l].idx[i]) out[i / k] = true;
  }
  return out;
}

TEST(LatentCacheBf16, LogitsNearTheGoldens) {
  Engine e;
  for (RouterWeights rw : {RouterWeights::Biased, RouterWeights::Unbiased}) {
    auto m32 = model(DType::F32, rw), m16 = model(DType::BF16, rw);
    const int64_t V = m16->config().vocab_size;
    for (int L : {7, 65, 200}) {
      const auto tokens = load_tokens("tokens_" + std::to_string(L) + ".npy");
      const std::string file = std::string(rw == RouterWeights::Biased ? "" : "variant_unbiased_gate/") + "logits_" +
                               std::to_string(L) + ".npy";
      std::vector<float> want = read_npy(golden(file)).as_f32();
      ForwardTrace t32, t16;
      run_chunks(*m32, e, tokens, {L}, nullptr, &t32);  // its routing is the reference's (model_golden_test)
      std::vector<float> got = run_chunks(*m16, e, tokens, {L}, nullptr, &t16);
      const std::vector<bool> flipped = routing_differs(t32, t16, L);
      const float scale = max_abs(want.data(), want.size());
      float d = 0;
      int n_flipped = 0;
      for (int64_t t = 0; t < L; t++) {
        if (flipped[size_t(t)]) {
          n_flipped++;
          continue;
        }
        d = std::max(d, max_abs_diff(got.data() + t * V, want.data() + t * V, size_t(V)) / scale);
      }
      EXPECT_LE(d, kBf16Rel) << file;
      EXPECT_LE(n_flipped, std::max(1, L / 50)) << file << ": tokens whose expert choice changed";
      std::printf("bf16 cache, %s: max|diff| / max|logit| = %.2e over %d tokens (%d with another expert choice)\n",
                  file.c_str(), double(d), L - n_flipped, n_flipped);
    }
  }
}

// Prompt chunks use the decompressed form and decode the absorbed one; with a bf16 cache they
// round different operands, so splits agree to the bf16 bound, not bit for bit.
TEST(LatentCacheBf16, SplitsAndDecodeAgree) {
  Engine e;
  auto m = model(DType::BF16);
  const auto tokens = load_tokens("tokens_200.npy");
  std::vector<float> full = run_chunks(*m, e, tokens, {200});
  for (const std::vector<int64_t>& split : {std::vector<int64_t>{64, 65, 71}, std::vector<int64_t>(200, 1)}) {
    std::vector<float> got = run_chunks(*m, e, tokens, split);
    EXPECT_LE(rel_diff(got, full), kBf16Rel) << split.size() << " chunks";
  }
}

TEST(LatentCacheBf16, GreedyDecodingNearTheReference) {
  Engine e;
  auto m = model(DType::BF16);
  const int64_t V = m->config().vocab_size;
  for (std::string name : {"p7", "p65"}) {
    const auto prompt = load_tokens("greedy_" + name + "_prompt.npy");
    const auto ids = load_tokens("greedy_" + name + "_ids.npy");
    std::vector<float> ref = read_npy(golden("greedy_" + name + "_logits.npy")).as_f32();
    SequenceState st = m->new_state();
    Workspace ws(m->config(), int64_t(prompt.size()), e.pool.size());
    std::vector<float> logits(static_cast<size_t>(V));
    Batch b;
    b.runs.push_back({&st, prompt.data(), int64_t(prompt.size())});
    m->forward(e.ctx, b, ws, logits.data());
    // Follow the reference's ids (teacher forcing), so one near-tie cannot derail the rest.
    for (size_t i = 0; i < ids.size(); i++) {
      std::vector<float> want(ref.begin() + int64_t(i) * V, ref.begin() + int64_t(i + 1) * V);
      EXPECT_LE(rel_diff(logits, want), kBf16Rel) << name << " step " << i;
      Batch d;
      d.runs.push_back({&st, &ids[i], 1});
      m->forward(e.ctx, d, ws, logits.data());
    }
  }
}

std::string tmp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kl_bf16_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::unique_ptr<kl::Engine> engine(DType cache) {
  ModelSource src;
  src.dir = tiny_a();
  src.options.cache_dtype = cache;
  EngineOptions eo;
  eo.threads = 2;
  return std::make_unique<kl::Engine>(src, eo);
}

TEST(LatentCacheBf16, SessionsSaveAndLoadAcrossCacheTypes) {
  const auto tokens = load_tokens("tokens_200.npy");
  const std::vector<int32_t> head(tokens.begin(), tokens.begin() + 150), turn(tokens.begin() + 150, tokens.end());
  auto e16 = engine(DType::BF16), e32 = engine(DType::F32);
  const std::string f16 = tmp_file("a16.klstate"), f32 = tmp_file("a32.klstate");
  Session a(*e16), c(*e32);
  a.feed(head);
  c.feed(head);
  a.save(f16);
  c.save(f32);
  // Same history, half the cache bytes (the KDA state is fp32 either way; the headers differ by
  // the spelling of the dtype).
  const int64_t mla_rows_bytes = 150 * e32->model().state_sizes().mla_cache_bytes_per_token;
  const int64_t saved = int64_t(std::filesystem::file_size(f32)) - int64_t(std::filesystem::file_size(f16));
  EXPECT_NEAR(double(saved), double(mla_rows_bytes / 2), 4.0);
  const std::vector<float> want16 = a.feed_all_logits(turn);

  Session b(*e16);  // bf16 -> bf16: bit-identical
  b.load(f16);
  EXPECT_EQ(b.feed_all_logits(turn), want16);

  Session d(*e16);  // fp32 file into a bf16 engine: rounded on load
  d.load(f32);
  EXPECT_EQ(d.n_tokens(), 150);
  EXPECT_LE(rel_diff(d.feed_all_logits(turn), want16), kBf16Rel);

  Session g(*e32);  // bf16 file into an fp32 engine: widened exactly; fp32 attention from there on
  g.load(f16);
  EXPECT_EQ(g.n_tokens(), 150);
  const std::vector<float> want32 = c.feed_all_logits(turn);
  EXPECT_LE(rel_diff(g.feed_all_logits(turn), want32), kBf16Rel);
  std::filesystem::remove(f16);
  std::filesystem::remove(f32);
}

}  // namespace
}  // namespace kl::test
