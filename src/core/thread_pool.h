// One pool of worker threads, owned by the engine context and passed down (DESIGN.md §5).
// The calling thread takes part in every parallel_for, so a pool of size 1 runs inline.
// A decode step makes a few hundred short parallel calls, so idle workers spin briefly
// (kSpinMicros) before sleeping: a hand-off costs well under a microsecond instead of a
// futex wake-up of tens of microseconds.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kl {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1, counting the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task, thread) for every task in [0, n_tasks), tasks handed out dynamically;
  // `thread` in [0, size()) identifies per-thread scratch. Returns when all are done.
  // Not reentrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

  // Splits [0, n) into contiguous ranges of at least `grain` items, about a few per thread,
  // and calls fn(begin, end, thread) on each.
  void parallel_range(int64_t n, int64_t grain,
                      const std::function<void(int64_t begin, int64_t end, int thread)>& fn);

  // How long an idle worker spins before it sleeps.
  static constexpr int kSpinMicros = 300;

 private:
  void worker(int id);
  void run_tasks(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;                 // guards sleeping / waking only
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};  // bumped once per parallel_for
  std::atomic<int> pending_{0};          // workers still inside the current job
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
};

int default_thread_count();  // cores available to this process

}  // namespace kl
