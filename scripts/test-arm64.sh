#!/usr/bin/env bash
# The kernel and model tests on AArch64 without an ARM machine: cross-compiles for aarch64 (the
# NEON kernels) and runs the test binaries under qemu user emulation. Not part of scripts/test.sh
# (CI's budget): run it after touching *_neon.cpp or the shared kernel templates. Slow: qemu runs
# the tests ~50x slower than native. Extra arguments: the test binaries to run (default below).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
bash scripts/deps.sh g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libpcre2-dev:arm64 \
  libgtest-dev:arm64 libstdc++-12-dev:arm64
tests=("$@")
[[ ${#tests[@]} -gt 0 ]] || tests=(kernels_matmul_test kernels_kda_test kernels_kda_simd_test kernels_attention_test
                                  kernels_tile_bf16_test model_golden_test model_moe_test model_mla_test
                                  model_cache_bf16_test)
cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake" -DKL_BUILD_BENCH=OFF >/dev/null
ninja -C build-arm64 -j"$(nproc)" "${tests[@]}"
for t in "${tests[@]}"; do
  echo "=== $t (aarch64, qemu)"
  (cd build-arm64/tests && timeout 1800 qemu-aarch64 -L / "./$t" --gtest_brief=1)
done
echo "all aarch64 tests passed"
