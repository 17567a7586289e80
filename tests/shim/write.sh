#!/bin/bash
# The write path under real programs: cp, tar, dd, mv, Python (shutil, numpy, torch, sqlite3, a
# downloader's .incomplete + os.replace) write into /oss/bkt and into a local directory; the
# objects in the emulator's root must equal the local files byte for byte and read back the same
# through the shim. Then the namespace (mkdir/rmdir/unlink/rename/O_EXCL), read-your-writes across
# processes, injected upload failures (EIO or EDQUOT/ENOSPC, nothing left behind), concurrent
# writers and O_EXCL races, and descriptor errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
helpers=$OSSSHIM_SOURCE_ROOT/tests/shim/write_helpers.py
py=/usr/bin/python3  # Debian's, with numpy and torch
mkdir -p "$root/bkt"
start_emulator --anonymous  # (curl lists the multipart uploads unsigned)
# 1 MiB parts: every file above 1 MiB is a multipart upload.
export OSSSHIM_PART_SIZE=1m OSSSHIM_RETRY_BASE=10ms
lb=$work/local  # the local directory the same programs write to
src=$work/src
mkdir -p "$lb" "$src"

vrun() { "$ossrun_bin" -- "$@"; }
marker=.ossemu-marker  # the emulator's directory-marker file (the object "dir/")
emu_ls() { ls -A "$root/bkt/$1" 2>&1 | grep -vx "$marker" | tr '\n' ' '; }
strip_log() { grep -v '^ossshim\[' "$1" || true; }

# Sources: nested directories, an empty file and directory, part-boundary sizes, odd names.
mkdir -p "$src/a/b/c" "$src/empty dir" "$src/sub dir/ñandú 文件"
head -c $((20 << 20)) /dev/urandom > "$src/big.bin"
head -c $((1 << 20)) /dev/urandom > "$src/a/one-mib.bin"
head -c $(((1 << 20) + 1)) /dev/urandom > "$src/a/b/one-mib-plus-one.bin"
head -c $(((3 << 20) + 12345)) /dev/urandom > "$src/a/b/c/odd.bin"
: > "$src/empty.dat"
printf 'hello\n' > "$src/a/hello.txt"
printf 'spaces\n' > "$src/with space.txt"
printf 'non-ascii ✓\n' > "$src/sub dir/ñandú 文件/ünïcødé.txt"
printf '#!/bin/sh\necho hi\n' > "$src/a/run.sh" && chmod 755 "$src/a/run.sh"
touch -d '2001-02-03 04:05:06' "$src/a/hello.txt"
(cd "$src" && tar -cf "$work/archive.tar" .)

source "$(dirname "$0")/compare.sh"

# pycheck NAME ARGS...: write_helpers.py ARGS under the shim; counts its ok/FAIL lines.
pycheck() {
  local name=$1 rc=0
  shift
  vrun "$py" "$helpers" "$@" > "$work/py.out" 2> "$work/py.err" || rc=$?
  collect "$name" "$work/py.out"
  if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$work/py.out"; then
    bad "$name: exit $rc: $(strip_log "$work/py.err" | grep -v "^  #[0-9]" | tail -4)"
  fi
}
collect() {
  local line
  while IFS= read -r line; do
    case $line in
      ok\ *) ok ;;
      FAIL\ *) bad "$1: ${line#FAIL }" ;;
    esac
  done < "$2"
}

# arm SPEC: arms emulator faults; false (with a FAIL) when the emulator refuses SPEC.
arm() {
  local code
  code=$(curl -s -o "$work/arm.out" -w '%{http_code}' -X POST "$endpoint/_admin/faults?$1")
  [ "$code" == 200 ] || { bad "the emulator refused the fault $1: HTTP $code $(cat "$work/arm.out")"; return 1; }
}
disarm() { curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null; }
# uploads_left [KEY PREFIX]: keys of the incomplete multipart uploads in bkt
uploads_left() { curl -s "$endpoint/bkt/?uploads" | grep -o "<Key>${1:-}[^<]*</Key>" | tr '\n' ' ' || true; }
temps_left() { find "$root/bkt" -name '.oss-emulator-tmp-*' | tr '\n' ' '; }

# ------------------------------------------------------------------ 1. real writers

wsame cp-r cp "cp -r '$src' @/cp"
# (overwriting objects: O_TRUNC onto an existing object, a smaller and a larger file)
wsame cp-overwrite cp "cp '$src/a/hello.txt' @/cp/big.bin && cp '$src/big.bin' @/cp/a/hello.txt"
wsame tar-x tarx "mkdir @/tarx && tar xf '$work/archive.tar' -C @/tarx"
wsame dd dd "mkdir -p @/dd && dd if='$src/big.bin' of=@/dd/big bs=1M && dd if='$src/a/b/c/odd.bin' of=@/dd/odd bs=1M"
wsame dd-fsync dd "dd if='$src/a/b/c/odd.bin' of=@/dd/sync bs=1M seek=0 conv=fsync"
wsame shell-redirect redir "mkdir @/redir && echo one > @/redir/t && echo two > @/redir/t && cat @/redir/t && cat '$src/a/one-mib.bin' > @/redir/m"
# _exit: dash ends `sh -c` with it; Python's os._exit in a forked child and in the parent.
wsame exit-sh exit "mkdir @/exit && sh -c 'echo hi' > @/exit/sh && dash -c 'printf x; exec >&-' > @/exit/dash"
# exec of a program that inherits a redirect into the prefix: what the shell wrote before the
# exec stays (it was lost: the new program's open truncated the object). dash and bash, stdout and
# stderr, >> onto an existing object, two execs in a row, a multipart first part, a python exec.
wsame exec-keeps exec "mkdir @/exec && sh -c 'echo a; exec cat /etc/hostname' > @/exec/dash &&
  bash -c 'echo b; exec cat /etc/hostname' > @/exec/bash && sh -c 'echo e >&2; exec cat /etc/hostname >&2' 2> @/exec/err &&
  echo start > @/exec/app && sh -c 'echo a; exec cat /etc/hostname' >> @/exec/app &&
  sh -c 'echo 1; exec sh -c \"echo 2; exec echo 3\"' > @/exec/two && sh -c 'exec echo only' > @/exec/only &&
  sh -c \"cat '$src/a/b/c/odd.bin'; exec cat '$src/a/hello.txt'\" > @/exec/big &&
  $py -c 'import os, sys; sys.stdout.write(\"py\\n\"); sys.stdout.flush(); os.execv(\"/bin/echo\", [\"echo\", \"then\"])' > @/exec/py &&
  cat @/exec/dash @/exec/app @/exec/two"
wsame exit-py exit2 "mkdir @/exit2 && $py -c 'import os, sys
f = open(sys.argv[1], \"w\"); f.write(\"never closed\"); f.flush()
pid = os.fork()
if pid == 0:
    os.write(1, b\"child\\n\"); os._exit(0)
os.waitpid(pid, 0); os.write(1, b\"parent\\n\"); os._exit(3)' @/exit2/f > @/exit2/out; echo rc=\$?"
wsame copyfileobj py "mkdir @/py && $py '$helpers' copyfileobj '$src/big.bin' @/py/copy.bin && $py '$helpers' copyfileobj '$src/empty.dat' @/py/empty"

vrun mkdir /oss/bkt/fsync || bad "mkdir /oss/bkt/fsync failed"
pycheck fsync fsync_write /oss/bkt/fsync

# The downloader: model.bin.incomplete written, fsynced and replaced.
pycheck download download /oss/bkt/dl "$src/a/b/c/odd.bin"
[ "$(emu_ls dl)" == "model.bin " ] && ok || bad "download: the emulator holds [$(emu_ls dl)], want model.bin only"
cmp -s "$src/a/b/c/odd.bin" "$root/bkt/dl/model.bin" && ok || bad "download: the emulator's dl/model.bin differs from the source"
out=$(vrun ls -A /oss/bkt/dl 2>&1) && [ "$out" == model.bin ] && ok || bad "download: ls in a new process: [$out]"

# numpy and torch: the same bytes as saved locally, and loaded back equal.
wsame numpy np "mkdir @/np && $py '$helpers' numpy_save @/np/a.npy"
pycheck np.load numpy_check /oss/bkt/np/a.npy
wsame torch pt "mkdir @/pt && $py '$helpers' torch_save @/pt/sd.pt"
pycheck torch.load torch_check /oss/bkt/pt/sd.pt

# sqlite3: random writes, a journal, locks; the same rows through the shim, in the object and locally.
mkdir -p "$lb/db"
"$py" "$helpers" sqlite_write "$lb/db/test.db"
want=$("$py" "$helpers" sqlite_dump "$lb/db/test.db")
if out=$(vrun bash -c "mkdir /oss/bkt/db && $py '$helpers' sqlite_write /oss/bkt/db/test.db" 2>&1); then ok; else bad "sqlite3 write through the shim failed: $out"; fi
got=$(vrun "$py" "$helpers" sqlite_dump /oss/bkt/db/test.db 2>&1) || true
[ "$got" == "$want" ] && ok || bad "sqlite3 read through the shim: [$got] want [$want]"
cp "$root/bkt/db/test.db" "$work/copy.db" 2> /dev/null || true
got=$("$py" "$helpers" sqlite_dump "$work/copy.db" 2>&1) || true
[ "$got" == "$want" ] && ok || bad "sqlite3 read of the emulator's copy of the object: [$got] want [$want]"
[ "$(emu_ls db)" == "test.db " ] && ok || bad "sqlite3 left [$(emu_ls db)] in db/ (want test.db only)"

# ------------------------------------------------------------------ 2. namespace

pycheck namespace namespace /oss/bkt/ns "$root/bkt/ns"
out=$(vrun ls /oss/bkt/ns 2>&1 | tr '\n' ' ') || true
[ "$out" == "b.txt d1 d2 fresh.txt plain r2 " ] && ok || bad "namespace: ls in a new process: [$out]"
wsame mkdir-exists mk "mkdir @/mk && mkdir @/mk; echo \$?; mkdir -p @/mk/a/b && ls -R @/mk"
wsame rmdir-notempty mk "mkdir @/mk/full && echo x > @/mk/full/x && rmdir @/mk/full; echo \$?; rm @/mk/full/nope; echo \$?"
wsame mv mvt "mkdir -p @/mvt/dir/sub && echo a > @/mvt/a.txt && echo b > @/mvt/dir/b.txt && echo c > @/mvt/dir/sub/c &&
  echo old > @/mvt/dir/old && mv @/mvt/a.txt @/mvt/a2.txt && mv @/mvt/dir @/mvt/dir2 && mv @/mvt/a2.txt @/mvt/dir2/ &&
  mv -f @/mvt/dir2/b.txt @/mvt/dir2/old && ls -R @/mvt"
wsame rm-r mvt "mkdir -p @/mvt/gone/x/y && echo 1 > @/mvt/gone/x/y/1 && echo 2 > @/mvt/gone/2 && rm -r @/mvt/gone && ls @/mvt"
wsame touch-chmod mvt "touch @/mvt/t && touch -d 2001-01-01 @/mvt/dir2/old && chmod 600 @/mvt/t && cat @/mvt/dir2/old"

# ------------------------------------------------------------------ 3. read-your-writes across processes

mkdir -p "$root/bkt/ryw"
printf 'doomed\n' > "$root/bkt/ryw/victim"
printf 'version 1\n' > "$root/bkt/ryw/over"
export OSSSHIM_ATTR_TTL=60s OSSSHIM_NEGATIVE_TTL=60s
pids=()
for m in create unlink overwrite; do
  case $m in create) p=new.txt ;; unlink) p=victim ;; overwrite) p=over ;; esac
  vrun "$py" "$helpers" ryw "/oss/bkt/ryw/$p" "$work/ryw.go" "$work/ryw.$m.ready" $m > "$work/ryw.$m" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1200); do [ -e "$work/ryw.create.ready" ] && [ -e "$work/ryw.unlink.ready" ] && [ -e "$work/ryw.overwrite.ready" ] && break; sleep 0.05; done
vrun bash -c 'echo created > /oss/bkt/ryw/new.txt && rm /oss/bkt/ryw/victim && echo "version 2, longer" > /oss/bkt/ryw/over' ||
  bad "read-your-writes: the writer failed"
touch "$work/ryw.go"
for i in 0 1 2; do wait "${pids[$i]}" || true; done
for m in create unlink overwrite; do
  collect "read-your-writes ($m)" "$work/ryw.$m"
  grep -q '^ok\|^FAIL' "$work/ryw.$m" || bad "read-your-writes ($m): $(tail -3 "$work/ryw.$m")"
done
unset OSSSHIM_ATTR_TTL OSSSHIM_NEGATIVE_TTL

# ------------------------------------------------------------------ 4. injected upload failures

# A directory marker (as mkdir through the shim makes): the wrong-CRC cases store and then delete
# an object, and an implied directory would vanish with its last object, as in OSS.
vrun mkdir /oss/bkt/fault || bad "mkdir /oss/bkt/fault failed"
head -c 1000 /dev/urandom > "$src/small.bin"
# fault_case NAME SPEC PATTERN PYERRNO BIG: with the fault armed, dd, cp and Python each write
# one file (BIG: 20 MiB, multipart; else 1000 bytes); each must fail with PATTERN (the local
# message of the errno) and leave no object, no temp file and no multipart upload behind.
fault_case() {
  local name=$1 spec=$2 pattern=$3 pyerrno=$4 big=$5 f=$src/small.bin size=1000 w rc t
  [ "$big" == big ] && f=$src/big.bin size=$((3 << 20))
  arm "$spec" || return 0
  for w in dd cp py; do
    t=/oss/bkt/fault/$name-$w
    rc=0
    case $w in
      dd) OSSSHIM_RETRIES=1 vrun dd if="$f" of=$t bs=1M status=none 2> "$work/err" || rc=$? ;;
      cp) OSSSHIM_RETRIES=1 vrun cp "$f" $t 2> "$work/err" || rc=$? ;;
      py) OSSSHIM_RETRIES=1 vrun "$py" "$helpers" write_file $t $size 2> "$work/err" || rc=$? ;;
    esac
    local msg
    msg=$(strip_log "$work/err" | tail -1)
    if [ $rc == 0 ]; then
      bad "fault $name: $w wrote $t successfully"
    elif case $w in
      dd) [[ "$msg" =~ ^dd:\ (error\ writing|closing\ output\ file|fsync\ failed\ for)\ \'$t\':\ ($pattern)$ ]] ;;
      cp) [[ "$msg" =~ ^cp:\ (error\ writing|failed\ to\ close|error\ copying\ \'[^\']*\'\ to)\ \'$t\':\ ($pattern)$ ]] ;;
      py) [[ "$msg" =~ ^OSError:\ \[Errno\ ($pyerrno)\]\ ($pattern)$ ]] ;;
    esac; then ok; else
      bad "fault $name: $w exit $rc, message [$msg], want ($pattern)"
    fi
  done
  disarm
  for w in dd cp py; do
    [ -e "$root/bkt/fault/$name-$w" ] && bad "fault $name: $w left the object fault/$name-$w in the emulator" || ok
  done
  out=$(vrun bash -c 'for t; do [ -e "$t" ] && echo "$t"; done; true' _ /oss/bkt/fault/$name-{dd,cp,py} 2>&1) || true
  [ -z "$out" ] && ok || bad "fault $name: through the shim these exist afterwards: $out"
  out=$(uploads_left "fault/$name-")
  [ -z "$out" ] && ok || bad "fault $name: multipart uploads left: $out"
  out=$(temps_left)
  [ -z "$out" ] && ok || bad "fault $name: temp files left: $out"
}
eio='Input/output error'
quota='Disk quota exceeded|No space left on device'
fault_case upload-part-500 'error_status=500&ops=UploadPart' "$eio" 5 big
fault_case complete-500 'error_status=500&ops=CompleteMultipartUpload' "$eio" 5 big
fault_case initiate-500 'error_status=500&ops=InitiateMultipartUpload' "$eio" 5 big
fault_case put-500 'error_status=500&ops=PutObject' "$eio" 5 small
fault_case reset 'reset_upload_after=300k&ops=UploadPart' "$eio" 5 big
fault_case quota-multipart 'error_status=403&error_code=QuotaExceeded&ops=UploadPart' "$quota" '122|28' big
fault_case quota-put 'error_status=403&error_code=QuotaExceeded&ops=PutObject' "$quota" '122|28' small
fault_case wrong-crc-put 'wrong_crc=1&ops=PutObject' "$eio" 5 small
fault_case wrong-crc-complete 'wrong_crc=1&ops=CompleteMultipartUpload' "$eio" 5 big
# A burst of 503s shorter than the retries is absorbed: the upload succeeds.
arm 'error_status=503&error_count=2&ops=UploadPart,PutObject' &&
vrun cp "$src/a/b/c/odd.bin" /oss/bkt/fault/burst 2> "$work/err" && cmp -s "$src/a/b/c/odd.bin" "$root/bkt/fault/burst" && ok ||
  bad "two 503s on upload were not absorbed: $(strip_log "$work/err")"
disarm

# ------------------------------------------------------------------ 5. concurrency

for i in 0 1 2 3; do head -c $((8 << 20)) /dev/urandom > "$src/conc$i"; done
vrun mkdir /oss/bkt/conc || bad "mkdir /oss/bkt/conc failed"
pids=()
vrun dd if="$src/conc0" of=/oss/bkt/conc/f0 bs=1M status=none 2> "$work/conc0.err" & pids+=($!)
vrun cp "$src/conc1" /oss/bkt/conc/f1 2> "$work/conc1.err" & pids+=($!)
vrun "$py" "$helpers" copyfileobj "$src/conc2" /oss/bkt/conc/f2 2> "$work/conc2.err" & pids+=($!)
vrun bash -c 'cat "$0" > /oss/bkt/conc/f3' "$src/conc3" 2> "$work/conc3.err" & pids+=($!)
for i in 0 1 2 3; do
  wait "${pids[$i]}" || bad "concurrent writer $i failed: $(strip_log "$work/conc$i.err")"
done
for i in 0 1 2 3; do
  cmp -s "$src/conc$i" "$root/bkt/conc/f$i" && ok || bad "concurrent writer $i: the emulator's conc/f$i differs"
done
want=$(cd "$src" && sha256sum conc0 conc1 conc2 conc3 | cut -c1-64)
got=$(vrun sha256sum /oss/bkt/conc/f0 /oss/bkt/conc/f1 /oss/bkt/conc/f2 /oss/bkt/conc/f3 | cut -c1-64) || true
[ "$got" == "$want" ] && ok || bad "concurrent writers: read back through the shim: $got"

# O_EXCL: two processes race to create the same 8 files; one wins each, at open.
vrun mkdir /oss/bkt/excl || bad "mkdir /oss/bkt/excl failed"
t0=$(($(date +%s) + 3))
excl_paths=(/oss/bkt/excl/{0,1,2,3,4,5,6,7})
vrun "$py" "$helpers" excl $t0 A "${excl_paths[@]}" > "$work/excl.A" 2> "$work/excl.A.err" & pa=$!
vrun "$py" "$helpers" excl $t0 B "${excl_paths[@]}" > "$work/excl.B" 2> "$work/excl.B.err" & pb=$!
wait $pa $pb || true
for i in 0 1 2 3 4 5 6 7; do
  a=$(grep "^$i " "$work/excl.A" | cut -d' ' -f2- || true)
  b=$(grep "^$i " "$work/excl.B" | cut -d' ' -f2- || true)
  content=$(cat "$root/bkt/excl/$i" 2> /dev/null) || true
  if [ "$a" == created ] && [ "$b" == "open EEXIST" ] && [ "$content" == "winner A" ]; then ok
  elif [ "$b" == created ] && [ "$a" == "open EEXIST" ] && [ "$content" == "winner B" ]; then ok
  else bad "O_EXCL race $i: A [$a], B [$b], object holds [$content] $(strip_log "$work/excl.A.err" | tail -2) $(strip_log "$work/excl.B.err" | tail -2)"; fi
done

# ------------------------------------------------------------------ C++ and stdio writers
mkdir -p "$lb/cxx"
vrun mkdir /oss/bkt/cxx || bad "mkdir /oss/bkt/cxx failed"
cxx=$OSSSHIM_BUILD_ROOT/tests/shim/cxx_write
"$cxx" "$lb/cxx" > "$work/cxx.local" 2>&1 || bad "cxx_write failed locally: $(cat "$work/cxx.local")"
vrun "$cxx" /oss/bkt/cxx > "$work/cxx.shim" 2>&1 || bad "cxx_write failed under the shim: $(strip_log "$work/cxx.shim")"
diff -r -x .ossemu-marker "$lb/cxx" "$root/bkt/cxx" > "$work/cxx.diff" && ok || bad "cxx_write: objects differ: $(head -5 "$work/cxx.diff")"

# ------------------------------------------------------------------ locks between processes
# flock and fcntl locks on a virtual path hold between processes of the node (downloaders
# lock files beside their targets).
vrun mkdir /oss/bkt/locks || bad "mkdir /oss/bkt/locks failed"
lock_probe='
import fcntl, os, sys, time
kind, path, role = sys.argv[1:4]
f = open(path, "a")
lock = (lambda op: fcntl.flock(f, op)) if kind == "flock" else (lambda op: fcntl.lockf(f, op))
def wait_for(name):  # bounded: 30 s, however loaded the machine
    for _ in range(600):
        if os.path.exists(path + name): return
        time.sleep(0.05)
    sys.exit(f"{role}: {name} never appeared")
if role == "hold":
    lock(fcntl.LOCK_EX); open(path + ".held", "w").close()
    wait_for(".tried")  # the other process tried while this one held the lock
    time.sleep(0.3); lock(fcntl.LOCK_UN); os.unlink(path + ".held"); print("released")
else:
    wait_for(".held")
    try: lock(fcntl.LOCK_EX | fcntl.LOCK_NB); print("got it while held")
    except OSError as e: print("busy", e.errno == 11)
    open(path + ".tried", "w").close()
    lock(fcntl.LOCK_EX); print("got it after release"); os.unlink(path + ".tried")
'
for kind in flock lockf; do
  vrun "$py" -c "$lock_probe" $kind /oss/bkt/locks/$kind.lock hold > "$work/lock.hold" 2>&1 & holder=$!
  out=$(vrun "$py" -c "$lock_probe" $kind /oss/bkt/locks/$kind.lock wait 2>&1) || true
  wait $holder || true
  [ "$out" == $'busy True\ngot it after release' ] && ok || bad "$kind between processes: $out / $(cat "$work/lock.hold")"
done

# ------------------------------------------------------------------ rewrites while streaming
# Python zipfile on a write-only file object seeks back to fix each member's header: bytes not yet
# handed to an upload are patched in memory, so a streamed file takes it (members < part size).
zip_probe='
import sys, zipfile
with open(sys.argv[1], "wb") as f, zipfile.ZipFile(f, "w") as z:
    for i in range(6):
        z.writestr(zipfile.ZipInfo(f"m{i}", date_time=(2020, 1, 1, 0, 0, 0)), bytes([i]) * 300000)
'
mkdir -p "$lb/zip"
"$py" -c "$zip_probe" "$lb/zip/z.zip"
vrun mkdir /oss/bkt/zip || bad "mkdir /oss/bkt/zip failed"
vrun "$py" -c "$zip_probe" /oss/bkt/zip/z.zip 2> "$work/zip.err" || bad "zipfile on a streamed file: $(strip_log "$work/zip.err")"
cmp -s "$lb/zip/z.zip" "$root/bkt/zip/z.zip" && ok || bad "zipfile on a streamed file: the stored zip differs from the local one"

# Turning back further than memory holds: zipfile and np.savez over a "wb" file object with
# members of several parts, a pwrite at offset 0 and an ftruncate after 5 parts were uploaded.
# Uploaded parts have a local copy (the spool), which becomes the staging file: each result must
# equal the local one, and the abandoned multipart upload must be gone.
back_probe='
import io, os, sys, zipfile
import numpy as np
kind, path = sys.argv[1:3]
data = bytes(range(256)) * (20 << 12)  # 5 MiB
if kind == "zip":
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as z:
        for i in range(2):
            z.writestr(zipfile.ZipInfo(f"m{i}", date_time=(2020, 1, 1, 0, 0, 0)), data[i:] + bytes(i))
elif kind == "savez":
    with open(path, "wb") as f:
        np.savez(f, a=np.arange(1 << 20, dtype=np.float32), b=np.ones((3, 1 << 20), dtype=np.int8))
else:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    if kind == "pwrite": os.pwrite(fd, b"HEADER", 0); os.write(fd, b"tail")
    else: os.ftruncate(fd, 3 << 20)
    os.close(fd)
'
mkdir -p "$lb/back"
vrun mkdir /oss/bkt/back || bad "mkdir /oss/bkt/back failed"
for kind in zip savez pwrite ftruncate; do
  "$py" -c "$back_probe" $kind "$lb/back/$kind"
  OSSSHIM_LOG=info vrun "$py" -c "$back_probe" $kind /oss/bkt/back/$kind 2> "$work/back.err" ||
    bad "$kind behind the uploaded parts: $(strip_log "$work/back.err")"
  cmp -s "$lb/back/$kind" "$root/bkt/back/$kind" && ok ||
    bad "$kind behind the uploaded parts: the stored object differs from the local file"
  grep -q "back/$kind: turned back after .* were uploaded; continuing from its local copy" "$work/back.err" && ok ||
    bad "$kind behind the uploaded parts: no log line says the file switched to its local copy: $(head -3 "$work/back.err")"
done
out=$(uploads_left back/)
[ -z "$out" ] && ok || bad "turning back: multipart uploads left: $out"
# Reading a file while this process writes it, through another descriptor (read, fstat, mmap):
# what was written so far, as on a local file system, for a new small file, a streamed
# multipart one, and one replacing an existing object; then more writes, and the stored result.
read_probe='
import hashlib, mmap, os, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(bytes(range(256)) * n); f.flush()
    with open(path, "rb") as g:
        data = g.read()
        m = mmap.mmap(g.fileno(), 0, access=mmap.ACCESS_READ)
        print(len(data), os.fstat(g.fileno()).st_size, hashlib.sha256(data).hexdigest(), m[:] == data)
        m.close()
    f.write(b"more")
print(os.stat(path).st_size)
'
for case in small:3 streamed:20000 replace:5; do
  n=${case#*:} name=${case%:*}
  [ $name == replace ] && printf 'old content, longer than the new\n%.0s' {1..100} | tee "$lb/back/$name" > "$root/bkt/back/$name"
  l=$("$py" -c "$read_probe" "$lb/back/$name" $n 2>&1) || true
  v=$(vrun "$py" -c "$read_probe" /oss/bkt/back/$name $n 2>&1) || true
  [ "$l" == "$v" ] && cmp -s "$lb/back/$name" "$root/bkt/back/$name" && ok ||
    bad "reading while writing ($name): shim [$v], local [$l]"
done
# Preallocating downloaders: aria2c with 4 connections writing segments out of order, after
# posix_fallocate (falloc) or after growing the file (trunc); util-linux fallocate; Python's
# posix_fallocate then writes into the reserved size. Punching holes is not supported.
cp "$src/big.bin" "$root/bkt/back/aria-src"
for fa in falloc trunc; do
  vrun aria2c -q -x4 -s4 --min-split-size=1M --file-allocation=$fa -d /oss/bkt/back -o aria-$fa \
    "$endpoint/bkt/back/aria-src" > "$work/aria.out" 2>&1 &&
    cmp -s "$src/big.bin" "$root/bkt/back/aria-$fa" && [ ! -e "$root/bkt/back/aria-$fa.aria2" ] && ok ||
    bad "aria2c --file-allocation=$fa into the prefix: $(tail -3 "$work/aria.out")"
done
wsame "fallocate -l" "" 'fallocate -l 3M @/back/falloc && stat -c %s @/back/falloc && fallocate -n -l 9M @/back/falloc && stat -c %s @/back/falloc'
cmp -s "$lb/back/falloc" "$root/bkt/back/falloc" && ok || bad "fallocate -l: the stored object differs"
vrun fallocate -p -o 0 -l 1M /oss/bkt/back/falloc 2> "$work/err" && bad "fallocate -p (punch hole) succeeded" ||
  { grep -q "unsupported" "$work/err" && ok || bad "fallocate -p: $(cat "$work/err")"; }
falloc_probe='
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.posix_fallocate(fd, 0, 3 << 20)
print(os.fstat(fd).st_size)
os.pwrite(fd, b"end", (3 << 20) - 3); os.pwrite(fd, b"start", 0)
os.posix_fallocate(fd, 0, 10)
try: os.posix_fallocate(fd, -1, 10)
except OSError as e: print(e)
os.close(fd)
fd = os.open(sys.argv[1], os.O_RDONLY)
try: os.posix_fallocate(fd, 0, 10)
except OSError as e: print(e)
'
wsame "posix_fallocate" "" "$py -c '$falloc_probe' @/back/pyfalloc"
cmp -s "$lb/back/pyfalloc" "$root/bkt/back/pyfalloc" && ok || bad "posix_fallocate: the stored object differs"
# A staged file uploads each part once it is completely written, in any order, while the program
# goes on (parts 3, 1 and 4 are listed by the server before close); a part written again after
# that, and the part a truncation cuts, go again at close; parts past the end are left out.
early_probe='
import os, random, sys, time, urllib.request
path, endpoint, key = sys.argv[1:4]
P = 1 << 20
data = random.Random(7).randbytes(9 * P // 2)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, data[2 * P:3 * P], 2 * P)
os.pwrite(fd, data[:P // 2], 0); os.pwrite(fd, data[P // 2:P], P // 2)
os.pwrite(fd, data[3 * P:], 3 * P)
if endpoint != "-":
    def listed():
        ups = urllib.request.urlopen(endpoint + "/bkt/?uploads").read().decode()
        if "<Key>" + key + "</Key>" not in ups: return []
        uid = ups.split("<Key>" + key + "</Key>")[1].split("<UploadId>")[1].split("</UploadId>")[0]
        parts = urllib.request.urlopen(f"{endpoint}/bkt/{key}?uploadId={uid}").read().decode()
        return sorted(int(p.split("</PartNumber>")[0]) for p in parts.split("<PartNumber>")[1:])
    for _ in range(100):
        if len(listed()) >= 3: break
        time.sleep(0.1)
    print("uploaded before close:", listed())
os.pwrite(fd, b"X" * 10, 100)
os.pwrite(fd, data[P:2 * P], P)
os.ftruncate(fd, 7 * P // 2)
os.close(fd)
'
"$py" -c "$early_probe" "$lb/back/early" - - > /dev/null
out=$(vrun "$py" -c "$early_probe" /oss/bkt/back/early "$endpoint" back/early 2>&1) || true
[ "$out" == "uploaded before close: [1, 3, 4]" ] && cmp -s "$lb/back/early" "$root/bkt/back/early" &&
  [ -z "$(uploads_left back/early)" ] && ok || bad "staged parts uploaded early: [$out], stored object equal: $(cmp "$lb/back/early" "$root/bkt/back/early" 2>&1)"
# Changing an existing object: appending ("ab", shell >>) copies its untouched parts server-side
# (UploadPartCopy) and fetches only the part the append starts in; an in-place pwrite moves one
# part each way; reads, truncations and growth of the staged file see the right bytes.
emu_stat() { curl -s "$endpoint/_admin/stats" | sed -E "s/.*\"$1\":([0-9]+).*/\1/"; }
change_probe='
import os, sys
path, kind = sys.argv[1:3]
P = 1 << 20
if kind == "append":
    with open(path, "ab") as f: f.write(b"appended " * 1000)
elif kind == "inplace":
    fd = os.open(path, os.O_RDWR); os.pwrite(fd, b"CHANGED", 3 * P + 12345); os.close(fd)
else:
    fd = os.open(path, os.O_RDWR)
    print(os.pread(fd, 16, 4 * P + 7).hex(), os.pread(fd, 8, 6 * P - 4).hex())
    os.ftruncate(fd, 5 * P // 2); os.ftruncate(fd, 4 * P); os.pwrite(fd, b"after", 5 * P)
    print(os.pread(fd, 8, 5 * P // 2 - 4).hex(), os.fstat(fd).st_size)
    os.close(fd)
'
for kind in append inplace reshape; do
  head -c $((6 << 20)) /dev/urandom | tee "$lb/back/$kind" > "$root/bkt/back/$kind"
  l=$("$py" -c "$change_probe" "$lb/back/$kind" $kind 2>&1) || true
  in0=$(emu_stat bytes_in) out0=$(emu_stat bytes_out)
  v=$(vrun "$py" -c "$change_probe" /oss/bkt/back/$kind $kind 2>&1) || true
  sent=$(($(emu_stat bytes_in) - in0)) fetched=$(($(emu_stat bytes_out) - out0))
  [ "$l" == "$v" ] && cmp -s "$lb/back/$kind" "$root/bkt/back/$kind" && ok ||
    bad "changing an object ($kind): shim [$v], local [$l]; stored equal: $(cmp "$lb/back/$kind" "$root/bkt/back/$kind" 2>&1)"
  case $kind in  # 1 MiB parts of a 6 MiB object
    append) [ $sent -lt $((1 << 20)) ] && [ $fetched -lt $((1 << 20)) ] ;;
    inplace) [ $sent -le $(((1 << 20) + 65536)) ] && [ $fetched -le $(((1 << 20) + 65536)) ] ;;
    reshape) [ $sent -le $(((3 << 20) + 65536)) ] ;;  # parts 1-2 copied; 3-6 cut or grown
  esac && ok || bad "changing an object ($kind): sent $sent bytes and fetched $fetched for a 6 MiB object"
done
# Without the spool (spool_writes off; a staging directory in memory; no room beyond the reserve)
# streaming still works, and turning back fails with EIO, the reason in the log, nothing stored.
# no_spool NAME REASON VAR=VALUE...
no_spool() {
  local name=$1 reason=$2 rc
  shift 2
  env "$@" "$ossrun_bin" -- "$py" -c "$back_probe" pwrite /oss/bkt/back/$name 2> "$work/back.err" && rc=0 || rc=$?
  [ $rc != 0 ] && [[ "$(strip_log "$work/back.err" | tail -1)" == "OSError: [Errno 5] Input/output error" ]] && ok ||
    bad "no spool ($name): exit $rc, $(strip_log "$work/back.err" | tail -1)"
  grep -qF "already uploaded with no local copy ($reason" "$work/back.err" && ok ||
    bad "no spool ($name): the log does not give the reason: $(head -3 "$work/back.err")"
  [ ! -e "$root/bkt/back/$name" ] && [ -z "$(uploads_left back/$name)" ] && ok ||
    bad "no spool ($name): an object or upload was left"
  env "$@" "$ossrun_bin" -- cp "$src/big.bin" /oss/bkt/back/$name-cp 2> "$work/back.err" &&
    cmp -s "$src/big.bin" "$root/bkt/back/$name-cp" && ok ||
    bad "no spool ($name): a sequential cp failed: $(strip_log "$work/back.err")"
}
no_spool off 'spool_writes is off' OSSSHIM_SPOOL_WRITES=false
no_spool shm 'the staging directory /dev/shm/' "OSSSHIM_STAGING_DIR=/dev/shm/ossshim-write-test-$$"
no_spool reserve 'staging needs' OSSSHIM_STAGING_RESERVE=1000000g
rm -rf "/dev/shm/ossshim-write-test-$$"

# ------------------------------------------------------------------ a file handed to a child
# subprocess(stdout=f): the exec'd child writes the parent's file; the parent's close afterwards
# must not commit its own empty version over the child's output.
vrun mkdir /oss/bkt/sub || bad "mkdir /oss/bkt/sub failed"
out=$(vrun "$py" -c '
import subprocess
with open("/oss/bkt/sub/out.txt", "w") as f:
    subprocess.run(["seq", "5"], stdout=f, check=True)
print(" ".join(open("/oss/bkt/sub/out.txt").read().split()))
' 2>&1) || true
[ "$out" == "1 2 3 4 5" ] && [ "$(cat "$root/bkt/sub/out.txt" 2>&1)" == "$(seq 5)" ] && ok ||
  bad "subprocess stdout=f: read back [$out], stored [$(cat "$root/bkt/sub/out.txt" 2>&1)]"

# ------------------------------------------------------------------ 6. descriptor errors

mkdir -p "$root/bkt/bad" "$lb/bad"
printf 'keep me\n' | tee "$root/bkt/bad/ro" > "$lb/bad/ro"
pycheck "descriptor errors" bad_fds /oss/bkt/bad/ro /oss/bkt/nodir/x
wsame write-to-read-only bad "exec 3< @/bad/ro; echo hi >&3; echo \$?; cat @/bad/ro"
wsame create-under-missing-dir bad "echo hi > @/nodir/x; echo \$?; cp '$src/a/hello.txt' @/nodir/y; echo \$?; dd if=/dev/null of=@/nodir/z status=none"
[ ! -e "$root/bkt/nodir" ] && ok || bad "writing under a missing directory created $(find "$root/bkt/nodir")"

finish
