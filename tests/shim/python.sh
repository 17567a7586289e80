#!/bin/bash
# python_diff.py (Debian's python3 with numpy and torch) under ossrun: every probe must return
# the same on the prefix as on the local copy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/make_tree.py" "$root" $((3 << 30))
find "$root/bkt" -type d -exec chmod 755 {} + && find "$root/bkt" -type f -exec chmod 644 {} +  # modes as the prefix shows them
start_emulator
"$ossrun_bin" -- /usr/bin/python3 "$OSSSHIM_SOURCE_ROOT/tests/shim/python_diff.py" "$root/bkt" /oss/bkt
