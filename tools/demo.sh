#!/bin/bash
# The README's demo command: installs dependencies, builds, generates a sample safetensors model,
# serves it from the local OSS emulator and loads it as several tensor-parallel ranks would,
# printing what was loaded, the time, the throughput and the bytes the server sent.
#   DEMO_SIZE (default 1g), DEMO_SHARDS (4), DEMO_RANKS (4), DEMO_THREADS (8)
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/ossshim-demo-XXXXXX)
emu_pid=
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

python3 examples/make_model.py "$work/root/models/demo-model" --size "${DEMO_SIZE:-1g}" --shards "${DEMO_SHARDS:-4}"
build/tools/emulator/oss-emulator --root "$work/root" --listen 127.0.0.1:0 --quiet > "$work/emu.out" &
emu_pid=$!
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/emu.out")
echo "oss-emulator serving $work/root at $endpoint"

# Prime the emulator's per-object metadata (CRC64) so the timing measures transfer, not hashing.
export OSSSHIM_REGION=cn-hangzhou OSS_ACCESS_KEY_ID=test-ak OSS_ACCESS_KEY_SECRET=test-sk
build/examples/demo_load "$endpoint" models demo-model/ 1 1 >/dev/null
curl -s -X POST "$endpoint/_admin/reset" >/dev/null

ranks=${DEMO_RANKS:-4}
build/examples/demo_load "$endpoint" models demo-model/ "$ranks" "${DEMO_THREADS:-8}"
stats=$(curl -s "$endpoint/_admin/stats")
origin=$(sed -E 's/.*"bytes_out":([0-9]+).*/\1/; t; s/.*//' <<<"${stats%%,\"bytes_in\"*}")
model=$(du -cb "$work"/root/models/demo-model/*.safetensors | tail -1 | cut -f1)
python3 - "$origin" "$model" "$ranks" <<'PY'
import sys
origin, model, ranks = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"origin: the server sent {origin / 2**30:.2f} GiB = {origin / model:.2f} x the model "
      f"({ranks} ranks each fetched their own copy; the shared cache will make this 1.00 x)")
PY
