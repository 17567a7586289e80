#!/bin/bash
# 5,000 small objects through one shared cache, more than its object table holds (4,096, crowded
# at three quarters): every byte correct, the table forgets the least recently used objects
# instead of refusing new ones, and no warning per object.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 - "$root/bkt/small" <<'PY'
import os, random, sys
base = sys.argv[1]
rng = random.Random(5000)
for d in range(50):
    os.makedirs(f"{base}/d{d:02}", exist_ok=True)
    for i in range(100):
        with open(f"{base}/d{d:02}/f{i:03}.bin", "wb") as f:
            f.write(rng.randbytes(rng.randrange(1, 6000)))
PY
start_emulator
reader='
import hashlib, os, sys
base = sys.argv[1]
for d in sorted(os.listdir(base)):
    for n in sorted(os.listdir(f"{base}/{d}")):
        with open(f"{base}/{d}/{n}", "rb") as f:
            print(d, n, hashlib.sha256(f.read()).hexdigest())
'
want=$(/usr/bin/python3 -c "$reader" "$root/bkt/small")
[ "$(wc -l <<<"$want")" -eq 5000 ] || { bad "setup: $(wc -l <<<"$want") files"; finish; exit 1; }
for pass in 1 2; do
  got=$("$ossrun_bin" -- /usr/bin/python3 -c "$reader" /oss/bkt/small 2> "$work/err$pass")
  [ "$got" = "$want" ] && ok || bad "pass $pass: $(diff <(echo "$want") <(echo "$got") | head -5)"
  lines=$(grep -c . "$work/err$pass" || true)
  [ "$lines" -le 2 ] && ok || bad "pass $pass: $lines lines on stderr: $(head -3 "$work/err$pass")"
done
# The cache served them all: nothing was read past it.
out=$("$ossrun_bin" stat)
grep -q " 0 B read past the cache" <<<"$out" && ok || bad "bytes read past the cache: $out"
finish
