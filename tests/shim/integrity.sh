#!/bin/bash
# Whole-object CRC64 in every cache mode. An object damaged on the server under an unchanged ETag
# and CRC64 header, and a server that reports a wrong CRC64 (fault wrong_crc), are never served
# whole with success: the read that completes the object fails with EIO, and so does every later
# read of that version in the process (and, with the shared cache, on the node). Modes: the
# shared cache; the private cache; a refused cache directory (reads past it); a shared cache too
# small for one read (chunks come partly through it, partly past it); a shared cache smaller than
# the object (chunks evicted before the object is whole in it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt"
start_emulator
# 5 MB objects in 1 MiB chunks; for the modes that need a cache smaller than the object (the
# cache's minimum is 64 MiB and 8 chunks), 72 MiB objects in 8 MiB chunks.
head -c 5300000 /dev/urandom > "$work/good.small"
head -c $((72 << 20)) /dev/urandom > "$work/good.large"
silent=0  # reads that returned the object's full length with success but wrong bytes

# Readers, each printing "ok <sha256>" on success or "err <errno name>" on failure.
readers=(cat whole sequential mmap)
read_with() {  # read_with READER PATH
  case $1 in
    cat) if "$ossrun_bin" -- cat "$2" > "$work/cat.out" 2> "$work/cat.err"; then
           echo "ok $(sha256sum < "$work/cat.out" | cut -d' ' -f1)"
         else
           echo "err $(cat "$work/cat.err")"
         fi ;;
    *) "$ossrun_bin" -- /usr/bin/python3 - "$1" "$2" <<'PY'
import errno, hashlib, mmap, os, sys
how, path = sys.argv[1], sys.argv[2]
try:
    with open(path, "rb", buffering=0) as f:
        if how == "whole":  # one read(2) of the whole object
            data = os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0)
        elif how == "sequential":
            parts = []
            while True:
                b = f.read(65536)
                if not b:
                    break
                parts.append(b)
            data = b"".join(parts)
        else:
            data = bytes(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    print("ok", hashlib.sha256(data).hexdigest())
except OSError as e:
    # After the failure, the same process reads the start again: it must fail too.
    try:
        with open(path, "rb", buffering=0) as f:
            f.read(100)
        print("err", errno.errorcode.get(e.errno), "then-ok")
    except OSError as again:
        print("err", errno.errorcode.get(e.errno), "then", errno.errorcode.get(again.errno))
PY
    ;;
  esac
}

# expect_eio MODE WHAT READER PATH: the reader must fail with EIO, never succeed with other bytes.
expect_eio() {
  local got
  got=$(read_with "$3" "$4" 2>/dev/null)
  case $got in
    "ok $good_sha") bad "$1 $2 $3: served the good bytes although the server's CRC64 disagrees" ;;
    ok*) silent=$((silent + 1)); bad "$1 $2 $3: SILENT CORRUPTION: success with wrong bytes" ;;
    "err EIO then EIO" | err*Input/output*) ok ;;
    *) bad "$1 $2 $3: expected EIO, got: $got" ;;
  esac
}

# set_mode MODE: a fresh cache directory per mode (a damaged version stays damaged in a cache).
set_mode() {
  release_cache
  unset OSSSHIM_SHARED_CACHE
  export OSSSHIM_CACHE_DIR=$(mktemp -d /dev/shm/ossshim-integrity-XXXXXX) OSSSHIM_CACHE_SIZE=64m
  export OSSSHIM_CHUNK_SIZE=1m
  good=$work/good.small
  case $1 in
    private) export OSSSHIM_SHARED_CACHE=0 ;;
    refused) chmod 0777 "$OSSSHIM_CACHE_DIR" ;;  # not 0700: refused, read past
    # 64 MiB = 8 chunks. noroom: another process maps (pins) 6 of them, so most chunks of a
    # read come past the cache; evicting: a sequential reader evicts the first chunks before the
    # last arrive.
    noroom | evicting) export OSSSHIM_CHUNK_SIZE=8m good=$work/good.large ;;
  esac
  [ "$1" = noroom ] && hold_cache
  size=$(stat -c %s "$good")
  good_sha=$(sha256sum < "$good" | cut -d' ' -f1)
  cache_dirs+=("$OSSSHIM_CACHE_DIR")
}
cache_dirs=()
head -c $((48 << 20)) /dev/urandom > "$root/bkt/holder"
holder=
# hold_cache: a process maps /oss/bkt/holder (6 chunks of 8 MiB, the most a pin may take, as it
# leaves two chunks of room; pinned while mapped) until
# release_cache.
hold_cache() {
  rm -f "$work/hold.in" "$work/hold.out"
  mkfifo "$work/hold.in" "$work/hold.out"
  "$ossrun_bin" -- /usr/bin/python3 -c '
import mmap, sys
f = open("/oss/bkt/holder", "rb")
m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
print("mapped", flush=True)
sys.stdin.read()' < "$work/hold.in" > "$work/hold.out" &
  holder=$!
  exec {hold_w}> "$work/hold.in"
  read -r _ < "$work/hold.out"
}
release_cache() {
  [ -n "$holder" ] || return 0
  exec {hold_w}>&-
  wait "$holder" || bad "the process holding the cache exited $?"
  holder=
}
# used_as_meant MODE READER: the mode did what it is named for (a test of the private cache that
# silently used the shared one, or the reverse, would prove nothing).
used_as_meant() {
  local st control
  control=$(find "$OSSSHIM_CACHE_DIR" -name control | head -1)
  case $1 in
    private | refused) [ -z "$control" ] && ok || bad "$1 $2: a shared cache was used: $control" ;;
    *) st=$("$ossrun_bin" stat 2>&1) || { bad "$1 $2: no shared cache: $st"; return; }
       case $1 in
         noroom) [ "$2" != whole ] && { ok; return; }
                 grep -q " 0 B read past the cache" <<<"$st" && bad "$1 $2: nothing went past the cache: $st" || ok ;;
         evicting) grep -q "evicted 0 B" <<<"$st" && bad "$1 $2: nothing was evicted: $st" || ok ;;
         *) ok ;;
       esac ;;
  esac
}
trap 'rm -rf "${cache_dirs[@]}"; cleanup' EXIT

n=0
for mode in shared private refused noroom evicting; do
  for reader in "${readers[@]}"; do
    # noroom needs one read of the whole object; evicting, a reader that goes in order.
    [ "$mode" = noroom ] && [ "$reader" != whole ] && [ "$reader" != mmap ] && continue
    [ "$mode" = evicting ] && [ "$reader" != cat ] && [ "$reader" != sequential ] && continue
    n=$((n + 1))
    # Server-side damage: stored through the emulator (which keeps its ETag and CRC64), then one
    # byte flipped on its disk with the modification time put back, so the ETag stays the same.
    obj=damaged-$n
    set_mode "$mode"
    "$ossrun_bin" -- cp "$good" "/oss/bkt/$obj"
    stamp=$(stat -c %y "$root/bkt/$obj")
    printf '\xff' | dd of="$root/bkt/$obj" bs=1 seek=$((size - 1000 - n)) conv=notrunc status=none
    cmp -s "$good" "$root/bkt/$obj" && printf '\x00' | dd of="$root/bkt/$obj" bs=1 seek=$((size - 1000 - n)) conv=notrunc status=none
    touch -d "$stamp" "$root/bkt/$obj"
    [ "$(stat -c %y "$root/bkt/$obj")" = "$stamp" ] || { bad "setup: mtime not restored"; continue; }
    expect_eio "$mode" damage "$reader" "/oss/bkt/$obj"
    used_as_meant "$mode" "$reader"
    # Another process afterwards: EIO again (with the shared cache before serving a byte).
    expect_eio "$mode" damage-again "$reader" "/oss/bkt/$obj"

    # A wrong CRC64 header on every GET of a good object.
    obj=wrongcrc-$n
    set_mode "$mode"
    "$ossrun_bin" -- cp "$good" "/oss/bkt/$obj"
    admin "faults?wrong_crc=1&ops=GetObject"
    expect_eio "$mode" wrong_crc "$reader" "/oss/bkt/$obj"
    curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null
    # Without the fault the same version reads back whole: it was never damaged. (A shared
    # cache keeps its verdict on the version until the object is rewritten or the cache cleared.)
    if [ "$mode" != shared ] && [ "$mode" != evicting ] && [ "$mode" != noroom ]; then
      got=$(read_with "$reader" "/oss/bkt/$obj" 2>/dev/null)
      [ "$got" = "ok $good_sha" ] && ok || bad "$mode wrong_crc $reader: after the fault: $got"
    fi
  done
done
release_cache
echo "silent corruptions: $silent in $((n * 3)) damaged reads"
"$ossrun_bin" stat > /dev/null 2>&1 || true
finish
