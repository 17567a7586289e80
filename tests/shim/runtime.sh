#!/bin/bash
# The shim's own runtime: descriptor calls racing close answer EBADF, never crash; programs
# exec'd after a virtual read inherit none of the shim's descriptors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt/dir/sub"
printf 'hello\n' > "$root/bkt/hello.txt"
for i in 1 2 3; do printf '%s\n' "$i" > "$root/bkt/dir/f$i.txt"; done
start_emulator
bin=$OSSSHIM_BUILD_ROOT/tests/shim

# dup, dup2, fcntl, fstat, read, getdents64, fchdir on descriptors other threads close.
if out=$(timeout 120 "$ossrun_bin" -- "$bin/fd_race" /oss/bkt/hello.txt /oss/bkt/dir 3000 2>&1); then ok; else
  bad "fd_race: $out"
fi
grep -q 'fd_race: [0-9]* calls, [1-9][0-9]* EBADF, 0 other' <<< "$out" && ok || bad "fd_race saw no closed descriptor: $out"
# fstat and dup racing a close whose number a local file takes next: EBADF or one file's answer,
# each kind seen (a run that never hit the window proves nothing).
grep -Eq 'fd_race reuse: [0-9]+ calls, [1-9][0-9]* EBADF, [1-9][0-9]* virtual, [1-9][0-9]* local, 0 wrong' <<< "$out" && ok ||
  bad "fd_race reuse: $out"

# After a read (TCP connection to the endpoint, curl's socketpairs, cache files), an exec'd child
# sees only the program's descriptors: 0, 1, 2 and the one it opens to list them. The harness's
# own inherited descriptors are closed first, so the count does not depend on who runs the test.
"$ossrun_bin" -- /usr/bin/python3 -c "
import os
os.closerange(3, 1 << 16)
assert open('/oss/bkt/hello.txt').read() == 'hello\n'
os.execv('/bin/sh', ['sh', '-c', 'ls -l /proc/self/fd/'])" > "$work/fds" 2> "$work/fds.err" || bad "exec after read: $(cat "$work/fds.err")"
inherited=$(grep -Eo ' [0-9]+ -> .*' "$work/fds" | grep -Ev '^ [012] -> ' | grep -v "/proc/[0-9]*/fd" || true)
[ -z "$inherited" ] && ok || bad "the exec'd child inherited: $inherited"
grep -q socket "$work/fds" && bad "a socket was inherited: $(cat "$work/fds")" || ok

# Start-up adds no system call of the shim's own to a program that never uses the prefix: no
# getcwd, no /proc/self/fd scan (only with OSSSHIM_INHERITED_FDS), no readlink/fstat per fd.
# (What the loader does to map the library is the same for any preloaded library.)
strace -f -o "$work/true.strace" "$ossrun_bin" -- /bin/true 3< /dev/null 4< /dev/null || bad "strace /bin/true"
own=$(sed -n '/execve("\/bin\/true"/,$p' "$work/true.strace" | grep -E 'getcwd|/proc/self/fd|readlink|getdents' || true)
[ -z "$own" ] && ok || bad "start-up of /bin/true made the shim's own calls: $own"

# The virtual cwd is inherited lazily (first relative path, getcwd): programs exec'd from a shell
# after `cd /oss/...` see it, in getcwd and in relative paths.
out=$("$ossrun_bin" -- bash -c 'cd /oss/bkt/dir && /bin/pwd && cat f2.txt && ls && /usr/bin/python3 -c "import os; print(os.getcwd()); print(open(\"f3.txt\").read().strip())"' 2>&1) || true
[ "$out" = "$(printf '/oss/bkt/dir\n2\nf1.txt\nf2.txt\nf3.txt\nsub\n/oss/bkt/dir\n3')" ] && ok || bad "inherited virtual cwd: $out"

# The staging directory must be ours, 0700 and real; otherwise writes fail with one line naming the fix.
uid=$(id -u)
stage_write() {  # stage_write DIR NAME: a staged write with staging_dir DIR; its stderr in $work/stage.err
  echo data | OSSSHIM_STAGE_WRITES=true OSSSHIM_STAGING_DIR=$1 "$ossrun_bin" -- sh -c "cat > /oss/bkt/$2" \
    2> "$work/stage.err"
}
mkdir -p "$work/stg-ok" && stage_write "$work/stg-ok" staged-ok.txt && [ "$(cat "$root/bkt/staged-ok.txt")" == data ] &&
  ok || bad "staged write into a fresh staging dir: $(cat "$work/stage.err")"
[ "$(stat -c %a "$work/stg-ok/ossshim-staging-$uid")" == 700 ] && ok || bad "staging dir not created 0700"
mkdir -p "$work/stg-open/ossshim-staging-$uid" && chmod 0777 "$work/stg-open/ossshim-staging-$uid"
mkdir -p "$work/stg-link" "$work/elsewhere" && ln -s "$work/elsewhere" "$work/stg-link/ossshim-staging-$uid"
for case in "stg-open:has mode 0777" "stg-link:is a symbolic link"; do
  dir=${case%%:*} why=${case#*:}
  if stage_write "$work/$dir" "refused-$dir.txt"; then bad "$dir: a staged write succeeded"; else ok; fi
  grep -q "ossshim-staging-$uid $why, not a private directory.*set OSSSHIM_STAGING_DIR" "$work/stage.err" && ok ||
    bad "$dir: no error line naming the fix: $(cat "$work/stage.err")"
done
[ -z "$(ls "$work/elsewhere")" ] && ok || bad "staged data landed behind the symbolic link"
if [ "$uid" -eq 0 ]; then  # only root can make a directory someone else's
  mkdir -p "$work/stg-other/ossshim-staging-$uid" && chmod 0700 "$work/stg-other/ossshim-staging-$uid"
  chown 4242 "$work/stg-other/ossshim-staging-$uid"
  if stage_write "$work/stg-other" refused-other.txt; then bad "stg-other: a staged write succeeded"; else ok; fi
  grep -q "is owned by uid 4242" "$work/stage.err" && ok || bad "stg-other: $(cat "$work/stage.err")"
fi

# The log: never through a symbolic link, created 0600; under the prefix it is a configuration
# error (it hung: the shim opened its log through itself).
ln -s "$work/planted.log" "$work/link.log"
OSSSHIM_LOG_FILE=$work/link.log "$ossrun_bin" -- cat /oss/bkt/hello.txt > /dev/null 2> "$work/log.err" || true
[ ! -e "$work/planted.log" ] && ok || bad "the log followed a symbolic link"
grep -q "cannot open log file $work/link.log.*symbolic link" "$work/log.err" && ok || bad "symlinked log: $(cat "$work/log.err")"
OSSSHIM_LOG=info OSSSHIM_LOG_FILE=$work/shim.log "$ossrun_bin" -- cat /oss/bkt/hello.txt > /dev/null
[ "$(stat -c %a "$work/shim.log")" == 600 ] && grep -q 'info: ossshim: /oss' "$work/shim.log" && ok ||
  bad "log file: mode $(stat -c %a "$work/shim.log"), $(cat "$work/shim.log")"
rc=0
OSSSHIM_LOG_FILE=/oss/bkt/log.txt timeout 20 "$ossrun_bin" -- cat /oss/bkt/hello.txt > /dev/null 2> "$work/log.err" || rc=$?
[ "$rc" -ne 124 ] && ok || bad "a log file under the prefix hung"
grep -q "OSSSHIM_LOG_FILE.*under the virtual prefix /oss" "$work/log.err" && ok || bad "log under prefix: $(cat "$work/log.err")"

# Logging never re-enters the shim: with stderr redirected into the prefix and every call logged
# (debug), programs that log through the shim neither hang nor lose their own messages.
rc=0
OSSSHIM_LOG=debug timeout 60 "$ossrun_bin" -- bash -c 'exec 2>/oss/bkt/err.txt; cat /oss/bkt/nope; echo next >&2
  python3 -c "import sys; open(\"/oss/bkt/hello.txt\").read(); sys.stderr.write(\"py\n\"); open(\"/oss/bkt/nope3\")"
  true' > /dev/null 2> "$work/stderr-log" || rc=$?
[ "$rc" -eq 0 ] && ok || bad "stderr into the prefix with debug logging: exit $rc (124: hung)"
for want in "cat: /oss/bkt/nope: No such file or directory" next py "HeadObject oss://bkt/nope3: HTTP 404"; do
  grep -qF "$want" "$root/bkt/err.txt" && ok || bad "stderr object lacks [$want]: $(cat "$root/bkt/err.txt")"
done

# fsync of a redirected stdout returns once every byte written before it is stored: each round
# writes more than a pipe holds, fsyncs, and a second process reads the object back.
cat > "$work/fsync_rounds.py" <<'PY'
import os, subprocess, sys
total = 0
for i in range(20):
    chunk = (b"%03d" % i) * 40000  # 120 KB: more than the pipe holds, so the drain is mid-way
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    os.fsync(1)
    total += len(chunk)
    got = subprocess.run(["cat", sys.argv[1]], stdout=subprocess.PIPE, check=True).stdout
    if len(got) != total or not got.endswith(chunk):
        sys.stderr.write("round %d: object has %d bytes, %d written before fsync\n" % (i, len(got), total))
        sys.exit(1)
PY
if timeout 120 "$ossrun_bin" -- bash -c "python3 $work/fsync_rounds.py /oss/bkt/synced.bin > /oss/bkt/synced.bin" 2> "$work/fsync.err"
then ok; else bad "fsync of a redirected stdout: $(grep -v '^ossshim\[' "$work/fsync.err")"; fi
[ "$(stat -c %s "$root/bkt/synced.bin")" -eq 2400000 ] && ok || bad "synced.bin: $(stat -c %s "$root/bkt/synced.bin") bytes"

# The same when the program got the pipe itself: dash runs `cmd > /oss/f` in a vfork()ed child
# (no hand-off), bash runs a command of `{ ...; } > /oss/f` in a forked one. The shell drains the
# pipe; the program's fsync asks it, and returns once the object (here the emulator's file) holds
# every byte written before (it was EINVAL, as for any pipe).
cat > "$work/fsync_pipe.py" <<'PY'
import os, sys
sys.stdout.write("x" * 100000)
sys.stdout.flush()
os.fsync(1)
sys.stderr.write("stored %d\n" % os.path.getsize(sys.argv[1]))
PY
for sh in "dash:/usr/bin/python3 $work/fsync_pipe.py $root/bkt/fsync-dash > /oss/bkt/fsync-dash:100000" \
  "bash:{ echo a; /usr/bin/python3 $work/fsync_pipe.py $root/bkt/fsync-bash; } > /oss/bkt/fsync-bash:100002"; do
  IFS=: read -r shell cmd want <<< "$sh"
  if out=$(timeout 60 "$ossrun_bin" -- "$shell" -c "$cmd" 2>&1); then ok; else bad "$shell: fsync of a pipe into the prefix: $out"; fi
  grep -qx "stored $want" <<< "$out" && ok || bad "$shell: fsync returned before $want bytes were stored: $out"
done
[ "$(head -c 1 "$root/bkt/fsync-bash")$(tr -d '\na' < "$root/bkt/fsync-bash" | wc -c)" = a100000 ] && ok ||
  bad "fsync-bash holds $(wc -c < "$root/bkt/fsync-bash") bytes"
finish
