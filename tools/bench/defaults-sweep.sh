#!/bin/bash
# Measures the fetch defaults: one cold sequential reader (cat) of a SIZE object through ossrun
# for each chunk size x concurrency, uncapped and with the emulator's bandwidth cap and first-byte
# latency. Prints GB/s per combination.
#   tools/bench/defaults-sweep.sh [SIZE=1g] [CAP=250m] [LATENCY_MS=10]
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1g} cap=${2:-250m} latency=${3:-10}
work=$(mktemp -d /tmp/ossshim-sweep-XXXXXX)
export OSSSHIM_CACHE_DIR=$(mktemp -d /dev/shm/ossshim-sweep-XXXXXX)
emu_pid=
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work" "$OSSSHIM_CACHE_DIR"; }
trap cleanup EXIT
mkdir -p "$work/root/bkt"
head -c "$(numfmt --from=iec "${size^^}")" /dev/urandom > "$work/root/bkt/obj"
${BUILD:-build}/tools/emulator/oss-emulator --root "$work/root" --listen 127.0.0.1:0 --quiet > "$work/emu.out" &
emu_pid=$!
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/emu.out")
export OSSSHIM_ENDPOINT=$endpoint OSSSHIM_REGION=cn-hangzhou OSS_ACCESS_KEY_ID=test-ak OSS_ACCESS_KEY_SECRET=test-sk
${BUILD:-build}/tools/ossrun/ossrun -- stat /oss/bkt/obj > /dev/null  # the emulator computes the CRC64 once
bytes=$(stat -c %s "$work/root/bkt/obj")
for faults in "" "bandwidth=$cap&first_byte_ms=$latency"; do
  if [ -n "$faults" ]; then curl -s -X POST "$endpoint/_admin/faults?$faults" > /dev/null; echo "capped: $faults"; else echo "uncapped"; fi
  printf '%-8s' "chunk"; for conc in 4 8 16 32; do printf '%12s' "conc $conc"; done; echo
  for chunk in 1m 4m 8m 16m; do
    printf '%-8s' "$chunk"
    for conc in 4 8 16 32; do
      rm -rf "${OSSSHIM_CACHE_DIR:?}"/*
      s=$(date +%s.%N)
      ${BUILD:-build}/tools/ossrun/ossrun --chunk-size "$chunk" --concurrency "$conc" -- cat /oss/bkt/obj > /dev/null
      e=$(date +%s.%N)
      printf '%12s' "$(python3 -c "print(f'{$bytes / ($e - $s) / 1e9:.2f} GB/s')")"
    done
    echo
  done
done
