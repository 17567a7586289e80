# Shared by the shim's shell tests: a work directory, the generated bucket served by a fresh
# emulator, and ossrun pointed at it. Source after `set -euo pipefail`.
: "${OSSSHIM_EMULATOR:?run through meson test}" "${OSSSHIM_BUILD_ROOT:?}" "${OSSSHIM_SOURCE_ROOT:?}"
work=$(mktemp -d /tmp/ossshim-shimtest-XXXXXX)
# A private shared cache per test run (mode 0700 from mktemp), on tmpfs like the default.
shm_cache=$(mktemp -d /dev/shm/ossshim-test-XXXXXX)
export OSSSHIM_CACHE_DIR=$shm_cache
emu_pid=
cleanup() {
  rm -rf "$shm_cache"  # (tests may point OSSSHIM_CACHE_DIR elsewhere meanwhile)
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null
  wait 2>/dev/null || true
  chmod -R u+w "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
ossrun_bin=$OSSSHIM_BUILD_ROOT/tools/ossrun/ossrun
passed=0
failed=0

# start_emulator [EXTRA ARGS...]: serves $root; sets $endpoint.
start_emulator() {
  "$OSSSHIM_EMULATOR" --root "$root" --listen 127.0.0.1:0 --quiet "$@" > "$work/emu.out" 2>&1 &
  emu_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
  endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/emu.out")
  [ -n "$endpoint" ] || { echo "emulator did not start: $(cat "$work/emu.out")"; exit 1; }
  export OSSSHIM_ENDPOINT=$endpoint OSSSHIM_REGION=cn-hangzhou
  export OSS_ACCESS_KEY_ID=test-ak OSS_ACCESS_KEY_SECRET=test-sk
  unset OSSSHIM_CONFIG OSSSHIM_PREFIX OSSSHIM_LOG_FILE
  # Small chunks: every multi-MB file crosses many chunk boundaries and read-ahead windows.
  export OSSSHIM_CHUNK_SIZE=1m OSSSHIM_CACHE_SIZE=64m
}

admin() { curl -s -X POST "$endpoint/_admin/$1" > /dev/null; }
origin_bytes() { curl -s "$endpoint/_admin/stats" | sed -E 's/^\{"requests":[0-9]+,"bytes_out":([0-9]+).*/\1/'; }

ok() { passed=$((passed + 1)); }
bad() {
  failed=$((failed + 1))
  echo "FAIL: $*"
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
