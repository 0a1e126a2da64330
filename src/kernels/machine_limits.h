// What the machine can do at best, measured: the ceilings the matmuls are judged against.
// Decode is bound by memory read bandwidth (every weight byte once per token), prompts by the
// FMA (or bf16 dot) throughput. Used by the kernels benchmark and `kimi-linear bench`.
#pragma once
#include <cstddef>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace kl {

class ThreadPool;

// How a streaming read lays out each thread's share: in address order (as decode reads a call's
// weights) or as four streams a quarter of the share apart. Machines differ in which is faster.
enum class ReadPattern { Sequential, FourStreams };

struct BandwidthReading {
  double gbs = 0;                                 // the best pass, GB/s (1e9 bytes per second)
  ReadPattern pattern = ReadPattern::Sequential;  // the pattern of that pass
};

// Streaming read over a buffer of `bytes` (allocated and touched here, freed on return), split
// across all threads of the pool; the best of a few passes, both patterns alternating. Use a
// buffer well beyond the last-level cache (1 GiB) to measure DRAM.
BandwidthReading measure_read_bandwidth(ThreadPool& pool, size_t bytes);
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes);  // its .gbs

// One timed streaming read of memory that already exists, [p, p + bytes) (each thread's share
// rounded down to whole 128-byte steps), split across all threads of the pool: for sampling the
// bandwidth between the steps of a workload, over memory the workload itself reads.
struct ReadPass {
  double bytes = 0, seconds = 0;
};
ReadPass read_pass(ThreadPool& pool, const void* p, size_t bytes, ReadPattern pattern);

// Register-only multiply-add loop on every thread of the pool, in GFLOP/s (an FMA counts 2).
// The instruction is the one the matmul of `weight_format` uses under table k: vdpbf16ps for
// BF16 weights when k.bf16_activations is on, else the fp32 FMA of k.isa (scalar: mul + add).
double measure_peak_gflops(ThreadPool& pool, const Kernels& k, DType weight_format);

}  // namespace kl
