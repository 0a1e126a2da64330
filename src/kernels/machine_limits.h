// What the machine can do at best, measured: the ceilings the matmuls are judged against.
// Decode is bound by memory read bandwidth (every weight byte once per token), prompts by the
// FMA (or bf16 dot) throughput. Used by the kernels benchmark and `kimi-linear bench`.
#pragma once
#include <cstddef>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace kl {

class ThreadPool;

// Streaming read over a buffer of `bytes` (allocated and touched here, freed on return), split
// across all threads of the pool; the best of a few passes, in GB/s (1e9 bytes per second).
// Use a buffer well beyond the last-level cache (1 GiB) to measure DRAM.
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes);

// Register-only multiply-add loop on every thread of the pool, in GFLOP/s (an FMA counts 2).
// The instruction is the one the matmul of `weight_format` uses under table k: vdpbf16ps for
// BF16 weights when k.bf16_activations is on, else the fp32 FMA of k.isa (scalar: mul + add).
double measure_peak_gflops(ThreadPool& pool, const Kernels& k, DType weight_format);

}  // namespace kl
