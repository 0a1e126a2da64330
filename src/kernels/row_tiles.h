// The row x token tiling every ISA's row-tiled matmul path shares (matmul_avx2.cpp,
// matmul_avx512.cpp, matmul_neon.cpp): a call's rows in blocks that fit in L2, each block swept
// by every token tile, each (block, token tile) by tiles of R rows. The ISA files supply only the
// tile kernels; the tile sizes are template arguments, so every tile is a compile-time shape.
// Everything here has internal linkage (an unnamed namespace, on purpose in a header): each ISA
// file gets its own private copy, so the linker can never pick one file's copy of an inline
// function, compiled with AVX-512 instructions, for a caller on an AVX2-only CPU.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace kl::row_tiles {
namespace {

// Calls f.template operator()<N>() for the run-time n in [1, Max]; nothing for other n.
template <int Max, class F>
inline __attribute__((always_inline)) void with_count(int64_t n, F&& f) {
  if constexpr (Max >= 1) {
    if (n == Max) return f.template operator()<Max>();
    with_count<Max - 1>(n, f);
  }
}

// Rows [r0, r1) in tiles of R rows: f.template operator()<R>(r) for each whole tile, then one
// call f.template operator()<r1 - r>(r) for the rows left (fewer than R).
template <int R, class F>
inline __attribute__((always_inline)) void for_row_tiles(int64_t r0, int64_t r1, F&& f) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) f.template operator()<R>(r);
  if constexpr (R > 1) with_count<R - 1>(r1 - r, [&]<int Rest>() { f.template operator()<Rest>(r); });
}

// Decode (one token) reads a call's rows one after another, in address order. Past this many
// columns a row's x (fp32, 24 KiB) no longer stays in a 32 KiB L1 beside the weight stream: it
// comes from L2 again for every row, twice the row's bf16 bytes, and a [2304 x 9216] matvec
// streamed at 40-77 % of the read probe on Zen 4 (`kernels_bench stream`, dense) against
// 92-99 % with two rows side by side sharing each x load. Such rows go in 2-row tiles.
constexpr int64_t kLongRowCols = 6144;

// Rows of one block: as many as fit block_bytes, a multiple of the tile height (at least one tile).
inline int64_t row_block(size_t row_bytes, size_t block_bytes, int tile_rows) {
  const int64_t rb = int64_t(block_bytes / std::max<size_t>(row_bytes, 1));
  return std::max<int64_t>(tile_rows, rb / tile_rows * tile_rows);
}

// n tokens in tiles of at most max_tokens, as even as possible (8 by 6 -> 4 + 4, not 6 + 2):
// f(t0, T) for each.
template <class F>
inline void for_token_tiles(int64_t n, int max_tokens, F&& f) {
  const int64_t tiles = (n + max_tokens - 1) / max_tokens;
  for (int64_t k = 0, t0 = 0; k < tiles; k++) {
    const int64_t T = (n - t0 + (tiles - k) - 1) / (tiles - k);
    f(t0, int(T));
    t0 += T;
  }
}

// Rows [r0, r1) x tokens [0, n): blocks of `block` rows, each swept by every token tile;
// f(b0, b1, t0, T) for each (block, token tile). The block's weights are read from memory by the
// first token tile and from L2 by the others.
template <class F>
inline void for_blocks(int64_t r0, int64_t r1, int64_t block, int64_t n, int max_tokens, F&& f) {
  for (int64_t b0 = r0; b0 < r1; b0 += block) {
    const int64_t b1 = std::min(r1, b0 + block);
    for_token_tiles(n, max_tokens, [&](int64_t t0, int T) { f(b0, b1, t0, T); });
  }
}

}  // namespace
}  // namespace kl::row_tiles
