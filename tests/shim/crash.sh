#!/bin/bash
# A crash inside the shim prints a backtrace naming it, then the program's own handler runs
# (Python's faulthandler here); a crash elsewhere is left entirely to the program.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt" && printf 'hello\n' > "$root/bkt/hello.txt"
start_emulator
rc=0
# ctypes calls the interposed stat with an invalid buffer: the shim itself faults.
"$ossrun_bin" -- /usr/bin/python3 -c "
import ctypes, faulthandler; faulthandler.enable()
ctypes.CDLL(None).stat(b'/oss/bkt/hello.txt', ctypes.c_void_p(8))" > "$work/out" 2>&1 || rc=$?
[ "$rc" -eq 139 ] && ok || bad "crash in shim: exit $rc, want 139 (SIGSEGV)"
[ "$(grep -c 'inside libossshim.so' "$work/out")" -eq 1 ] && ok || bad "no single shim report: $(head -3 "$work/out")"
grep -q 'stat.*libossshim.so.*<-- ossshim' "$work/out" && ok || bad "backtrace does not name the shim's frames"
grep -q 'Fatal Python error: Segmentation fault' "$work/out" && ok || bad "the program's handler was not chained"
rc=0
"$ossrun_bin" -- /usr/bin/python3 -c "import ctypes; ctypes.string_at(8)" > "$work/out2" 2>&1 || rc=$?
[ "$rc" -eq 139 ] && ok || bad "crash outside shim: exit $rc"
grep -q ossshim "$work/out2" && bad "crash outside the shim was reported as the shim's" || ok
finish
