#!/bin/bash
# read_only: reads work; every write, namespace change and attribute change under the prefix
# fails with EROFS ("Read-only file system", as on a read-only mount), with one warn line per
# process naming the setting; nothing is stored, changed or deleted at the origin.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt/models/m"
printf 'weights\n' > "$root/bkt/models/m/a.bin"
printf 'config\n' > "$root/bkt/models/m/config.json"
start_emulator
export OSSSHIM_READ_ONLY=true
snapshot() { (cd "$root" && find . -printf '%p %s %T@\n' | sort); }
before=$(snapshot)
m=/oss/bkt/models/m
strip_log() { grep -v '^ossshim\[' "$1" || true; }

# Reads are unaffected.
got=$("$ossrun_bin" -- cat $m/a.bin $m/config.json) && [ "$got" == $'weights\nconfig' ] && ok || bad "read under read_only: $got"
got=$("$ossrun_bin" -- ls $m | tr '\n' ' ') && [ "$got" == "a.bin config.json " ] && ok || bad "ls under read_only: $got"

# expect_erofs NAME COMMAND...: fails, its own message says "Read-only file system", one warn line.
expect_erofs() {
  local name=$1
  shift
  if "$ossrun_bin" -- "$@" > "$work/out" 2> "$work/err"; then bad "$name: succeeded under read_only"; return; fi
  strip_log "$work/err" | grep -q "Read-only file system" && ok || bad "$name: not EROFS: $(cat "$work/err")"
  local warns
  warns=$(grep -c '^ossshim\[[0-9]*\] warn: .*read_only is set (OSSSHIM_READ_ONLY)' "$work/err" || true)
  [ "$warns" -eq 1 ] && ok || bad "$name: $warns warn lines naming read_only (want 1): $(cat "$work/err")"
}
expect_erofs "redirect into the prefix" sh -c "echo x > $m/new.txt"
expect_erofs "overwrite" sh -c "echo x > $m/a.bin"
expect_erofs "append" sh -c "echo x >> $m/a.bin"
expect_erofs "cp into" cp /etc/hostname $m/
expect_erofs "touch a new file" touch $m/new
expect_erofs "truncate" truncate -s 0 $m/a.bin
expect_erofs "rm" rm $m/a.bin
expect_erofs "rm -r" rm -rf $m
expect_erofs "mv" mv $m/a.bin $m/b.bin
expect_erofs "mkdir" mkdir $m/sub
expect_erofs "ln -s" ln -s a.bin $m/link
expect_erofs "chmod" chmod 600 $m/a.bin
expect_erofs "touch an existing file" touch $m/a.bin
expect_erofs "mktemp" mktemp $m/tmp.XXXXXX
expect_erofs "python open(w)" /usr/bin/python3 -c "open('$m/p.txt', 'w')"
# access(W_OK) is a probe: EROFS, not logged.
got=$("$ossrun_bin" -- /usr/bin/python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print(libc.access(b'$m/a.bin', os.W_OK), os.strerror(ctypes.get_errno()), os.access('$m/a.bin', os.R_OK))
" 2>&1) && [ "$got" == "-1 Read-only file system True" ] && ok || bad "access(W_OK): $got"
got=$("$ossrun_bin" -- /usr/bin/python3 -c "
import errno
try:
    open('$m/a.bin', 'r+b')
except OSError as e:
    print(errno.errorcode[e.errno])
") && [ "$got" == EROFS ] && ok || bad "open r+b: $got"

after=$(snapshot)
[ "$before" == "$after" ] && ok || bad "the origin changed under read_only: $(diff <(echo "$before") <(echo "$after") | head)"
# Without it, the same write works (the refusals above came from read_only).
OSSSHIM_READ_ONLY=false "$ossrun_bin" -- sh -c "echo x > $m/new.txt" && [ "$(cat "$root/bkt/models/m/new.txt")" == x ] && ok ||
  bad "write without read_only"
finish
