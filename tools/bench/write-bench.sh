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
source tools/bench/prepare.sh write-bench.sh "$@"
WRITE_BENCH_ARGV0=tools/bench/write-bench.sh exec "$python" tools/bench/write_bench.py "$@"
