#!/bin/bash
# python_diff.py (Debian's python3 with numpy and torch) under ossrun: every probe must return
# the same on the prefix as on the local copy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/make_tree.py" "$root" $((3 << 30))
chmod -R a-w "$root/bkt"  # modes as on the read-only prefix
start_emulator
"$ossrun_bin" -- /usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/python_diff.py" "$root/bkt" /oss/bkt
