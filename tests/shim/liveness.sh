#!/bin/bash
# Liveness of the shared cache's fetchers, with real processes: a fetcher in another PID namespace
# is alive (not taken over), a SIGKILLed fetcher that is not yet reaped (a zombie) is dead, and a
# SIGSTOPped fetcher loses its chunks after the lease (OSSSHIM_FETCH_LEASE). Every reader gets the
# object's bytes; nothing hangs (each reader runs under `timeout` as a bound, not as a clock).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt"
head -c $((24 << 20)) /dev/urandom > "$root/bkt/big"
want=$(sha256sum < "$root/bkt/big")
start_emulator
# Slow the origin so that a fetch is still under way when the next step looks at it.
admin "faults?bandwidth=2097152"

stat_field() {  # stat_field REGEX: the first number after REGEX in `ossrun stat`
  "$ossrun_bin" stat 2>/dev/null | grep -oE "$1 [0-9]+" | head -1 | grep -oE '[0-9]+$' || echo 0
}
# Bounded wait for a condition (polling the cache's own counters; at most 30 s).
wait_for_inflight() {
  for _ in $(seq 300); do
    [ "$(stat_field 'in flight')" -gt 0 ] && return 0
    sleep 0.1
  done
  return 1
}
fresh_cache() { "$ossrun_bin" cache clear > /dev/null 2>&1 || true; }

# 1. A fetcher in its own PID namespace (a container sharing /dev/shm) is alive to a host reader.
fresh_cache
admin reset
unshare --pid --fork --mount-proc timeout 120 "$ossrun_bin" -- sha256sum /oss/bkt/big > "$work/ns.out" 2>&1 &
ns=$!
wait_for_inflight || bad "namespace reader never started fetching"
host=$(timeout 120 "$ossrun_bin" -- sha256sum < /dev/null /oss/bkt/big 2>"$work/host.err" | cut -d' ' -f1)
wait "$ns" || bad "namespace reader failed: $(cat "$work/ns.out")"
[ "$host" = "${want%% *}" ] && ok || bad "host reader got $host: $(cat "$work/host.err")"
grep -q "${want%% *}" "$work/ns.out" && ok || bad "namespace reader: $(cat "$work/ns.out")"
[ "$(stat_field 'fetchers')" -eq 0 ] && ok || bad "a live fetcher in another PID namespace was taken over"
got=$(origin_bytes)
[ "$got" -le $(((24 << 20) + 65536)) ] && ok || bad "namespace + host readers fetched $got bytes for 24 MiB"

# 2. A fetcher SIGKILLed and never reaped (a zombie) is dead: the next reader takes over at once.
fresh_cache
out=$(OSSRUN="$ossrun_bin" timeout 120 /usr/bin/python3 - <<'PY'
import os, signal, subprocess, sys, time
ossrun = os.environ["OSSRUN"]
child = subprocess.Popen([ossrun, "--", "cat", "/oss/bkt/big"], stdout=subprocess.DEVNULL)
def inflight():
    s = subprocess.run([ossrun, "stat"], capture_output=True, text=True).stdout
    return "in flight 0," not in s and "in flight" in s
for _ in range(300):  # bounded: until the child is fetching
    if inflight(): break
    time.sleep(0.1)
os.kill(child.pid, signal.SIGKILL)  # not waited for: it stays a zombie while we read
r = subprocess.run([ossrun, "--", "sha256sum", "/oss/bkt/big"], capture_output=True, text=True, timeout=100)
state = open(f"/proc/{child.pid}/stat").read().split(")")[1].split()[0]
print(r.stdout.split()[0] if r.returncode == 0 else "failed: " + r.stderr, state)
PY
) || bad "reading past a zombie fetcher failed or hung: $out"
[ "$out" = "${want%% *} Z" ] && ok || bad "zombie case: '$out' (want the sha256 and a zombie 'Z')"

# 3. A SIGSTOPped fetcher: after the lease the others take its chunks over; it finishes when resumed.
fresh_cache
timeout 120 "$ossrun_bin" -- sha256sum /oss/bkt/big > "$work/stopped.out" 2>&1 &
stopped=$!
wait_for_inflight || bad "the reader to stop never started fetching"
kill -STOP "$(pgrep -P "$stopped" sha256sum || echo "$stopped")" 2>/dev/null || kill -STOP "$stopped"
got=$(OSSSHIM_FETCH_LEASE=1s timeout 100 "$ossrun_bin" -- sha256sum /oss/bkt/big 2>"$work/taker.err" | cut -d' ' -f1)
[ "$got" = "${want%% *}" ] && ok || bad "reader behind a stopped fetcher got '$got': $(cat "$work/taker.err")"
[ "$(stat_field 'fetchers')" -gt 0 ] && ok || bad "no chunk was taken over from the stopped fetcher"
grep -q "made no progress" "$work/taker.err" && ok || bad "no warning names the stalled fetcher: $(cat "$work/taker.err")"
pkill -CONT -P "$stopped" 2>/dev/null || true
kill -CONT "$stopped" 2>/dev/null || true
wait "$stopped" || bad "the resumed reader failed: $(cat "$work/stopped.out")"
grep -q "${want%% *}" "$work/stopped.out" && ok || bad "resumed reader: $(cat "$work/stopped.out")"
finish
