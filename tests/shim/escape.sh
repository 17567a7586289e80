#!/bin/bash
# Calls that escape the shim on a virtual fd fail loudly (EBADF), never with wrong bytes: the
# `syscall` instruction in a preloaded program, a static binary handed a virtual fd, a static
# binary opening a virtual path (ENOENT: it does not see the prefix at all). An escaped fstat or
# statx tells the truth (a 0644 file of the object's size and mtime). glibc's syscall() is the
# shim's: in a preloaded program it reads the file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt" && printf 'hello, oss\n' > "$root/bkt/hello.txt"
start_emulator
dyn=$OSSSHIM_BUILD_ROOT/tests/shim/raw_read
static=$OSSSHIM_BUILD_ROOT/tests/shim/raw_read_static
expect() {  # expect NAME EXPECTED-OUTPUT COMMAND...
  local name=$1 want=$2
  shift 2
  local got
  got=$("$@" 2>&1 | grep -v '^ossshim\[') || true
  if [ "$got" == "$want" ]; then ok; else bad "$name: got [$got] want [$want]"; fi
}
truth='asm-fstat: file 0644 11 bytes, mtime as fstat
syscall-statx: file 0644 11 bytes, mtime as fstat
asm-statx: file 0644 11 bytes, mtime as fstat'
preloaded="syscall-pread: 11 bytes \"hello\"
asm-pread: error EBADF
syscall-mmap: error EBADF
$truth
libc-pread: 11 bytes \"hello\"
libc-read: 11 bytes \"hello\""
expect "preloaded program, opened path" "$preloaded" "$ossrun_bin" -- "$dyn" /oss/bkt/hello.txt
expect "preloaded program, inherited stdin" "$preloaded" "$ossrun_bin" -- bash -c "exec $dyn < /oss/bkt/hello.txt"
mkdir -p "$root/bkt/dir/sub"
expect "preloaded program, opened directory" 'syscall-pread: error EISDIR
asm-pread: error EBADF
syscall-mmap: error EBADF
asm-fstat: dir 0755 mtime as fstat
syscall-statx: dir 0755 mtime as fstat
asm-statx: dir 0755 mtime as fstat
libc-pread: error EISDIR
libc-read: error EISDIR' "$ossrun_bin" -- "$dyn" /oss/bkt/dir
expect "static program, inherited stdin" "syscall-pread: error EBADF
asm-pread: error EBADF
syscall-mmap: error EBADF
$truth
libc-pread: error EBADF
libc-read: error EBADF" "$ossrun_bin" -- bash -c "exec $static < /oss/bkt/hello.txt"
# A virtual writer closed by syscall(SYS_close) (seen) or the syscall instruction (unseen), then a
# local file on the same number: the local file gets its own bytes, the object the virtual ones.
closed='virtual write: 14
close: 0
same number: yes
local write: 12
local read: 12 local bytes
local fstat: file 12
local close: 0
virtual read back: virtual bytes'
for how in syscall asm; do
  rm -f "$work/local-$how"
  expect "raw close ($how)" "$closed" "$ossrun_bin" -- "$OSSSHIM_BUILD_ROOT/tests/shim/raw_close" \
    "/oss/bkt/closed-$how" "$work/local-$how" "$how"
  [ "$(cat "$work/local-$how")" == "local bytes" ] && ok || bad "raw close ($how): the local file holds [$(cat "$work/local-$how")]"
  [ "$(cat "$root/bkt/closed-$how" 2>&1)" == "virtual bytes" ] && ok ||
    bad "raw close ($how): the object holds [$(cat "$root/bkt/closed-$how" 2>&1)]"
done
# The unseen close is reported when it is found (the number handed out again).
"$ossrun_bin" -- "$OSSSHIM_BUILD_ROOT/tests/shim/raw_close" /oss/bkt/closed-log "$work/local-log" asm 2>&1 >/dev/null |
  grep -q "closed by a system call the shim did not see" && ok || bad "raw close (asm): no warning about the unseen close"
expect "static program, path" 'open: error ENOENT' "$ossrun_bin" -- "$static" /oss/bkt/hello.txt
finish
