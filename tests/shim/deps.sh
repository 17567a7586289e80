#!/bin/bash
# libossshim.so depends on libc alone and maps nothing else into a program that never touches the
# prefix; libossshim-net.so (libcurl, OpenSSL ...) is loaded on the first virtual access, and a
# missing one is a clear error naming the fix.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt" && printf 'hello\n' > "$root/bkt/hello.txt"
start_emulator
lib=$OSSSHIM_BUILD_ROOT/shim/libossshim.so
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
[ "$(sed 's/ld-linux-x86-64.so.2 //' <<<"$needed")" == "libc.so.6 " ] && ok ||
  bad "libossshim.so needs: $needed (want libc.so.6 and the loader only)"
readelf -d "$OSSSHIM_BUILD_ROOT/shim/libossshim-net.so" | grep -q 'NEEDED.*libcurl' && ok ||
  bad "libossshim-net.so does not link libcurl"
# The libraries a process maps, from /proc/self/maps, before and after a virtual access.
probe='
import os, sys
def libs():
    return sorted({l.split()[-1].rsplit("/", 1)[-1] for l in open("/proc/self/maps") if ".so" in l})
before = libs()
print(len(open(sys.argv[1]).read()))
after = libs()
print(" ".join(before)); print(" ".join(after))'
plain=$(/usr/bin/python3 -c "$probe" /etc/hostname | sed -n 2p)
"$ossrun_bin" -- /usr/bin/python3 -c "$probe" /oss/bkt/hello.txt > "$work/maps" 2>&1
[ "$(sed -n 1p "$work/maps")" == 6 ] && ok || bad "virtual read: $(head -3 "$work/maps")"
before=$(sed -n 2p "$work/maps")
after=$(sed -n 3p "$work/maps")
[ "$before" == "$(echo "$plain" libossshim.so | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" ] && ok ||
  bad "pass-through maps more than libossshim.so: plain [$plain] shim [$before]"
[[ " $after " == *" libossshim-net.so "* && " $after " == *" libcurl.so.4"* ]] && ok ||
  bad "after a virtual access libossshim-net.so/libcurl are not loaded: [$after]"
# A net library that cannot be loaded: the virtual access fails with EIO, one line names the fix;
# pass-through still works. (ossrun checks the same before starting the program.)
rc=0
OSSSHIM_NET_LIBRARY=$work/missing/libossshim-net.so LD_PRELOAD=$lib /bin/cat /oss/bkt/hello.txt > "$work/out" 2>&1 ||
  rc=$?
[ "$rc" -ne 0 ] && grep -q "cannot load $work/missing/libossshim-net.so.*install it next to libossshim.so" "$work/out" &&
  grep -q "Input/output error" "$work/out" && ok || bad "missing net library: exit $rc: $(cat "$work/out")"
OSSSHIM_NET_LIBRARY=$work/missing/libossshim-net.so LD_PRELOAD=$lib /bin/cat /etc/hostname > /dev/null && ok ||
  bad "pass-through broken without the net library"
rc=0
OSSSHIM_NET_LIBRARY=$work/missing/libossshim-net.so "$ossrun_bin" -- /bin/true > "$work/out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "libossshim-net.so not found.*install both" "$work/out" && ok ||
  bad "ossrun without the net library: exit $rc: $(cat "$work/out")"
finish
