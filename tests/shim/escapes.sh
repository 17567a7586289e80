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
source "$(dirname "$0")/compare.sh"

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
