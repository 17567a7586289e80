#!/bin/bash
# fork() under the shim from a busy process (tests/shim/fork_stress.cpp): threads read, map,
# write and exec while the main thread forks hundreds of times; every child must read the right
# bytes and exit within its bound, and every object written (by threads and children) must be
# stored exactly: read back through the shim by the program, and compared here with the bytes the
# emulator stored.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3  # Debian's, with numpy
bin=$OSSSHIM_BUILD_ROOT/tests/shim
size=$(((3 << 20) + 12345))  # crosses the 1 MiB chunks of lib.sh
mkdir -p "$root/bkt/out"
pattern() {  # pattern SEED SIZE > FILE: what fork_stress writes and expects (its pattern())
  "$py" -c "
import sys, numpy as np
seed, n = int(sys.argv[1]), int(sys.argv[2])
i = np.arange(n, dtype=np.uint64)
sys.stdout.buffer.write(((i * 7 + seed * 13 + (i >> 9)) & 0xff).astype(np.uint8).tobytes())" "$1" "$2"
}
pattern 1 "$size" > "$root/bkt/src.bin"
start_emulator
forks=300

if out=$(timeout 600 "$ossrun_bin" -- "$bin/fork_stress" /oss/bkt/src.bin "$size" /oss/bkt/out "$forks" 2>&1); then
  ok
else
  bad "fork_stress (exit $?): $out"
fi
echo "$out" | grep '^fork_stress: [0-9]* forks' || true
grep -q "^fork_stress: $forks forks, 0 children failed; .* 0 wrong; 0 errors; 0 silent corruptions$" <<< "$out" &&
  ok || bad "fork_stress summary: $out"

# The stored objects, byte for byte: the writer thread's w-N and every fourth child's c-N.
if check=$("$py" - "$root/bkt/out" <<'PY'
import os, sys, numpy as np
out = sys.argv[1]
counts, wrong = {"w": 0, "c": 0}, []
for name in sorted(os.listdir(out)):
    kind, _, seed = name.partition("-")
    if kind not in counts or not seed.isdigit():
        continue
    seed = int(seed)
    i = np.arange(50000 + seed * 7919 % 200000, dtype=np.uint64)
    want = ((i * 7 + seed * 13 + (i >> 9)) & 0xff).astype(np.uint8).tobytes()
    with open(os.path.join(out, name), "rb") as f:
        if f.read() != want:
            wrong.append(name)
    counts[kind] += 1
print(f"stored: {counts['w']} by the writer thread, {counts['c']} by children, {len(wrong)} wrong {wrong[:5]}")
sys.exit(1 if wrong else 0)
PY
); then ok; else bad "$check"; fi
echo "$check"
grep -q "by the writer thread, $((forks / 4)) by children, 0 wrong" <<< "$check" && ok ||
  bad "want $((forks / 4)) objects from children and none wrong: $check"
grep -q "stored: 0 by" <<< "$check" && bad "no object from the writer thread stored: $check" || ok
finish
