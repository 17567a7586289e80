#!/bin/bash
# The README's test command: installs dependencies, builds, and runs every test; then runs the
# C++ suites again under AddressSanitizer+UndefinedBehaviorSanitizer and under ThreadSanitizer
# (set OSSSHIM_SANITIZERS=0 to skip those). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh || exit 1

passed=0 failed=0
# run_suite BUILD_DIR MESON_SETUP_ARGS... -- MESON_TEST_ARGS...
run_suite() {
  local dir=$1; shift
  local setup=() tests=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do setup+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  tests=("$@")
  echo "== $dir: build"
  if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null; else meson setup "$dir" "${setup[@]}" >/dev/null; fi || return 1
  ninja -C "$dir" >/dev/null || { ninja -C "$dir" | tail -30; return 1; }
  echo "== $dir: test"
  meson test -C "$dir" --print-errorlogs "${tests[@]}" | tee "$dir/test-summary.txt" | grep -E '^ *[0-9]+/[0-9]+ |^Ok:|^Fail:|^Timeout:'
  local ok fail timeout
  ok=$(awk '/^Ok:/ {print $2}' "$dir/test-summary.txt"); fail=$(awk '/^Fail:/ {print $2}' "$dir/test-summary.txt")
  timeout=$(awk '/^Timeout:/ {print $2}' "$dir/test-summary.txt")
  passed=$((passed + ${ok:-0})); failed=$((failed + ${fail:-0} + ${timeout:-0}))
  [ "${ok:-0}" -gt 0 ] && [ "${fail:-1}" -eq 0 ] && [ "${timeout:-0}" -eq 0 ]
}

status=0
run_suite build -Dwerror=true -- || status=1
if [ "${OSSSHIM_SANITIZERS:-1}" = 1 ]; then
  # Sanitized builds run the C++ programs (unit and integration suites); the interop suite only
  # exercises third-party clients against the emulator and already ran above.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -- --suite unit --suite integration || status=1
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run_suite build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug -- --suite unit --suite integration || status=1
fi
echo "$passed passed, $failed failed"
exit $status
