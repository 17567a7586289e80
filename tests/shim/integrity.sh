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
size=5300000  # five 1 MiB chunks and a tail
head -c $size /dev/urandom > "$work/good"
good_sha=$(sha256sum < "$work/good" | cut -d' ' -f1)
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
import errno, hashlib, mmap, sys
how, path = sys.argv[1], sys.argv[2]
try:
    with open(path, "rb", buffering=0) as f:
        if how == "whole":
            data = f.read()
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
  unset OSSSHIM_SHARED_CACHE
  export OSSSHIM_CACHE_DIR=$(mktemp -d /dev/shm/ossshim-integrity-XXXXXX) OSSSHIM_CACHE_SIZE=64m
  case $1 in
    private) export OSSSHIM_SHARED_CACHE=0 ;;
    refused) chmod 0777 "$OSSSHIM_CACHE_DIR" ;;  # not 0700: refused, read past
    noroom) export OSSSHIM_CACHE_SIZE=1m ;;      # a whole read needs 6 chunks at once
    evicting) export OSSSHIM_CACHE_SIZE=2m ;;    # sequential reads evict behind themselves
  esac
  cache_dirs+=("$OSSSHIM_CACHE_DIR")
}
cache_dirs=()
trap 'rm -rf "${cache_dirs[@]}"; cleanup' EXIT

n=0
for mode in shared private refused noroom evicting; do
  for reader in "${readers[@]}"; do
    n=$((n + 1))
    # Server-side damage: stored through the emulator (which keeps its ETag and CRC64), then one
    # byte flipped on its disk with the modification time put back, so the ETag stays the same.
    obj=damaged-$n
    set_mode "$mode"
    "$ossrun_bin" -- cp "$work/good" "/oss/bkt/$obj"
    stamp=$(stat -c %y "$root/bkt/$obj")
    printf '\xff' | dd of="$root/bkt/$obj" bs=1 seek=$((size - 1000 - n)) conv=notrunc status=none
    cmp -s "$work/good" "$root/bkt/$obj" && printf '\x00' | dd of="$root/bkt/$obj" bs=1 seek=$((size - 1000 - n)) conv=notrunc status=none
    touch -d "$stamp" "$root/bkt/$obj"
    [ "$(stat -c %y "$root/bkt/$obj")" = "$stamp" ] || { bad "setup: mtime not restored"; continue; }
    expect_eio "$mode" damage "$reader" "/oss/bkt/$obj"
    # Another process afterwards: EIO again (with the shared cache before serving a byte).
    expect_eio "$mode" damage-again "$reader" "/oss/bkt/$obj"

    # A wrong CRC64 header on every GET of a good object.
    obj=wrongcrc-$n
    set_mode "$mode"
    "$ossrun_bin" -- cp "$work/good" "/oss/bkt/$obj"
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
echo "silent corruptions: $silent in $((n * 3)) damaged reads"
finish
