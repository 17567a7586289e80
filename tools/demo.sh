#!/bin/bash
# The README's demo command: installs dependencies, builds, generates a sample safetensors model,
# serves it from the local OSS emulator and loads it as several tensor-parallel ranks would,
# printing what was loaded, the time, the throughput and the bytes the server sent.
#   DEMO_SIZE (default 1g), DEMO_SHARDS (4), DEMO_RANKS (4), DEMO_THREADS (8)
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh --demo
[ -d build ] || meson setup build >/dev/null
echo "demo: building (the first build takes a few minutes)"
ninja -C build

work=$(mktemp -d /tmp/ossshim-demo-XXXXXX)
# The demo's own shared cache (on tmpfs, like the default /dev/shm/ossshim-UID), so it starts cold.
export OSSSHIM_CACHE_DIR=$(mktemp -d /dev/shm/ossshim-demo-XXXXXX)
emu_pid=
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work" "$OSSSHIM_CACHE_DIR"
}
trap cleanup EXIT

python3 examples/make_model.py "$work/root/models/demo-model" --size "${DEMO_SIZE:-1g}" --shards "${DEMO_SHARDS:-4}"
build/tools/emulator/oss-emulator --root "$work/root" --listen 127.0.0.1:0 --quiet > "$work/emu.out" &
emu_pid=$!
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/emu.out")
echo "oss-emulator serving $work/root at $endpoint"

ranks=${DEMO_RANKS:-4}
model_dir=$work/root/models/demo-model
model=$(du -cb "$model_dir"/*.safetensors | tail -1 | cut -f1)
echo "model: $(ls "$model_dir"/*.safetensors | wc -l) shards, $((model >> 20)) MiB; $ranks ranks load it through the shim"

# Prime the emulator's per-object metadata (CRC64) so the timing measures transfer, not hashing.
export OSSSHIM_REGION=cn-hangzhou OSS_ACCESS_KEY_ID=test-ak OSS_ACCESS_KEY_SECRET=test-sk
export OSSSHIM_ENDPOINT=$endpoint
build/tools/ossrun/ossrun -- ls -l /oss/models/demo-model > /dev/null
curl -s -X POST "$endpoint/_admin/reset" >/dev/null

# The ranks: unmodified Python processes started through ossrun, all at once. Sets start/end
# and origin (bytes the server sent).
run_ranks() {
  curl -s -X POST "$endpoint/_admin/reset" >/dev/null
  start=$(date +%s.%N)
  local pids=() r p
  for r in $(seq 0 $((ranks - 1))); do
    build/tools/ossrun/ossrun -- python3 examples/load_safetensors.py /oss/models/demo-model --rank "$r" --ranks "$ranks" \
      > "$work/rank$r.out" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  origin=$(curl -s "$endpoint/_admin/stats" | sed -E 's/^\{"requests":[0-9]+,"bytes_out":([0-9]+).*/\1/')
}
run_ranks
cat "$work"/rank*.out
# The same ranks on the local directory give the same checksums.
for r in $(seq 0 $((ranks - 1))); do
  python3 examples/load_safetensors.py "$model_dir" --rank "$r" --ranks "$ranks" | grep -o 'sha256 .*' > "$work/local$r"
  grep -q "$(cat "$work/local$r")" "$work/rank$r.out" || { echo "rank $r: checksum differs from the local copy"; exit 1; }
done
echo "checksums: identical to loading the local copy"
python3 - "$origin" "$model" "$ranks" "$start" "$end" <<'PY'
import sys
origin, model, ranks = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wall = float(sys.argv[5]) - float(sys.argv[4])
print(f"time: {wall:.2f} s for {ranks} ranks; {model * ranks / wall / 1e9:.2f} GB/s of shard bytes mapped "
      f"by the ranks, {origin / wall / 1e9:.2f} GB/s from the server")
print(f"origin: the server sent {origin / 2**30:.2f} GiB = {origin / model:.2f} x the model "
      f"(the ranks share one node-wide cache: each byte is fetched once and mapped by all)")
PY
# A relaunch finds the model in the cache.
run_ranks
python3 - "$origin" "$model" "$ranks" "$start" "$end" <<'PY'
import sys
origin, model, ranks = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wall = float(sys.argv[5]) - float(sys.argv[4])
print(f"relaunch: {wall:.2f} s for {ranks} ranks, {model * ranks / wall / 1e9:.2f} GB/s of shard bytes mapped; "
      f"the server sent {origin} bytes (listings)")
PY
build/tools/ossrun/ossrun stat | head -3
