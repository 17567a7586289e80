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
# ... and a reader closed unseen whose number a pipe then takes (libc's pipe(), which the shim
# hears of): reads of the number are the pipe's.
expect "raw close, then a pipe on the number" 'virtual read: 4
close: 0
same number: yes
pipe write: 11
pipe read: 11 pipe bytes' "$ossrun_bin" -- "$OSSSHIM_BUILD_ROOT/tests/shim/raw_close" /oss/bkt/hello.txt - pipe
# A sink (standard output redirected into the prefix: a pipe the shim drains) closed by a system
# call, then a local file on number 1: fsync, F_DUPFD and an exec are the local file's (the exec'd
# echo writes into it, not into the object), and the object holds what was written before.
sink_closed='virtual write: 14
close: 0
same number: yes
local write: 12
local read: 12 local bytes
local fsync: 0
local dup: yes'
for how in syscall asm; do
  rm -f "$work/sink-local-$how"
  expect "raw close of a sink ($how)" "$sink_closed" "$ossrun_bin" -- bash -c \
    "'$OSSSHIM_BUILD_ROOT/tests/shim/raw_close' - '$work/sink-local-$how' $how > /oss/bkt/sink-$how"
  [ "$(cat "$work/sink-local-$how")" == "local bytes
exec'd echo" ] && ok || bad "raw close of a sink ($how): the local file holds [$(cat "$work/sink-local-$how")]"
  [ "$(cat "$root/bkt/sink-$how" 2>&1)" == "virtual bytes" ] && ok ||
    bad "raw close of a sink ($how): the object holds [$(cat "$root/bkt/sink-$how" 2>&1)]"
done
# A virtual writer's placeholder follows the bytes written: a raw fstat/statx the shim cannot see
# says the size (exactly up to 64 KiB, then at most 64 KiB behind; exactly after fsync).
expect "raw fstat of a writer" 'open: fstat 0 statx 0 libc 0
write 5: fstat 5 statx 5 libc 5
write 7: fstat 12 statx 12 libc 12
pwrite at 99: fstat 100 statx 100 libc 100
pwrite at 10: fstat 100 statx 100 libc 100
ftruncate 12: fstat 12 statx 12 libc 12
fallocate 4096: fstat 4096 statx 4096 libc 4096
dup write 1: fstat 13 statx 13 libc 13
200 KB written: raw fstat behind by less than 64 KiB: yes
fsync: fstat 200013 statx 200013 libc 200013
stored: 200013' "$ossrun_bin" -- "$OSSSHIM_BUILD_ROOT/tests/shim/writer_fstat" /oss/bkt/grown
expect "static program, path" 'open: error ENOENT' "$ossrun_bin" -- "$static" /oss/bkt/hello.txt
finish
