#!/bin/bash
# A 1 GiB object read through the shim inside a 768 MiB cgroup v1 memory cgroup: the automatic
# budget must fit the cgroup (tmpfs pages are charged to it and never reclaimed), so the read
# succeeds with the right bytes and nothing is OOM-killed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/big"
head -c $((1 << 30)) /dev/urandom > "$root/big/model.bin"
want=$(sha256sum < "$root/big/model.bin" | cut -d' ' -f1)
start_emulator
unset OSSSHIM_CACHE_SIZE  # the automatic budget is what is under test

parent=/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
cg=${parent%/}/ossshim-test-$$
mkdir "$cg" || { echo "FAIL: cannot create the memory cgroup $cg (run as root with cgroup v1 memory)"; exit 1; }
remove_cgroup() {
  while read -r p; do echo "$p" > "$parent/cgroup.procs" 2>/dev/null || true; done < "$cg/cgroup.procs"
  "$ossrun_bin" cache clear > /dev/null 2>&1 || true  # uncharge the tmpfs pages first
  rmdir "$cg" || echo "could not remove $cg"
}
trap 'remove_cgroup; cleanup' EXIT
echo $((768 << 20)) > "$cg/memory.limit_in_bytes"

rc=0
got=$(bash -c 'echo $$ > "$1/cgroup.procs"; exec "$2" -- sha256sum /oss/big/model.bin' _ "$cg" "$ossrun_bin" 2> "$work/err") || rc=$?
[ "$rc" -eq 0 ] && ok || bad "read in the cgroup exited $rc: $(tail -3 "$work/err")"
[ "${got%% *}" = "$want" ] && ok || bad "sha256 $got, want $want"
oom=$(sed -n 's/^oom_kill //p' "$cg/memory.oom_control")
[ "${oom:-0}" -eq 0 ] && ok || bad "$oom processes OOM-killed in the cgroup"
out=$("$ossrun_bin" stat)
line=$(grep '^budget: ' <<<"$out") || true
# (stat runs outside the cgroup: it shows the creator's budget, and what it would choose itself)
mib=$(sed -E 's/^budget: ([0-9.]+) MiB.*/\1/' <<<"$line")
[[ "$mib" =~ ^[0-9.]+$ ]] && awk -v m="$mib" 'BEGIN { exit !(m >= 64 && m < 768) }' && ok || bad "budget $line not below 768 MiB"
finish
