#!/bin/bash
# Builds ossshim and runs the write-path benchmark (tools/bench/write_bench.py): a SIZE file written
# sequentially through the shim (dd, cp, Python) and by ali-oss and awscli multipart uploads, to the
# local emulator, uncapped and capped. Every argument goes to write_bench.py (--help lists them).
# The build directory is --build DIR (default build), set up with meson if it does not exist yet.
#   tools/bench/write-bench.sh                              # 2 GiB, every row, uncapped and capped
#   tools/bench/write-bench.sh --size 256m --rows shim      # a quick look at the shim rows
#   tools/bench/write-bench.sh --size 1g --part-size 16m --upload-concurrency 16
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
  echo "write-bench.sh: the build failed" >&2
  exit 1
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
WRITE_BENCH_ARGV0=tools/bench/write-bench.sh exec "$python" tools/bench/write_bench.py "$@"
