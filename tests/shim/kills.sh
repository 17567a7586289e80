#!/bin/bash
# SIGKILL at random points: in each of 24 runs, three processes read the same objects through a
# cold shared cache (fetches slowed by a bandwidth cap, so kills land mid-fetch, mid-claim or
# mid-copy) and one of them is killed after a random delay. The survivors finish within a bound
# with correct bytes (its chunks are taken over), and a reader afterwards gets every byte right.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 - "$root/bkt/k" <<'PY'
import os, random, sys
rng = random.Random(24)
os.makedirs(sys.argv[1])
for i in range(6):
    with open(f"{sys.argv[1]}/o{i}", "wb") as f:
        f.write(rng.randbytes(rng.randrange(1, 6 << 20)))
PY
start_emulator
reader=$OSSSHIM_SOURCE_ROOT/tests/shim/soak_reader.py
wrong=0 total=0 takeovers=0
verdict() {  # FILE: adds its counts; fails on a wrong read or a missing verdict
  local line
  line=$(grep '^reads' "$1" || true)
  [ -n "$line" ] || { bad "run $run: no verdict in $1: $(tail -2 "$1.err")"; return; }
  read -r _ n _ good _ err _ w _ <<<"$line"
  total=$((total + n)) wrong=$((wrong + w))
  [ "$w" -eq 0 ] && ok || bad "run $run: $line $(grep -m2 WRONG "$1.err")"
}
for run in $(seq 1 24); do
  "$ossrun_bin" cache clear > /dev/null || bad "run $run: cache clear: $("$ossrun_bin" cache clear 2>&1)"
  admin "faults?bandwidth=$((20 + RANDOM % 40))m"
  pids=()
  victim=$((RANDOM % 3))  # it reads far more than the others, so it is still reading when killed
  for r in 0 1 2; do
    mkfifo "$work/f$run.$r"
    n=30
    [ "$r" -eq "$victim" ] && n=100000
    timeout 120 "$ossrun_bin" -- /usr/bin/python3 "$reader" /oss/bkt/k "$root/bkt/k" $n $((run * 3 + r)) \
      > "$work/f$run.$r" 2> "$work/o$run.$r.err" &
    pids+=($!)
    exec {fd}< "$work/f$run.$r"
    eval "fd$r=$fd"
  done
  for r in 0 1 2; do eval "read -r _ <&\$fd$r"; done  # all three have started
  sleep "0.$(printf '%03d' $((RANDOM % 1000)))"  # the random point (not synchronisation)
  pkill -KILL -P "${pids[$victim]}" || true  # the reader, child of `timeout`
  for r in 0 1 2; do
    eval "cat <&\$fd$r > '$work/o$run.$r'; exec {fd$r}<&-"
    wait "${pids[$r]}" && rc=0 || rc=$?
    if [ "$r" -eq "$victim" ]; then
      [ "$rc" -eq 137 ] && ok || bad "run $run: victim exited $rc, not killed (137)"
    else
      [ "$rc" -eq 0 ] && verdict "$work/o$run.$r" || bad "run $run: survivor $r exited $rc (124: hung)"
    fi
  done
  curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null
  taken=$(("$ossrun_bin" stat || true) | sed -nE 's/.*stalled fetchers ([0-9]+).*/\1/p')
  takeovers=$((takeovers + ${taken:-0}))
  timeout 120 "$ossrun_bin" -- /usr/bin/python3 "$reader" /oss/bkt/k "$root/bkt/k" 40 $((run + 1000)) \
    > "$work/after$run" 2> "$work/after$run.err" || bad "run $run: reader after the kill exited $?"
  verdict "$work/after$run"
  grep -q " errors 0 " "$work/after$run" && ok || bad "run $run: after the kill: $(grep '^reads' "$work/after$run")"
done
echo "silent corruptions: $wrong in $total verified reads over 24 SIGKILLs ($takeovers chunks taken over from killed fetchers)"
finish
