// Helpers shared by the two latent attention kernels (kernels-internal).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace kl::attn {

// Scratch offsets rounded to 16 floats (64 bytes).
inline size_t align16(size_t n) { return (n + 15) / 16 * 16; }

// Runs fn(task, thread) over [0, n) on the pool, or inline without one.
inline void for_tasks(const Context& ctx, int64_t n, const std::function<void(int64_t, int)>& fn) {
  if (ctx.pool)
    ctx.pool->parallel_for(n, fn);
  else
    for (int64_t t = 0; t < n; t++) fn(t, 0);
}

// Rows [t0, t0 + result) are one tile: at most max_rows, within one page, before `end`.
inline int64_t tile_rows(int64_t t0, int64_t end, int64_t max_rows, int64_t page_rows) {
  return std::min({max_rows, page_rows - t0 % page_rows, end - t0});
}

}  // namespace kl::attn
