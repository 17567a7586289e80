#!/bin/bash
# Node.js (Debian's /usr/bin/node: libuv closes with syscall(SYS_close), stats with a raw statx,
# copies with copy_file_range) under the shim: node_fs.js exercises the fs API in its sync,
# callback, promise and stream forms on the prefix and on a local directory. The reports must be
# equal line for line, every object the run stored must equal the local file byte for byte, and
# files copied out of the prefix must equal the local run's copies.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v node > /dev/null || { echo "FAIL: node is not installed (tools/install-deps.sh installs nodejs)"; exit 1; }
umask 022
local_dir=$work/local
mkdir -p "$root/bkt/in/sub/a/b" "$local_dir/in/sub/a/b" "$work/copies-local" "$work/copies-virtual"
head -c 9490 /dev/urandom > "$root/bkt/in/small.txt"
head -c $((3 << 20 | 12345)) /dev/urandom > "$root/bkt/in/big.bin"
printf '{"name": "ossshim", "list": [1, 2, 3], "nested": {"ok": true}}\n' > "$root/bkt/in/data.json"
printf 'deep\n' > "$root/bkt/in/sub/a/b/deep.txt"
printf 'top of sub\n' > "$root/bkt/in/sub/note.txt"
cp -r "$root/bkt/in/." "$local_dir/in/"
head -c 777777 /dev/urandom > "$work/source.bin"
find "$root/bkt" "$local_dir" -type d -exec chmod 755 {} + && find "$root/bkt" "$local_dir" -type f -exec chmod 644 {} +
start_emulator
marker=.ossemu-marker
script=$OSSSHIM_SOURCE_ROOT/tests/shim/node_fs.js

node "$script" "$local_dir" "$work/source.bin" "$work/copies-local" > "$work/local.out" 2> "$work/local.err" ||
  bad "the local run failed: $(head -5 "$work/local.err")"
"$ossrun_bin" -- node "$script" /oss/bkt "$work/source.bin" "$work/copies-virtual" > "$work/virtual.out" 2> "$work/virtual.err" ||
  bad "the run under the shim failed: $(grep -v '^ossshim\[' "$work/virtual.err" | head -5)"
# Node's stdin and stdout redirected from and into the prefix by a shell under the shim.
pipe_js='process.stdin.pipe(process.stdout)'
node -e "$pipe_js" < "$local_dir/in/big.bin" > "$local_dir/out/stdout.bin" || bad "the local stdin/stdout copy failed"
"$ossrun_bin" -- bash -c "node -e '$pipe_js' < /oss/bkt/in/big.bin > /oss/bkt/out/stdout.bin" 2>> "$work/virtual.err" ||
  bad "node with stdin and stdout in the prefix failed: $(grep -v '^ossshim\[' "$work/virtual.err" | tail -3)"
checks=$(wc -l < "$work/local.out")
[ "$checks" -ge 60 ] && ok || bad "the local run reported $checks checks, want at least 60: $(tail -3 "$work/local.out")"
grep -q '^readFile callback: 9490 ' "$work/local.out" && ok || bad "the local report lacks the callback readFile of 9490 bytes"
if diff "$work/local.out" "$work/virtual.out" > "$work/report.diff"; then ok; else
  bad "the reports differ (< local, > shim): $(head -20 "$work/report.diff")"
fi
# Every stored object, byte for byte (the emulator's directory markers aside).
if diff -r -x "$marker" "$local_dir" "$root/bkt" > "$work/tree.diff" 2>&1; then ok; else
  bad "the stored objects differ from the local files: $(head -10 "$work/tree.diff")"
fi
if diff -r "$work/copies-local" "$work/copies-virtual" > "$work/copies.diff" 2>&1; then ok; else
  bad "files copied out of the prefix differ: $(head -5 "$work/copies.diff")"
fi
[ "$(stat -c %s "$root/bkt/out/big20.bin" 2>&1)" == $((20 << 20)) ] && ok ||
  bad "out/big20.bin holds $(stat -c %s "$root/bkt/out/big20.bin" 2>&1) bytes, want $((20 << 20))"
# Closes the shim would have missed are seen: no stale-entry warning, no other warning.
if grep -E '^ossshim\[[0-9]+\] (warn|error):' "$work/virtual.err" > "$work/warn"; then
  bad "warnings under the shim: $(head -5 "$work/warn")"
else ok; fi
finish
