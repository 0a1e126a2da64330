#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kl {

CpuFeatures CpuFeatures::detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  {  // clang 14's __builtin_cpu_supports does not know "f16c": read CPUID leaf 1, ECX bit 29.
    unsigned a = 0, b = 0, c = 0, d = 0;
    f.f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  }
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  {  // Vendor (leaf 0: "AuthenticAMD") and family (leaf 1: base + extended when base is 0xF).
    unsigned a = 0, b = 0, c = 0, d = 0;
    const bool amd = __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;
    unsigned family = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
      family = (a >> 8) & 0xF;
      if (family == 0xF) family += (a >> 20) & 0xFF;
    }
    f.avx512_halves = amd && family == 0x19 && f.avx512f;
  }
#elif defined(__aarch64__)
  f.neon = true;
#endif
  return f;
}

bool CpuFeatures::supports(Isa isa) const {
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return avx2 && fma && f16c;
    case Isa::Avx512:
      return avx512f && avx512bw && avx512vl && avx512dq && supports(Isa::Avx2);
    case Isa::Neon:
      return neon;
  }
  return false;
}

Isa CpuFeatures::best_isa() const {
  if (supports(Isa::Avx512)) return Isa::Avx512;
  if (supports(Isa::Avx2)) return Isa::Avx2;
  if (supports(Isa::Neon)) return Isa::Neon;
  return Isa::Scalar;
}

std::string CpuFeatures::describe() const {
  std::string s = isa_name(best_isa());
  std::string extra;
  if (avx512_bf16) extra += "bf16";
  if (avx512_vnni) extra += extra.empty() ? "vnni" : ", vnni";
  if (avx512_halves) extra += extra.empty() ? "512-bit as 2x256" : ", 512-bit as 2x256";
  if (!extra.empty()) s += " (" + extra + ")";
  return s;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    case Isa::Neon:
      return "neon";
  }
  return "?";
}

bool isa_from_name(const std::string& s, Isa* out) {
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (s == isa_name(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

}  // namespace kl
