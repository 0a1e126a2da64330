#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KL_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define KL_CPU_RELAX() asm volatile("yield")
#else
#define KL_CPU_RELAX() ((void)0)
#endif

namespace kl {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1) fail("thread count must be at least 1 (got ", n_threads, ")");
  for (int i = 1; i < n_threads; i++) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks(int thread) {
  for (;;) {
    int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= n_tasks_) break;
    (*job_)(t, thread);
  }
}

void ThreadPool::worker(int id) {
  using clock = std::chrono::steady_clock;
  uint64_t seen = 0;
  for (;;) {
    // Spin for a while, then sleep until the next job or the end.
    auto spin_until = clock::now() + std::chrono::microseconds(kSpinMicros);
    uint64_t g;
    for (int i = 0;; i++) {
      g = generation_.load(std::memory_order_acquire);
      if (g != seen || stop_.load(std::memory_order_acquire)) break;
      KL_CPU_RELAX();
      if ((i & 255) == 255 && clock::now() > spin_until) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] {
          return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire);
        });
        spin_until = clock::now() + std::chrono::microseconds(kSpinMicros);
      }
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = g;
    run_tasks(id);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; t++) fn(t, 0);
    return;
  }
  job_ = &fn;
  n_tasks_ = n_tasks;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Under the lock, so a worker about to sleep either sees the new generation or is woken.
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  run_tasks(0);
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; i++) {
    if (i < 100000)
      KL_CPU_RELAX();
    else
      std::this_thread::yield();  // a worker was descheduled: do not burn its core
  }
  job_ = nullptr;
}

void ThreadPool::parallel_range(int64_t n, int64_t grain,
                                const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int64_t chunks = std::min<int64_t>(max_chunks, int64_t(n_threads_) * 4);
  if (chunks <= 1) {
    fn(0, n, 0);
    return;
  }
  int64_t per = (n + chunks - 1) / chunks;
  parallel_for(chunks, [&](int64_t c, int thread) {
    int64_t b = c * per, e = std::min(n, b + per);
    if (b < e) fn(b, e, thread);
  });
}

int default_thread_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace kl
