#!/bin/bash
# Programs whose calls used to escape the shim, each run on a local directory and on /oss/bkt:
# the same exit status and output, and the emulator's objects equal the local files byte for
# byte. Extended attributes (cp -a/-p, install, mv set ACLs), temporary files (mkstemp: sed -i,
# perl -i, sort -o, git), and directory fds of the prefix's ancestors (rsync).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt"
start_emulator
lb=$work/local  # the local directory the same programs write to
src=$work/src
mkdir -p "$lb" "$src/a/b" "$src/empty dir"
head -c $((3 << 20)) /dev/urandom > "$src/a/b/three-mib.bin"
printf 'hello\nworld\n' > "$src/a/hello.txt"
printf '#!/bin/sh\necho hi\n' > "$src/a/run.sh" && chmod 755 "$src/a/run.sh"
printf 'c\nb\na\n' > "$src/unsorted.txt"
: > "$src/empty.dat"

vrun() { "$ossrun_bin" -- "$@"; }
marker=.ossemu-marker  # the emulator's directory-marker file (the object "dir/")
emu_ls() { ls -A "$root/bkt/$1" 2>&1 | grep -vx "$marker" | tr '\n' ' '; }
strip_log() { grep -v '^ossshim\[' "$1" || true; }
# tree_cmd (bash -c "$tree_cmd" DIR): types, file sizes and checksums under DIR, locally or under the shim.
tree_cmd='cd "$0" && find . -type d -printf "d %p\n" -o -printf "%y %s %p\n" | LC_ALL=C sort &&
  find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum'
# same_tree NAME DIR: bucket directory DIR in the emulator's root equals $lb/DIR byte for byte,
# and reads back through the shim as the local one does.
same_tree() {
  local name=$1 dir=$2
  if diff -r -x "$marker" "$lb/$dir" "$root/bkt/$dir" > "$work/diff" 2>&1; then ok; else
    bad "$name: the emulator's $dir differs from the local result: $(head -5 "$work/diff")"
  fi
  bash -c "$tree_cmd" "$lb/$dir" > "$work/tree.l" 2>&1 || true
  vrun bash -c "$tree_cmd" "/oss/bkt/$dir" > "$work/tree.v" 2> "$work/tree.err" || true
  if cmp -s "$work/tree.l" "$work/tree.v"; then ok; else
    bad "$name: /oss/bkt/$dir reads back differently through the shim: $(diff "$work/tree.l" "$work/tree.v" | head -8) $(strip_log "$work/tree.err" | head -3)"
  fi
}

# wsame NAME DIR 'COMMAND with @ for the bucket directory': the same exit status, stdout and
# stderr (paths and dd's speed aside) under the shim on /oss/bkt as locally on $lb; then
# same_tree NAME DIR (DIR empty: no tree check).
wsame() {
  local name=$1 dir=$2 cmd=$3 lrc=0 vrc=0
  (cd "$work" && bash -c "${cmd//@/$lb}") > "$work/l.out" 2> "$work/l.err" || lrc=$?
  (cd "$work" && vrun bash -c "${cmd//@//oss/bkt}") > "$work/v.out" 2> "$work/v.err" || vrc=$?
  strip_log "$work/v.err" > "$work/v.err2"
  sed -i -E "s#$lb#@#g; s#/oss/bkt#@#g; s#copied, .*#copied#" "$work/l.out" "$work/v.out" "$work/l.err" "$work/v.err2"
  if [ "$lrc" != "$vrc" ]; then
    bad "$name: exit $vrc under the shim, $lrc locally: $(head -5 "$work/v.err")"
  elif ! cmp -s "$work/l.out" "$work/v.out"; then
    bad "$name: output differs: $(diff "$work/l.out" "$work/v.out" | head -10)"
  elif ! cmp -s "$work/l.err" "$work/v.err2"; then
    bad "$name: errors differ: $(diff "$work/l.err" "$work/v.err2" | head -10)"
  else ok; fi
  if [ -n "$dir" ]; then same_tree "$name" "$dir"; fi
}

# ------------------------------------------------------------------ extended attributes
# (cp -a, cp -p, install and mv set system.posix_acl_access on what they copy)
wsame cp-a cpa "cp -a '$src' @/cpa"
wsame cp-p cpp "mkdir @/cpp && cp -p '$src/a/hello.txt' '$src/a/run.sh' @/cpp/"
wsame install-D inst "install -m 644 -D '$src/a/hello.txt' @/inst/deep/hello.txt && install -m 755 '$src/a/run.sh' @/inst/"
cp -a "$src" "$work/mvsrc.l" && cp -a "$src" "$work/mvsrc.v"
wsame mv-in mv "mkdir @/mv && mv \"\$([ @ == /oss/bkt ] && echo '$work/mvsrc.v' || echo '$work/mvsrc.l')\" @/mv/moved"

# ------------------------------------------------------------------ temporary files (mkstemp)
wsame sed-i tmp "mkdir @/tmp && cp '$src/a/hello.txt' '$src/unsorted.txt' @/tmp/ && sed -i 's/world/there/' @/tmp/hello.txt"
wsame perl-i tmp "perl -i -pe 's/hello/HELLO/' @/tmp/hello.txt"
wsame sort-o tmp "sort -o @/tmp/unsorted.txt @/tmp/unsorted.txt && sort @/tmp/unsorted.txt"
# git: temporary objects, lock files and renames (no tree check: .git/index records inodes and
# times; fixed dates make the commit hashes comparable)
export GIT_AUTHOR_DATE='2001-02-03T04:05:06Z' GIT_COMMITTER_DATE='2001-02-03T04:05:06Z'
wsame git "" "mkdir @/git && cd @/git && git init -q && cp '$src/a/hello.txt' . && git add hello.txt &&
  git -c user.name=t -c user.email=t@e commit -qm one && git log --format=%T && git cat-file -p HEAD && git ls-tree -r HEAD && git status --short"

finish
