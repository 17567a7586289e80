#!/bin/bash
# 10,000 verified reads by four concurrent processes sharing one cache smaller than the data,
# under emulator faults that rotate between phases (5xx, connection resets, truncated bodies,
# slow first bytes, a bandwidth cap). Every read returns the object's bytes or a clean errno: the
# silent corruptions are counted and must be 0. Bounded: 10 phases of 4 x 250 reads, each phase
# under a timeout.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 - "$root/bkt/soak" <<'PY'
import os, random, sys
rng = random.Random(10000)
os.makedirs(sys.argv[1])
for i in range(24):  # about 100 MB: more than the 64 MiB cache, which evicts
    with open(f"{sys.argv[1]}/o{i:02}", "wb") as f:
        f.write(rng.randbytes(rng.choice([0, 1, 4096, 1 << 20, (1 << 20) + 1]) if i < 4 else rng.randrange(1, 9 << 20)))
PY
start_emulator
export OSSSHIM_CACHE_SIZE=64m OSSSHIM_RETRIES=2
phases=(
  ""
  "error_status=500&error_percent=20&ops=GetObject"
  "error_status=503&error_percent=40"
  "reset_after=300000&count=40&ops=GetObject"
  "truncate_after=500000&count=40&ops=GetObject"
  "first_byte_ms=300&count=60"
  "bandwidth=40m"
  "error_status=500&error_percent=10&ops=HeadObject"
  "reset_after=10000&error_percent=30&ops=GetObject"
  ""
)
total=0 wrong=0 errors=0
for p in "${!phases[@]}"; do
  curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null
  [ -n "${phases[$p]}" ] && admin "faults?${phases[$p]}"
  pids=()
  for r in 0 1 2 3; do
    timeout 300 "$ossrun_bin" -- /usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/soak_reader.py" \
      /oss/bkt/soak "$root/bkt/soak" 250 $((p * 10 + r)) > "$work/r$p.$r" 2> "$work/e$p.$r" &
    pids+=($!)
  done
  for r in 0 1 2 3; do
    wait "${pids[$r]}" || bad "phase $p reader $r exited $? (timeout 124): $(tail -2 "$work/e$p.$r")"
    line=$(grep '^reads' "$work/r$p.$r" || echo "reads 0 ok 0 errors 0 wrong 0")
    read -r _ n _ good _ err _ w _ <<<"$line"
    total=$((total + n)) wrong=$((wrong + w)) errors=$((errors + err))
    [ "$n" -eq 250 ] && [ "$w" -eq 0 ] && ok || bad "phase $p (${phases[$p]}) reader $r: $line $(grep -m2 WRONG "$work/e$p.$r")"
  done
  echo "phase $p (${phases[$p]:-no faults}): $(cut -d' ' -f1-9 "$work"/r$p.* | awk '{o+=$4; e+=$6; w+=$8} END {print o " ok, " e " errors, " w " wrong"}')"
done
# Through the shared cache, which evicted (the data is larger than it).
st=$("$ossrun_bin" stat 2>&1) && ! grep -q "evicted 0 B" <<<"$st" && ok || bad "no shared cache, or no eviction: $st"
# The last phase ran without faults: every read must have succeeded.
errs=$(awk '{e+=$6} END {print e}' "$work"/r9.*)
[ "$errs" -eq 0 ] && ok || bad "without faults, $errs reads failed"
echo "silent corruptions: $wrong in $total verified reads ($errors clean errors)"
finish
