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
# git clone into the prefix (a local repository with two commits), then its history and files.
repo=$work/repo
git init -q "$repo" && cp "$src/a/hello.txt" "$repo/" && git -C "$repo" add hello.txt &&
  git -C "$repo" -c user.name=t -c user.email=t@e commit -qm one &&
  cp "$src/unsorted.txt" "$repo/" && git -C "$repo" add unsorted.txt &&
  git -C "$repo" -c user.name=t -c user.email=t@e commit -qm two
wsame git-clone "" "git clone -q '$repo' @/clone && cd @/clone && git log --format='%H %s' && git fsck --no-progress &&
  git status --short && cat hello.txt unsorted.txt"

# ------------------------------------------------------------------ directory fds of the prefix's ancestors
# rsync opens "/" and walks down with openat/fstatat on "oss", "bkt", ...; a tree with symlinks.
lsrc=$work/lsrc
mkdir -p "$lsrc/a/b" "$lsrc/blobs"
head -c $((2 << 20)) /dev/urandom > "$lsrc/blobs/big.bin"
printf 'one\n' > "$lsrc/a/one.txt"
ln -s one.txt "$lsrc/a/l-file" && ln -s ../../blobs/big.bin "$lsrc/a/b/l-up" && ln -s ../blobs "$lsrc/a/l-dir"
ln -s missing "$lsrc/a/l-dangling"
wsame rsync-in rsync "rsync -a '$lsrc/' @/rsync/"
wsame rsync-AX rsyncax "rsync -aAX '$lsrc/' @/rsyncax/"
wsame rsync-update rsync "echo changed > '$work/changed' && rsync -a '$work/changed' @/rsync/a/one.txt && rsync -a '$lsrc/' @/rsync/ && cat @/rsync/a/one.txt"
# prefix -> local: the same tree comes back, links as links
rm -rf "$work/back.l" "$work/back.v"
rsync -a "$lb/rsync/" "$work/back.l/"
vrun rsync -a /oss/bkt/rsync/ "$work/back.v/" 2> "$work/rsync-out.err" && ok || bad "rsync out of the prefix: $(head -3 "$work/rsync-out.err")"
if diff -r --no-dereference "$work/back.l" "$work/back.v" > "$work/diff" 2>&1; then ok; else bad "rsync out of the prefix differs: $(head -5 "$work/diff")"; fi
# every *at call with a descriptor of "/", and relative paths from a real cwd of / and /tmp
vrun "$OSSSHIM_BUILD_ROOT/tests/shim/ancestor_at" oss/bkt > "$work/at.out" 2>&1 && ok || bad "ancestor dirfd: $(head -5 "$work/at.out")"
[ "$(cat "$root/bkt/at/data" 2>&1)" = 0123456789 ] && [ "$(readlink "$root/bkt/at/link")" = data ] && ok ||
  bad "ancestor dirfd: the emulator holds $(ls -la "$root/bkt/at" 2>&1 | tr '\n' ' ')"
[ "$(cd / && vrun cat oss/bkt/rsync/a/one.txt 2>&1)" = one ] && ok || bad "cd / && cat oss/...: $(cd / && vrun cat oss/bkt/rsync/a/one.txt 2>&1 | head -3)"
vrun ls / > "$work/ls.v" 2>&1 && ls / > "$work/ls.l" && cmp -s "$work/ls.l" "$work/ls.v" && ok || bad "ls / under the shim differs: $(diff "$work/ls.l" "$work/ls.v" | head -3)"

# ------------------------------------------------------------------ symlinks (OSS symlink objects)
# A Hugging Face cache written with os.symlink, read back through snapshots/ (and its links kept
# as relative symbolic links in the emulator's tree).
hf=$(dirname "$0")/hf_cache.py
wsame hf-write hf "python3 '$hf' write @/hf"
wsame hf-read "" "python3 '$hf' read @/hf"
rev=0123456789abcdef0123456789abcdef01234567
wsame hf-cat "" "cd @/hf/models--org--name/snapshots/$rev && cat config.json sub/config.json && sha256sum model.safetensors tokenizer.json && ls -l --time-style=+ . | tail -n +2 | awk '{print \$1, \$2, \$5, \$6, \$7, \$8}'"
wsame ln-s lns "mkdir @/lns && cd @/lns && echo data > f && ln -s f l && mkdir d && ln -s ../f d/l2 && ln -s nowhere l3 && readlink l d/l2 l3 && cat l d/l2 && ls -l --time-style=+ l | awk '{print \$1, \$5, \$6, \$7, \$8}' && stat -c '%F %s' l f && stat -L -c '%F %s' l && realpath l && (cat l3 || true) && rm l && cat f && ! test -e l"
# Documented differences: OSS keeps the key a link names, so readlink shows the shortest
# relative text (an absolute "/oss/bkt/lnabs/f" or "../lnabs/f" reads back as "f"), and a target
# outside the bucket is refused with EPERM, nothing stored.
vrun bash -c 'mkdir /oss/bkt/lnabs && echo x > /oss/bkt/lnabs/f && ln -s /oss/bkt/lnabs/f /oss/bkt/lnabs/abs &&
  ln -s ../lnabs/f /oss/bkt/lnabs/up && readlink /oss/bkt/lnabs/abs /oss/bkt/lnabs/up && cat /oss/bkt/lnabs/abs' > "$work/abs.out" 2>&1
[ "$(cat "$work/abs.out")" = "$(printf 'f\nf\nx')" ] && [ "$(readlink "$root/bkt/lnabs/abs")" = f ] && ok || bad "absolute link target: $(head -5 "$work/abs.out")"
vrun ln -s /etc/hostname /oss/bkt/lns/out > "$work/out.err" 2>&1 && bad "a link out of the bucket was made" ||
  { grep -q "Operation not permitted" "$work/out.err" && ! [ -e "$root/bkt/lns/out" ] && ! [ -L "$root/bkt/lns/out" ] && ok || bad "link out of the bucket: $(head -3 "$work/out.err")"; }
wsame ln-exists lns "ln -s x @/lns/f; echo \$?"
wsame cp-a-links cpal "cp -a '$lsrc' @/cpal"
rm -rf "$work/cpal.l" "$work/cpal.v"
cp -a "$lb/cpal" "$work/cpal.l"
vrun cp -a /oss/bkt/cpal "$work/cpal.v" 2> "$work/cpal.err" && ok || bad "cp -a out of the prefix: $(head -3 "$work/cpal.err")"
if diff -r --no-dereference "$work/cpal.l" "$work/cpal.v" > "$work/diff" 2>&1; then ok; else bad "cp -a of links out of the prefix differs: $(head -5 "$work/diff")"; fi
wsame mv-link cpal "mv @/cpal/a/l-file @/cpal/l-moved && readlink @/cpal/l-moved && (cat @/cpal/l-moved || true) && mv @/cpal/a @/cpal/a2 && cat @/cpal/a2/l-file 2>/dev/null; readlink @/cpal/a2/b/l-up && cmp @/cpal/a2/b/l-up '$lsrc/blobs/big.bin' && echo same"
# a local symlink into the prefix (file and directory) is followed by open, stat, realpath
ln -sfn /oss/bkt/hf/models--org--name/snapshots/$rev/config.json "$work/ll-file"
ln -sfn /oss/bkt/hf/models--org--name "$work/ll-dir"
want=$(cat "$lb/hf/models--org--name/snapshots/$rev/config.json")
[ "$(vrun cat "$work/ll-file" 2>&1)" = "$want" ] && ok || bad "local link to a file in the prefix: $(vrun cat "$work/ll-file" 2>&1 | head -3)"
[ "$(vrun cat "$work/ll-dir/snapshots/$rev/sub/config.json" 2>&1)" = "$want" ] && ok || bad "local link to a directory in the prefix: $(vrun cat "$work/ll-dir/snapshots/$rev/sub/config.json" 2>&1 | head -3)"
got=$(vrun python3 -c "import os,sys; p=sys.argv[1]; print(os.path.exists(p), os.stat(p).st_size, open(p).read().strip() == sys.argv[2], os.path.realpath(p))" "$work/ll-file" "$want" 2>&1)
[ "$got" = "True $((${#want} + 1)) True /oss/bkt/hf/models--org--name/blobs/$(printf '%s\n' "$want" | sha256sum | cut -d' ' -f1)" ] && ok || bad "local link through python: $got"
[ "$(vrun ls "$work/ll-dir/snapshots/$rev/" 2>&1 | tr '\n' ' ')" = "config.json model.safetensors sub tokenizer.json " ] && ok ||
  bad "ls through a local link into the prefix: $(vrun ls "$work/ll-dir/snapshots/$rev/" 2>&1 | head -3)"
[ "$(vrun bash -c "cd '$work/ll-dir' && pwd -P && cat refs/main" 2>&1)" = "$(printf '/oss/bkt/hf/models--org--name\n%s' "$rev")" ] && ok ||
  bad "cd through a local link into the prefix: $(vrun bash -c "cd '$work/ll-dir' && pwd -P && cat refs/main" 2>&1 | head -3)"

finish
