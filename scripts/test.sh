#!/usr/bin/env bash
# The whole test suite: installs what is needed, then
#   1. Release build, every GoogleTest binary under ctest;
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (any report fails);
#   3. every libFuzzer target (clang) for a bounded time (FUZZ_SECONDS each, default 20).
# Set KL_TEST_QUICK=1 to run step 1 only.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/deps.sh
jobs=$(nproc)

step() { echo; echo "=== $* ==="; }

step "Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

[[ ${KL_TEST_QUICK:-0} == 1 ]] && exit 0

step "AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKL_SANITIZE=ON -DKL_BUILD_BENCH=OFF >/dev/null
ninja -C build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

step "Fuzz targets (${FUZZ_SECONDS:-20} s each)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKL_FUZZ=ON \
  -DKL_BUILD_TESTS=OFF >/dev/null
ninja -C build-fuzz -j"$jobs" $(sed -n 's/^kl_add_fuzzer(\([a-z_0-9]*\).*/\1/p' tests/fuzz/CMakeLists.txt)
bash tests/fuzz/run_all.sh "${FUZZ_SECONDS:-20}" build-fuzz
echo "all test stages passed"
