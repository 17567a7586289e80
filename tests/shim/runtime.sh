#!/bin/bash
# The shim's own runtime under stress: descriptor calls racing close answer EBADF, never crash.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt/dir/sub"
printf 'hello\n' > "$root/bkt/hello.txt"
for i in 1 2 3; do printf '%s\n' "$i" > "$root/bkt/dir/f$i.txt"; done
start_emulator
bin=$OSSSHIM_BUILD_ROOT/tests/shim

# dup, dup2, fcntl, fstat, read, getdents64, fchdir on descriptors other threads close.
if out=$(timeout 120 "$ossrun_bin" -- "$bin/fd_race" /oss/bkt/hello.txt /oss/bkt/dir 3000 2>&1); then ok; else
  bad "fd_race: $out"
fi
grep -q 'fd_race: [0-9]* calls, [1-9][0-9]* EBADF, 0 other' <<< "$out" && ok || bad "fd_race saw no closed descriptor: $out"
finish
