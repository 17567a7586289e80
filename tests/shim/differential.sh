#!/bin/bash
# Real programs under the shim, compared with the same programs on the directory the emulator
# serves: same stdout, same exit status, same error text (paths aside).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/make_tree.py" "$root" $((3 << 30))
find "$root/bkt" -type d -exec chmod 755 {} + && find "$root/bkt" -type f -exec chmod 644 {} +  # modes as the prefix shows them
start_emulator
local_dir=$root/bkt
mkdir -p "$work/out"

# same NAME 'COMMAND with @ for the bucket directory'
same() {
  local name=$1 cmd=$2
  local lcmd=${cmd//@/$local_dir} vcmd=${cmd//@//oss/bkt}
  local lrc=0 vrc=0
  rm -rf "$work/out/l" "$work/out/v"
  (cd "$work" && bash -c "$lcmd") > "$work/l.out" 2> "$work/l.err" || lrc=$?
  (cd "$work" && "$ossrun_bin" -- bash -c "$vcmd") > "$work/v.out" 2> "$work/v.err" || vrc=$?
  sed -i "s#$local_dir#@#g; s#/oss/bkt#@#g; s#$work/out/[lv]#OUT#g" "$work/l.out" "$work/v.out" "$work/l.err" "$work/v.err"
  grep -v '^ossshim\[' "$work/v.err" > "$work/v.err2" || true
  if [ "$lrc" != "$vrc" ]; then
    bad "$name: exit $vrc under the shim, $lrc locally"; head -5 "$work/v.err"; return
  fi
  if ! cmp -s "$work/l.out" "$work/v.out"; then
    bad "$name: output differs"; diff "$work/l.out" "$work/v.out" | head -10; return
  fi
  if ! cmp -s "$work/l.err" "$work/v.err2"; then
    bad "$name: errors differ"; diff "$work/l.err" "$work/v.err2" | head -10; return
  fi
  ok
}

# Reading bytes
same cat 'cat @/text/lorem.txt @/bin/random-5m.bin | sha256sum'
same stdin-redirect 'sha256sum < @/bin/odd-size.bin; wc -c < @/empty.dat'
same cat-empty 'cat @/empty.dat | wc -c'
same head 'head -c 1000 @/bin/odd-size.bin | od -An -tx1 | tail -3'
same head-lines 'head -n 3 @/text/lorem.txt'
same tail 'tail -c 5000 @/bin/odd-size.bin | sha256sum'
same tail-lines 'tail -n 2 @/text/lorem.txt'
same dd 'dd if=@/bin/random-5m.bin bs=4096 skip=300 count=77 status=none | sha256sum'
same dd-odd 'dd if=@/bin/odd-size.bin bs=1M skip=3 status=none | sha256sum'
same sha256sum-all 'cd @ && find . -path ./sparse -prune -o -type f -print | LC_ALL=C sort | xargs -d "\n" sha256sum'
same md5sum 'md5sum @/bin/random-5m.bin @/names/*'
same cmp-equal 'cmp @/bin/random-5m.bin @/bin/random-5m.bin && echo equal'
same cmp-differ 'cmp @/bin/random-5m.bin @/bin/odd-size.bin'
same wc 'wc @/text/lorem.txt @/data/config.json'
same grep 'grep -c "line 4[0-9]9:" @/text/lorem.txt'
same gzip 'gzip -dc @/data/archive.tar.gz | sha256sum'
same od-sparse 'od -An -c -j $((1<<30)) -N 24 @/sparse/huge.bin'
same dd-sparse 'dd if=@/sparse/huge.bin bs=4096 skip=$(((3<<30)/4096 - 1)) count=1 status=none | sha256sum'

same init-race "$OSSSHIM_BUILD_ROOT/tests/shim/init_race @/bin/random-5m.bin"
same cxx-streams "$OSSSHIM_BUILD_ROOT/tests/shim/cxx_stream @/bin/odd-size.bin @/names"

# freopen onto a virtual path keeps the FILE (stdin, std::cin) and its fd number
freopen_bin=$OSSSHIM_BUILD_ROOT/tests/shim/freopen_read
same freopen "$freopen_bin read @/text/lorem.txt @/bin/odd-size.bin $OSSSHIM_SOURCE_ROOT/tests/shim/lib.sh"
# (exit right after freopen, while the stream is being fed: a race with exit, hence 4 rounds)
same freopen-exit "for i in 1 2 3 4; do $freopen_bin open @/text/hello.txt r || echo exit status \$?; done"
# (an atexit handler reads the rest: exit neither hangs nor loses bytes)
same freopen-atexit "$freopen_bin atexit @/bin/odd-size.bin"
same freopen-missing "$freopen_bin open @/nope.txt r; $freopen_bin open @/nope/x rb"
# Reopening for writing is refused (glibc would write with calls the shim cannot see); the
# object is untouched.
for mode in w a r+ wb; do
  out=$("$ossrun_bin" -- "$freopen_bin" open /oss/bkt/text/hello.txt $mode 2> /dev/null) || true
  [ "$out" == "NULL: Operation not supported; fd 0 open 0, getchar EOF 1" ] && ok || bad "freopen $mode: $out"
done
cmp -s "$root/bkt/text/hello.txt" <("$ossrun_bin" -- cat /oss/bkt/text/hello.txt) && ok || bad "freopen w changed the object"
# The stream reads a socket: seeking fails as on a pipe.
out=$("$ossrun_bin" -- "$freopen_bin" seek /oss/bkt/text/hello.txt 2> /dev/null) || true
[ "$out" == "fseek: Illegal seek" ] && ok || bad "freopen seek: $out"
# A failed read is an error on the stream, never a short end of file.
admin "faults?error_status=500&ops=GetObject&match=bkt/bin/random-5m.bin"
out=$(OSSSHIM_RETRIES=0 OSSSHIM_CACHE_DIR=$work/fault-cache "$ossrun_bin" -- "$freopen_bin" all /oss/bkt/bin/random-5m.bin 2> "$work/err") || true
curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null
[[ "$out" == "read error after "*": Connection reset by peer" ]] && grep -q 'freopen /oss/bkt/bin/random-5m.bin: read failed' "$work/err" && ok ||
  bad "freopen read error: $out $(cat "$work/err")"
out=$("$ossrun_bin" -- "$freopen_bin" all /oss/bkt/bin/random-5m.bin 2>&1) || true
[ "$out" == "end of file after $((5 << 20)) bytes" ] && ok || bad "freopen all: $out"

# Copies out of the prefix (cp uses copy_file_range), archives
same cp-r 'cp -r @/names @/deep @/many OUT && (cd OUT && find . -type f | LC_ALL=C sort | xargs -d "\n" sha256sum)'
same cp-file 'cp @/bin/odd-size.bin OUT && sha256sum OUT/odd-size.bin'
same tar 'cd @ && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - names deep many data | sha256sum'
same tar-list 'tar -tzvf @/data/archive.tar.gz'

# Metadata and listings
same ls 'ls @ @/names'
same ls-lR 'ls -lR --time-style=+ @/names @/deep @/data | awk "{\$2=\"\"; print}"'
same ls-files-l 'ls -l --time-style=+%Y-%m-%dT%H:%M @/bin @/text'
same find 'find @ | LC_ALL=C sort'
same find-type 'find @ -type f -name "*.txt" -size -2k | LC_ALL=C sort'
same find-printf 'find @ -printf "%y %s %p\n" | LC_ALL=C sort'
same du 'du -b @/deep @/names @/many @/data'
same du-all 'du -ab @/many | LC_ALL=C sort | head -20'
same stat 'stat -c "%n %s %F %a" @/bin/odd-size.bin @/empty.dat @/deep @/names/*'
same stat-missing 'stat @/nope'
same test-ops 'for p in @/text @/text/hello.txt @/nope; do [ -d "$p" ] && echo "$p dir"; [ -f "$p" ] && echo "$p file"; [ -e "$p" ] || echo "$p missing"; [ -r "$p" ] && echo "$p readable"; done'
same test-writable 'for p in @/text @/text/hello.txt; do [ -w "$p" ] && echo "$p writable"; done'
same realpath 'realpath @/deep/a/b/../b/./c @/text//hello.txt'
same readlink 'readlink -f @/deep/a/../a/b; readlink @/text/hello.txt; echo $?'

# Errors: the same message and status as the local file system gives
same cat-missing 'cat @/nope.txt'
same cat-dir 'cat @/text'
same ls-missing 'ls @/nope'
same open-notdir 'cat @/text/hello.txt/x'
same head-dir 'head -c1 @/deep/a'
same cd-file 'cd @/text/hello.txt'

# A relative walk from inside the prefix (a virtual cwd, inherited by exec'd programs)
same cwd 'cd @/deep/a/b && pwd | sed "s#.*/bkt#@#" && ls && cat c/d/e/f/g/h/i/j/leaf.txt && cd .. && ls -d b && du -b . | tail -1'

# (Writes into the prefix: tests/shim/write.sh.)

# Sparse reads of the 3 GiB object fetch little.
# A random 4 KiB read fetches about a chunk, not the object; the next process finds it cached.
sparse_read() { "$ossrun_bin" -- dd if=/oss/bkt/sparse/huge.bin bs=4096 skip=$(((1 << 30) / 4096 + 1)) count=1 status=none of=/dev/null; }
OSSSHIM_CACHE_DIR=$work/sparse-cache
admin reset
sparse_read
got=$(origin_bytes)
if [ "$got" -gt 0 ] && [ "$got" -le $((8 << 20)) ]; then ok; else bad "sparse read of 4 KiB fetched $got bytes"; fi
admin reset
sparse_read
got=$(origin_bytes)
if [ "$got" -eq 0 ]; then ok; else bad "a second process reading the same 4 KiB fetched $got bytes (expected a cache hit)"; fi

finish
