// What the CPU can do, detected once at start-up. Kernels pick their fast path from this.
#pragma once
#include <string>

namespace kl {

enum class Isa { Scalar, Avx2, Avx512, Neon };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false;
  // The core runs 512-bit operations as two 256-bit halves (AMD family 19h, Zen 4; Zen 5 and
  // Intel's AVX-512 cores run them whole). The AVX-512 decode kernels then read x differently.
  bool avx512_halves = false;
  bool neon = false;

  static CpuFeatures detect();
  Isa best_isa() const;  // the widest ISA the kernels support on this CPU
  bool supports(Isa isa) const;
  std::string describe() const;  // "avx512 (bf16, vnni)"
};

const char* isa_name(Isa isa);
// "scalar", "avx2", "avx512", "neon"; returns false when unknown.
bool isa_from_name(const std::string& s, Isa* out);

}  // namespace kl
