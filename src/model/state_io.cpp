#include "model/state_io.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/model.h"

namespace kl {

// Layout: "KLSTATE\0" | u32 version | u32 header bytes | header JSON | payload | u64 checksum
// (of everything before it). Payload: per KDA layer the recurrent state then the conv history
// (fp32), per MLA layer its rows x width values in the cache's dtype (header "mla_dtype", F32
// when absent), then the token ids as int32; all little-endian. A file whose cache dtype differs
// from the loading model's is converted on load (bf16 -> fp32 exactly, fp32 -> bf16 rounded).
namespace {
constexpr char kMagic[8] = {'K', 'L', 'S', 'T', 'A', 'T', 'E', 0};
constexpr uint32_t kVersion = 1;

uint64_t checksum(const unsigned char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ (w * 0xff51afd7ed558ccdull)) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
  }
  for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h ^ (h >> 32);
}
}  // namespace

void save_state(const Model& m, const SequenceState& s, const std::vector<int32_t>& tokens, const std::string& path) {
  if (int64_t(tokens.size()) != s.n_tokens)
    fail("save: token history (", tokens.size(), ") does not match the state (", s.n_tokens, " tokens)");
  nlohmann::json h = {{"model", m.fingerprint()},
                      {"n_tokens", s.n_tokens},
                      {"kda_layers", s.kda.size()},
                      {"mla_layers", s.mla.size()}};
  if (!s.kda.empty()) h["kda_sizes"] = {s.kda[0].recurrent.size(), s.kda[0].conv.size()};
  if (!s.mla.empty()) {
    h["mla_width"] = s.mla[0].width();
    h["mla_dtype"] = std::string(dtype_name(s.mla[0].dtype()));
  }
  const std::string hs = h.dump();

  std::string buf(kMagic, 8);
  auto put = [&](const void* p, size_t n) { buf.append(static_cast<const char*>(p), n); };
  const uint32_t hl = uint32_t(hs.size());
  put(&kVersion, 4);
  put(&hl, 4);
  put(hs.data(), hs.size());
  for (const auto& k : s.kda) {
    put(k.recurrent.data(), k.recurrent.size() * 4);
    put(k.conv.data(), k.conv.size() * 4);
  }
  for (const auto& c : s.mla)
    for (int64_t t = 0; t < c.rows(); t++) put(c.row(t), c.row_bytes());
  put(tokens.data(), tokens.size() * 4);
  const uint64_t sum = checksum(reinterpret_cast<const unsigned char*>(buf.data()), buf.size());
  put(&sum, 8);

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(path, ": cannot write");
    f.write(buf.data(), std::streamsize(buf.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      fail(path, ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, ": cannot replace: ", ec.message());
}

SequenceState load_state(const Model& m, const std::string& path, std::vector<int32_t>* tokens) {
  MappedFile f(path);
  const unsigned char* p = f.data();
  const size_t n = f.size();
  if (n < 24 || std::memcmp(p, kMagic, 8) != 0) fail(path, ": not a kimi-linear session file");
  uint32_t version, hl;
  std::memcpy(&version, p + 8, 4);
  std::memcpy(&hl, p + 12, 4);
  if (version != kVersion) fail(path, ": session file version ", version, " is not supported (this build reads ", kVersion, ")");
  uint64_t stored;
  std::memcpy(&stored, p + n - 8, 8);
  if (checksum(p, n - 8) != stored) fail(path, ": checksum mismatch: the file is damaged or truncated");
  if (size_t(hl) > n - 24) fail(path, ": header length beyond the file");
  nlohmann::json h = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(p + 16), hl), nullptr, false);
  if (h.is_discarded() || !h.is_object() || !h.contains("model") || !h.contains("n_tokens"))
    fail(path, ": malformed session header");
  if (h["model"] != m.fingerprint())
    fail(path, ": this session was saved with another model (", h["model"].get<std::string>(), "), not the one loaded (",
         m.fingerprint(), ")");
  SequenceState s = m.new_state();
  if (!h["n_tokens"].is_number_integer()) fail(path, ": malformed session header (n_tokens)");
  const int64_t nt = h["n_tokens"].get<int64_t>();
  DType file_dtype = DType::F32;
  if (h.contains("mla_dtype")) {
    if (!h["mla_dtype"].is_string() || !dtype_from_name(h["mla_dtype"].get<std::string>(), &file_dtype) ||
        (file_dtype != DType::F32 && file_dtype != DType::BF16))
      fail(path, ": malformed session header (mla_dtype)");
  }
  const size_t file_row_scale = dtype_size(file_dtype);
  size_t need = 0;
  for (const auto& k : s.kda) need += (k.recurrent.size() + k.conv.size()) * 4;
  for (const auto& c : s.mla) need += size_t(nt) * size_t(c.width()) * file_row_scale;
  need += size_t(nt) * 4;
  if (nt < 0 || 16 + size_t(hl) + need + 8 != n) fail(path, ": payload size does not match its header");
  const unsigned char* q = p + 16 + hl;
  auto get = [&](void* dst, size_t bytes) {
    std::memcpy(dst, q, bytes);
    q += bytes;
  };
  for (auto& k : s.kda) {
    get(k.recurrent.data(), k.recurrent.size() * 4);
    get(k.conv.data(), k.conv.size() * 4);
  }
  std::vector<float> wide;
  for (auto& c : s.mla) {
    c.resize(nt);
    const size_t bytes = size_t(c.width()) * file_row_scale;
    if (file_dtype == c.dtype()) {
      for (int64_t t = 0; t < nt; t++) get(c.row_mut(t), bytes);
    } else {
      wide.resize(size_t(c.width()));
      std::vector<float> raw(size_t(c.width()));  // the file's row, aligned (the payload need not be)
      for (int64_t t = 0; t < nt; t++) {
        get(raw.data(), bytes);
        convert_to_f32(file_dtype, raw.data(), wide.data(), size_t(c.width()));
        c.write_row(t, wide.data());
      }
    }
  }
  s.n_tokens = nt;
  tokens->resize(size_t(nt));
  get(tokens->data(), size_t(nt) * 4);
  return s;
}

}  // namespace kl
