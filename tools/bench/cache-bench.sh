#!/bin/bash
# Builds ossshim and runs the shared-cache benchmark (tools/bench/cache_bench.py); every argument
# goes to cache_bench.py (--help lists them). The build directory is --build DIR (default build),
# set up with meson if it does not exist yet.
#   tools/bench/cache-bench.sh                                  # 4 GiB model, 4 shards, 8 processes
#   tools/bench/cache-bench.sh --size 512m --shards 2 --procs 4 # a quick run
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/prepare.sh cache-bench.sh "$@"
exec "$python" tools/bench/cache_bench.py "$@"
