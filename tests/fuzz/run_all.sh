#!/usr/bin/env bash
# Runs every libFuzzer binary (fuzz_*) in a build dir for DURATION seconds each, starting from its
# seed corpus (tests/fuzz/corpus/<x>/ for fuzz_<x>, copied to a temp dir so the repo is not
# modified) and its dictionary (tests/fuzz/<x>.dict) if present. Builds nothing.
# Exits non-zero if any fuzzer finds a crash, leak, timeout or sanitizer report; the failing
# inputs are kept and their directory printed.
#
# usage: tests/fuzz/run_all.sh DURATION [BUILD_DIR]    (BUILD_DIR defaults to ./build-fuzz)
# build: CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DKL_FUZZ=ON -DKL_BUILD_TESTS=OFF
#        ninja -C build-fuzz fuzz_safetensors fuzz_npy ...
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 DURATION_SECONDS [BUILD_DIR]" >&2
  exit 2
fi
duration=$1
build=${2:-build-fuzz}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mapfile -t bins < <(find "$build" -type f -perm -u+x -name 'fuzz_*' ! -name '*.*' ! -path '*/CMakeFiles/*' | sort)
if [[ ${#bins[@]} -eq 0 ]]; then
  echo "no fuzz_* binaries under '$build' (configure with -DKL_FUZZ=ON and build them first)" >&2
  exit 2
fi

work=$(mktemp -d -t kl-fuzz.XXXXXX)
failed=()
for bin in "${bins[@]}"; do
  name=$(basename "$bin")
  short=${name#fuzz_}
  dir=$work/$name
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [[ -d $here/corpus/$short ]]; then
    cp -r "$here/corpus/$short/." "$dir/corpus/"
  fi
  args=(-max_total_time="$duration" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$dir/artifacts/")
  if [[ -f $here/$short.dict ]]; then
    args+=(-dict="$here/$short.dict")
  fi
  echo "== $name: ${duration}s, $(ls "$dir/corpus" | wc -l) seeds"
  if "$bin" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 || true)
    echo "   ok: ${execs:-?} executions, $cov, corpus now $(ls "$dir/corpus" | wc -l) inputs"
  else
    echo "   FAILED (log: $dir/log, inputs: $dir/artifacts/)"
    tail -n 40 "$dir/log" | sed 's/^/   | /'
    failed+=("$name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzers with findings: ${failed[*]} (kept in $work)" >&2
  exit 1
fi
rm -rf "$work"
echo "all ${#bins[@]} fuzzers ran ${duration}s without findings"
