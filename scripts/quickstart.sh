#!/usr/bin/env bash
# Quick start: installs what is needed, builds, and runs the main job: generation on the model
# given with --model DIR (a Kimi Linear checkpoint), or on the built-in random-weight model.
# Extra arguments go to `kimi-linear generate`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/deps.sh"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$root/build" kimi-linear
echo "built $root/build/src/cli/kimi-linear" >&2
args=("$@")
has_prompt=0
for a in "${args[@]}"; do [[ $a == --prompt* ]] && has_prompt=1; done
[[ $has_prompt -eq 1 ]] || args+=(--prompt "Once upon a time" --max-tokens 32)
exec "$root/build/src/cli/kimi-linear" generate "${args[@]}"
