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
# The program's handler runs with its sa_mask; faults it repairs leave the reporter armed for a
# later fault inside the shim (reported once, then the handler runs); SA_RESETHAND is honoured.
chain_bin=$OSSSHIM_BUILD_ROOT/tests/shim/crash_chain
rc=0
"$ossrun_bin" -- "$chain_bin" benign /oss/bkt/hello.txt > "$work/out3" 2>&1 || rc=$?
[ "$rc" -eq 42 ] && ok || bad "benign faults then a shim fault: exit $rc, want 42: $(head -5 "$work/out3")"
grep -q 'crash_chain: 3 benign faults handled, mask in force in 3' "$work/out3" && ok || bad "benign: $(head -3 "$work/out3")"
[ "$(grep -c 'inside libossshim.so' "$work/out3")" -eq 1 ] && ok || bad "shim fault after benign ones not reported once"
grep -q "the program's handler ran after the shim's fault" "$work/out3" && ok || bad "handler not chained after the report"
rc=0
"$ossrun_bin" -- "$chain_bin" resethand > "$work/out4" 2>&1 || rc=$?
[ "$rc" -eq 139 ] && grep -q 'first fault handled' "$work/out4" && ok || bad "SA_RESETHAND: exit $rc: $(cat "$work/out4")"
grep -q ossshim "$work/out4" && bad "faults outside the shim were reported" || ok
# A JVM takes SEGVs on purpose (implicit null checks, safepoint polls) and handles them itself.
if command -v java > /dev/null; then
  rc=0
  timeout 120 "$ossrun_bin" -- java -version > "$work/java" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] && ! grep -q 'inside libossshim' "$work/java" && ok || bad "java -version: exit $rc: $(head -3 "$work/java")"
fi
finish
