#!/bin/bash
# The shared cache under real programs: tensor-parallel ranks (Python, mmap) fetch each byte once
# and share the same physical pages; ossrun warm/stat/cache clear; cache_persist=false.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
model=$root/models/m
python3 "$OSSSHIM_SOURCE_ROOT/examples/make_model.py" "$model" --size 48m --shards 3 > /dev/null
start_emulator
export OSSSHIM_CACHE_SIZE=256m
model_bytes=$(du -cb "$model"/*.safetensors | tail -1 | cut -f1)
loader=$OSSSHIM_SOURCE_ROOT/examples/load_safetensors.py

# 4 ranks at once, each mapping every shard: one fetch per byte, checksums as on the local copy.
admin reset
ranks=()
for r in 0 1 2 3; do
  "$ossrun_bin" -- /usr/bin/python3 "$loader" /oss/models/m --rank $r --ranks 4 > "$work/rank$r" &
  ranks+=($!)
done
wait "${ranks[@]}"  # (a bare `wait` would wait for the emulator too)
for r in 0 1 2 3; do
  want=$(/usr/bin/python3 "$loader" "$model" --rank $r --ranks 4 | grep -o 'sha256 .*')
  grep -q "$want" "$work/rank$r" && ok || bad "rank $r: $(cat "$work/rank$r") != $want"
done
got=$(origin_bytes)
[ "$got" -le $((model_bytes + (model_bytes / 100))) ] && ok || bad "4 ranks fetched $got bytes for a $model_bytes-byte model"

# Zero copy: a mapping of a virtual file is the cache's shared file, not a private copy.
maps=$("$ossrun_bin" -- /usr/bin/python3 -c '
import mmap
f = open("/oss/models/m/model-00001-of-00003.safetensors", "rb")
m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
print(open("/proc/self/maps").read())')
grep -qE " r--s .*$OSSSHIM_CACHE_DIR/[0-9a-f]+/o-[0-9a-f]+-[0-9a-f]+$" <<<"$maps" && ok || bad "no shared mapping of the cache file: $maps"

# A warm relaunch fetches nothing.
admin reset
"$ossrun_bin" -- /usr/bin/python3 "$loader" /oss/models/m --rank 0 --ranks 1 > /dev/null
got=$(origin_bytes)
[ "$got" -lt 65536 ] && ok || bad "warm relaunch fetched $got bytes (listings only expected)"

# stat: amplification 1, whole objects verified by CRC64, every shard listed.
out=$("$ossrun_bin" stat --objects)
grep -q "amplification 1.000" <<<"$out" && grep -q "3 ok, 0 mismatched" <<<"$out" &&
  [ "$(grep -c 'crc-ok /oss/models/m/model-' <<<"$out")" -eq 3 ] && ok || bad "ossrun stat: $out"

# cache clear: refused while a process uses the cache (naming it), done once it has gone.
mkfifo "$work/user.in" "$work/user.out"
"$ossrun_bin" -- /usr/bin/python3 -c '
import sys
open("/oss/models/m/config.json").read()
print("attached", flush=True)
sys.stdin.read()' < "$work/user.in" > "$work/user.out" &
user=$!
exec {user_w}> "$work/user.in"
read -r _ < "$work/user.out"  # it has attached to the cache
out=$("$ossrun_bin" cache clear 2>&1) && bad "cache clear while in use: $out" ||
  { grep -q "in use by pid $user (python3)" <<<"$out" && ok || bad "cache clear message: $out"; }
exec {user_w}>&-
wait $user
"$ossrun_bin" cache clear > /dev/null && ok || bad "cache clear after the user left failed"
[ -z "$(find "$OSSSHIM_CACHE_DIR" -name 'o-*')" ] && ok || bad "cache clear left data files"

# warm: fetches a whole prefix once; the readers after it fetch nothing.
admin reset
out=$("$ossrun_bin" warm /oss/models/m 2>&1) && ok || bad "warm failed: $out"
grep -qE "^warm: [0-9]+ files" <<<"$out" && ok || bad "warm summary: $out"
got=$(origin_bytes)
admin reset
"$ossrun_bin" -- cat /oss/models/m/model-00002-of-00003.safetensors | cmp - "$model/model-00002-of-00003.safetensors" && ok ||
  bad "cat after warm differs"
[ "$(origin_bytes)" -eq 0 ] && [ "$got" -ge "$model_bytes" ] && ok || bad "warm fetched $got, then cat fetched $(origin_bytes)"
out=$("$ossrun_bin" warm /oss/models/nope 2>&1) && bad "warm of a missing path succeeded" ||
  { grep -q "models/nope.*ENOENT" <<<"$out" && ok || bad "warm error: $out"; }

# A mapping larger than the budget can pin: a private copy, and one warning with the numbers and
# the fix (raise the cache size above what it would take).
head -c $((80 << 20)) /dev/urandom > "$root/models/big.bin"
small_cache=$(mktemp -d /dev/shm/ossshim-test-pin-XXXXXX)
out=$(OSSSHIM_CACHE_DIR=$small_cache OSSSHIM_CACHE_SIZE=64m "$ossrun_bin" -- /usr/bin/python3 -c '
import hashlib, mmap, sys
f = open(sys.argv[1], "rb")
print(hashlib.sha256(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)).hexdigest())
f2 = open(sys.argv[1], "rb")
mmap.mmap(f2.fileno(), 0, access=mmap.ACCESS_READ)' /oss/models/big.bin 2>&1)
grep -q "^$(sha256sum < "$root/models/big.bin" | cut -d' ' -f1)$" <<<"$out" && ok || bad "unpinnable mmap: $out"
[ "$(grep -c 'cannot be pinned' <<<"$out")" -eq 1 ] &&
  grep -q "warn: mmap /oss/models/big.bin: 80.0 MiB cannot be pinned in the shared cache (budget 64.0 MiB.*raise OSSSHIM_CACHE_SIZE above" <<<"$out" &&
  ok || bad "unpinnable mmap warning: $out"
rm -rf "$root/models/big.bin" "$small_cache"

# cache_persist=false: the last process to leave empties the cache.
OSSSHIM_CACHE_PERSIST=false "$ossrun_bin" -- cat /oss/models/m/config.json > /dev/null
[ -z "$(find "$OSSSHIM_CACHE_DIR" -name 'o-*' -o -name control)" ] && ok || bad "cache_persist=false left $(find "$OSSSHIM_CACHE_DIR")"

finish
