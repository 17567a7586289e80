#!/bin/bash
# The shim's own runtime: descriptor calls racing close answer EBADF, never crash; programs
# exec'd after a virtual read inherit none of the shim's descriptors.
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

# After a read (TCP connection to the endpoint, curl's socketpairs, cache files), an exec'd child
# sees only the program's descriptors: 0, 1, 2 and the one it opens to list them. The harness's
# own inherited descriptors are closed first, so the count does not depend on who runs the test.
"$ossrun_bin" -- /usr/bin/python3 -c "
import os
os.closerange(3, 1 << 16)
assert open('/oss/bkt/hello.txt').read() == 'hello\n'
os.execv('/bin/sh', ['sh', '-c', 'ls -l /proc/self/fd/'])" > "$work/fds" 2> "$work/fds.err" || bad "exec after read: $(cat "$work/fds.err")"
inherited=$(grep -Eo ' [0-9]+ -> .*' "$work/fds" | grep -Ev '^ [012] -> ' | grep -v "/proc/[0-9]*/fd" || true)
[ -z "$inherited" ] && ok || bad "the exec'd child inherited: $inherited"
grep -q socket "$work/fds" && bad "a socket was inherited: $(cat "$work/fds")" || ok
finish
