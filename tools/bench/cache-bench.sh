#!/bin/bash
# Builds ossshim and runs the shared-cache benchmark (tools/bench/cache_bench.py); every argument
# goes to cache_bench.py (--help lists them). The build directory is --build DIR (default build),
# set up with meson if it does not exist yet.
#   tools/bench/cache-bench.sh                                  # 4 GiB model, 4 shards, 8 processes
#   tools/bench/cache-bench.sh --size 512m --shards 2 --procs 4 # a quick run
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --build) build=${args[i + 1]:-build} ;;
    --build=*) build=${args[i]#--build=} ;;
  esac
done
[ -d "$build" ] || meson setup "$build" >/dev/null
if ! out=$(ninja -C "$build" 2>&1); then
  printf '%s\n' "$out" | tail -n 40 >&2
  echo "cache-bench.sh: the build failed" >&2
  exit 1
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
exec "$python" tools/bench/cache_bench.py "$@"
