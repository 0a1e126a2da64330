#include "tokenizer/bpe.h"

#include <cstdint>
#include <functional>
#include <queue>

#include "core/error.h"

namespace kl {
namespace {

constexpr TokenId kNone = -1;

// Pieces up to this many bytes use the scan; it allocates nothing and is faster when short.
constexpr size_t kScanMaxBytes = 64;

}  // namespace

void bpe_merge_scan(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out) {
  const size_t n = piece.size();
  // parts[k] starts at byte start[k]; rank[k] is the rank of parts k and k+1 merged (the bytes
  // start[k] .. start[k+2]), or kNone. start[count] == n is a sentinel. Short pieces keep the
  // arrays on the stack.
  uint32_t start_buf[kScanMaxBytes + 1];
  TokenId rank_buf[kScanMaxBytes];
  std::vector<uint32_t> start_vec;
  std::vector<TokenId> rank_vec;
  uint32_t* start = start_buf;
  TokenId* rank = rank_buf;
  if (n > kScanMaxBytes) {
    start_vec.resize(n + 1);
    rank_vec.resize(n);
    start = start_vec.data();
    rank = rank_vec.data();
  }
  size_t count = n;
  for (size_t k = 0; k <= n; ++k) start[k] = uint32_t(k);
  auto pair_rank = [&](size_t k) -> TokenId {
    if (k + 2 > count) return kNone;
    return vocab.find(piece.substr(start[k], start[k + 2] - start[k]));
  };
  for (size_t k = 0; k + 1 < count; ++k) rank[k] = pair_rank(k);
  while (count > 1) {
    TokenId best = kNone;
    size_t at = 0;
    for (size_t k = 0; k + 1 < count; ++k) {
      if (rank[k] != kNone && (best == kNone || rank[k] < best)) {  // strict: leftmost on ties
        best = rank[k];
        at = k;
      }
    }
    if (best == kNone) break;
    // Merge parts at and at+1: drop start[at+1] and rank[at+1].
    for (size_t k = at + 1; k < count; ++k) start[k] = start[k + 1];
    for (size_t k = at + 1; k + 1 < count; ++k) rank[k] = rank[k + 1];
    --count;
    if (at + 1 < count) rank[at] = pair_rank(at);
    if (at > 0) rank[at - 1] = pair_rank(at - 1);
  }
  for (size_t k = 0; k < count; ++k) {
    const TokenId t = vocab.find(piece.substr(start[k], start[k + 1] - start[k]));
    KL_ASSERT(t != kNone);
    out.push_back(t);
  }
}

void bpe_merge_heap(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out) {
  const uint32_t n = uint32_t(piece.size());
  // Node i is the part starting at byte i (the left part keeps its index when two merge), so
  // next[i] is also where part i ends. rank[i]: rank of part i merged with the next one.
  std::vector<uint32_t> next(n), prev(n);
  std::vector<TokenId> rank(n, kNone);
  std::vector<bool> alive(n, true);
  for (uint32_t i = 0; i < n; ++i) {
    next[i] = i + 1;
    prev[i] = i == 0 ? 0 : i - 1;
  }
  // Candidates keyed by (rank, start byte): the smallest key is the lowest rank, leftmost on
  // ties, exactly the pair the scan would pick. Entries go stale when a neighbour merges;
  // they are recognised on pop because rank[i] changed (a part only grows, so its pair with
  // the next part never has the same bytes, hence never the same rank, twice) or i is dead.
  using Key = uint64_t;
  std::priority_queue<Key, std::vector<Key>, std::greater<Key>> heap;
  auto pair_rank = [&](uint32_t i) -> TokenId {
    const uint32_t j = next[i];
    if (j >= n) return kNone;
    return vocab.find(piece.substr(i, next[j] - i));
  };
  auto push = [&](uint32_t i) {
    rank[i] = pair_rank(i);
    if (rank[i] != kNone) heap.push((Key(uint32_t(rank[i])) << 32) | i);
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Key key = heap.top();
    heap.pop();
    const uint32_t i = uint32_t(key & 0xFFFFFFFFu);
    const TokenId r = TokenId(key >> 32);
    if (!alive[i] || rank[i] != r) continue;
    const uint32_t j = next[i];
    alive[j] = false;
    next[i] = next[j];
    if (next[i] < n) prev[next[i]] = i;
    push(i);
    if (i > 0) push(prev[i]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) {
    const TokenId t = vocab.find(piece.substr(i, next[i] - i));
    KL_ASSERT(t != kNone);
    out.push_back(t);
  }
}

void bpe_encode(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out) {
  const TokenId whole = vocab.find(piece);
  if (whole != kNone) {
    out.push_back(whole);
    return;
  }
  if (piece.size() <= kScanMaxBytes)
    bpe_merge_scan(vocab, piece, out);
  else
    bpe_merge_heap(vocab, piece, out);
}

}  // namespace kl
