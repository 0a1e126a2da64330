#include "kernels/machine_limits.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/buffer.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/neon_impl.h"
#include "kernels/x86_impl.h"

namespace kl {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sums `bytes` (a multiple of 128) with generic 16-byte vectors, for CPUs without the x86 paths.
uint64_t read_sum_portable(const void* p, size_t bytes) {
  typedef uint64_t u64x2 __attribute__((vector_size(16)));
  const char* c = static_cast<const char*>(p);
  u64x2 s[8] = {};
  for (size_t i = 0; i < bytes; i += 128) {
    for (int k = 0; k < 8; k++) {
      u64x2 v;
      std::memcpy(&v, c + i + 16 * k, 16);
      s[k] += v;
    }
  }
  u64x2 t = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
  return t[0] + t[1];
}

using ReadFn = uint64_t (*)(const void* p, size_t bytes);

// The widest loads this CPU has (narrow loads leave streaming bandwidth unused on some cores, and
// the number should be the ceiling the matmul kernels, which use the widest loads, can reach), in
// two patterns: address order (as decode reads a call's weights) and four streams at once.
struct Readers {
  ReadFn seq, four;
};
Readers widest_readers() {
#if defined(KL_HAVE_X86_KERNELS)
  const CpuFeatures cpu = CpuFeatures::detect();
  if (cpu.supports(Isa::Avx512)) return {avx512::read_sum_seq, avx512::read_sum};
  if (cpu.supports(Isa::Avx2)) return {avx2::read_sum_seq, avx2::read_sum};
#endif
  return {read_sum_portable, read_sum_portable};
}

// Scalar mul + add chains (what the scalar kernels run on); kept scalar so it is the ceiling of
// scalar code, not of the compiler's auto-vectorizer.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
double scalar_fma_loop(int64_t iters, float* sink) {
  constexpr int kChains = 8;
  float acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = float(k);
  const float b = 0.999f, c = 0.001f;
  for (int64_t it = 0; it < iters; it++) {
#if defined(__clang__)
#pragma clang loop vectorize(disable)
#endif
    for (int k = 0; k < kChains; k++) acc[k] = acc[k] * b + c;
  }
  float s = 0.f;
  for (int k = 0; k < kChains; k++) s += acc[k];
  *sink = s;
  return double(iters) * kChains * 2;
}

using PeakLoop = double (*)(int64_t iters, float* sink);

PeakLoop peak_loop_for(const Kernels& k, DType weight_format) {
#if defined(KL_HAVE_X86_KERNELS)
  switch (k.isa) {
    case Isa::Avx512:
      if (weight_format == DType::BF16 && k.bf16_activations && k.matmul_rows_bf16_dot)
        return avx512::dpbf16_loop;
      return avx512::fma_loop;
    case Isa::Avx2: return avx2::fma_loop;
    default: break;
  }
#elif defined(__aarch64__) && defined(KL_HAVE_NEON_KERNELS)
  if (k.isa == Isa::Neon) return neon::fma_loop;
#endif
  (void)k;
  (void)weight_format;
  return scalar_fma_loop;
}

}  // namespace

ReadPass read_pass(ThreadPool& pool, const void* p, size_t bytes, ReadPattern pattern) {
  const Readers readers = widest_readers();
  const ReadFn read = pattern == ReadPattern::Sequential ? readers.seq : readers.four;
  const int nt = pool.size();
  const size_t per_thread = bytes / size_t(nt) / 128 * 128;  // whole 128-byte steps
  if (per_thread == 0) return {};
  std::vector<uint64_t> sink(size_t(nt) * 8);  // a cache line per thread
  const char* c = static_cast<const char*>(p);
  const double t0 = now_s();
  pool.parallel_for(nt, [&](int64_t task, int) {
    sink[size_t(task) * 8] += read(c + size_t(task) * per_thread, per_thread);
  });
  return {double(per_thread) * double(nt), now_s() - t0};
}

BandwidthReading measure_read_bandwidth(ThreadPool& pool, size_t bytes) {
  const int nt = pool.size();
  // Zero-filled: every page is touched. Whole 128-byte steps per thread.
  Buffer<unsigned char> buf(std::max<size_t>(128, bytes / size_t(nt) / 128 * 128) * size_t(nt));
  BandwidthReading best;
  // Pass 0 warms up TLB and clocks; then the two patterns alternate, and the best pass counts:
  // the ceiling is what the faster pattern reaches on this machine.
  for (int pass = 0; pass < 7; pass++) {
    const ReadPattern pattern = pass % 2 ? ReadPattern::Sequential : ReadPattern::FourStreams;
    const ReadPass r = read_pass(pool, buf.data(), buf.size(), pattern);
    const double gbs = r.bytes / r.seconds / 1e9;
    if (pass > 0 && gbs > best.gbs) best = {gbs, pattern};
  }
  return best;
}

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes) { return measure_read_bandwidth(pool, bytes).gbs; }

double measure_peak_gflops(ThreadPool& pool, const Kernels& k, DType weight_format) {
  PeakLoop loop = peak_loop_for(k, weight_format);
  float sink = 0.f;
  // Calibrate on one thread to ~0.1 s per pass.
  int64_t iters = 1 << 16;
  for (;;) {
    double t0 = now_s();
    loop(iters, &sink);
    double dt = now_s() - t0;
    if (dt > 0.02 || iters > (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1, int64_t(double(iters) * 0.1 / std::max(dt, 1e-9)));
      break;
    }
    iters *= 4;
  }
  const int nt = pool.size();
  std::vector<float> sinks(size_t(nt) * 16);
  std::vector<double> flops(size_t(nt) * 8);
  double best = 0;
  for (int pass = 0; pass < 3; pass++) {
    double t0 = now_s();
    pool.parallel_for(nt, [&](int64_t task, int) {
      flops[size_t(task) * 8] = loop(iters, &sinks[size_t(task) * 16]);
    });
    double dt = now_s() - t0;
    double total = 0;
    for (int t = 0; t < nt; t++) total += flops[size_t(t) * 8];
    best = std::max(best, total / dt / 1e9);
  }
  return best;
}

}  // namespace kl
