#!/bin/bash
# libossshim.so exports exactly the symbols of shim/exports.map, each of them defined.
set -euo pipefail
map=$OSSSHIM_SOURCE_ROOT/shim/exports.map
lib=$OSSSHIM_BUILD_ROOT/shim/libossshim.so
listed=$(sed 's#/\*.*\*/##; /\/\*/,/\*\//d' "$map" | grep -Eo '[A-Za-z_0-9]+;' | tr -d ';' | grep -vx local | sort)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
if [ "$listed" == "$exported" ]; then
  echo "$(wc -l <<<"$listed") symbols: 1 passed, 0 failed"
else
  diff <(echo "$listed") <(echo "$exported") | head -20
  echo "0 passed, 1 failed"
  exit 1
fi
