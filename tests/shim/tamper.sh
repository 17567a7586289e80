#!/bin/bash
# The shared cache's files tampered with, at rest and while processes read: data files deleted,
# truncated and replaced; the control file deleted, truncated and overwritten with garbage. Every
# read returns the object's bytes or a clean errno; the silent corruptions are counted (must be 0).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt"
for i in 1 2 3; do head -c $((3000000 * i + 12345)) /dev/urandom > "$root/bkt/f$i"; done
start_emulator
declare -A want
for i in 1 2 3; do want[$i]=$(sha256sum < "$root/bkt/f$i" | cut -d' ' -f1); done
ns_dir() { dirname "$(find "$OSSSHIM_CACHE_DIR" -name control | head -1)"; }
silent=0 reads=0

# check WHAT: every file read back through the cache by cat and by Python's mmap.
check() {
  local i got
  for i in 1 2 3; do
    reads=$((reads + 1))
    if got=$("$ossrun_bin" -- cat "/oss/bkt/f$i" 2> "$work/err" | sha256sum | cut -d' ' -f1) &&
      [ "$got" = "${want[$i]}" ]; then ok; else
      silent=$((silent + 1)); bad "$1: cat f$i: $got $(head -2 "$work/err")"; fi
  done
  reads=$((reads + 1))
  got=$("$ossrun_bin" -- /usr/bin/python3 -c '
import hashlib, mmap, sys
f = open(sys.argv[1], "rb")
print(hashlib.sha256(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)).hexdigest())' /oss/bkt/f3 2> "$work/err") || true
  [ "$got" = "${want[3]}" ] && ok || { silent=$((silent + 1)); bad "$1: mmap f3: $got $(head -2 "$work/err")"; }
}

check cold
d=$(ns_dir)
[ -n "$(ls "$d"/o-* 2>/dev/null)" ] && ok || bad "no data files in $d"

# --- Overwritten in place at rest: the file is whole and still the table's, only `cache verify`
# (the CRC64 of every chunk against the one its fetcher stored) sees it. Chunks are 1 MiB.
"$ossrun_bin" cache verify > "$work/verify.out" 2>&1 && grep -q " 0 mismatches" "$work/verify.out" && ok ||
  bad "verify of an intact cache: $(cat "$work/verify.out")"
f3_data=$(find "$d" -name 'o-*' -size "$(stat -c %s "$root/bkt/f3")c" | head -1)
[ -n "$f3_data" ] && ok || bad "no data file of f3's size in $d"
for at in 1000 $((2 * 1048576 + 77)) $((8 * 1048576 + 5)); do  # chunks 0, 2 and 8 of f3
  printf 'XXXXXXXX' | dd of="$f3_data" bs=1 seek=$at conv=notrunc status=none
done
rc=0; "$ossrun_bin" cache verify > "$work/verify.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q " 3 mismatches dropped: " "$work/verify.out" &&
  grep -q "f3 chunk 0, /oss/bkt/f3 chunk 2, /oss/bkt/f3 chunk 8$" "$work/verify.out" && ok ||
  bad "verify of 3 overwritten chunks: exit $rc: $(cat "$work/verify.out")"
before=$(origin_bytes)
got=$("$ossrun_bin" -- cat /oss/bkt/f3 | sha256sum | cut -d' ' -f1)
[ "$got" = "${want[3]}" ] && ok || { silent=$((silent + 1)); bad "read after verify: wrong bytes"; }
reads=$((reads + 1))
fetched=$(($(origin_bytes) - before))
dropped_bytes=$((2 * 1048576 + $(stat -c %s "$root/bkt/f3") - 8 * 1048576))  # chunk 8 is f3's last, short one
[ "$fetched" -eq "$dropped_bytes" ] && ok || bad "read after verify fetched $fetched bytes, not the 3 dropped chunks' $dropped_bytes"
"$ossrun_bin" cache verify > "$work/verify.out" 2>&1 && grep -q " 0 mismatches" "$work/verify.out" && ok ||
  bad "verify after the refetch: $(cat "$work/verify.out")"
echo "verify: $(cat "$work/verify.out")"

# --- At rest ---
rm -f "$d"/o-*;                                        check "data files deleted"
for f in "$d"/o-*; do : > "$f"; done;                  check "data files truncated to 0"
for f in "$d"/o-*; do truncate -s 1000000 "$f"; done;  check "data files truncated to 1 MB"
for f in "$d"/o-*; do cp "$f" "$f.x"; mv "$f.x" "$f"; done; check "data files replaced by copies"
rm -f "$d/control";                                    check "control deleted"
truncate -s 100 "$d/control";                          check "control truncated"
dd if=/dev/urandom of="$d/control" bs=64 count=1 conv=notrunc status=none; check "control header overwritten"
size=$(stat -c %s "$d/control")
dd if=/dev/urandom of="$d/control" bs=4096 seek=$((size / 8192)) count=16 conv=notrunc status=none
check "control table overwritten with random bytes"

# --- While reading: a reader verifies 40 reads of each file while the files are tampered with. ---
reader() {
  "$ossrun_bin" -- /usr/bin/python3 - "$@" <<'PY'
import hashlib, os, sys
want = dict(a.split("=") for a in sys.argv[1:])
bad = errors = 0
print("started", flush=True)
for n in range(40):
    for name, sha in want.items():
        try:
            with open("/oss/bkt/" + name, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            if got != sha:
                bad += 1
        except OSError as e:
            errors += 1
print(f"reads {40 * len(want)} wrong {bad} errors {errors}", flush=True)
PY
}
tamper_while_reading() {  # WHAT COMMAND...
  local what=$1; shift
  mkfifo "$work/fifo.$what"
  reader f1="${want[1]}" f2="${want[2]}" f3="${want[3]}" > "$work/fifo.$what" 2> "$work/reader.err" &
  local pid=$! line=
  exec 7< "$work/fifo.$what"
  read -r line <&7  # "started": the reader has attached
  local n=0
  while kill -0 "$pid" 2>/dev/null && [ $n -lt 200 ]; do "$@"; n=$((n + 1)); done
  read -r line <&7 || true
  exec 7<&-
  wait "$pid" && local rc=0 || local rc=$?
  reads=$((reads + 120))
  case $line in
    "reads 120 wrong 0 "*) [ $rc -eq 0 ] && ok || bad "$what: reader exited $rc: $(tail -2 "$work/reader.err")" ;;
    "reads 120 wrong "*) silent=$((silent + $(cut -d' ' -f4 <<<"$line"))); bad "$what: $line" ;;
    *) bad "$what: reader exited $rc without a verdict: '$line' $(tail -2 "$work/reader.err")" ;;
  esac
  echo "$what: $line ($n tamperings)"
}
d=$(ns_dir)
tamper_while_reading "delete-data" sh -c "rm -f $d/o-*"
tamper_while_reading "truncate-data" sh -c "for f in $d/o-*; do truncate -s 100000 \$f; done"
tamper_while_reading "delete-control" sh -c "rm -f $d/control"
# Truncating the control file kills nobody: its users stop using the cache (one error line).
tamper_while_reading "truncate-control" sh -c "truncate -s 4096 $d/control"
grep -q "control file was truncated while this process used it" "$work/reader.err" && ok ||
  bad "truncate-control: no error line: $(tail -3 "$work/reader.err")"
echo "silent corruptions: $silent in $reads verified reads"
finish
