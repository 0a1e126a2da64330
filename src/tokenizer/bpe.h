// Byte-level BPE of one pre-tokenized piece (tiktoken byte_pair_encode; spec §7.2, README §4
// step 4): a piece that is itself a token is emitted whole; otherwise start from single bytes
// and repeatedly merge the adjacent pair whose concatenation has the lowest rank, leftmost on
// ties, until no adjacent concatenation is a token.
#pragma once
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace kl {

// Appends the tokens of `piece` (non-empty) to `out`.
void bpe_encode(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out);

// The two merge loops, exposed so tests can check them against each other: a direct scan,
// O(n^2), used for short pieces; and a linked list with a min-heap of candidate pairs,
// O(n log n), used for long ones. Both skip the whole-piece lookup.
void bpe_merge_scan(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out);
void bpe_merge_heap(const Vocab& vocab, std::string_view piece, std::vector<TokenId>& out);

}  // namespace kl
