# Differential checks of the write-side shell tests (sourced after lib.sh; the caller defines
# $lb, the local directory, $marker, vrun and strip_log).
# tree_cmd (bash -c "$tree_cmd" DIR): types, file sizes and checksums under DIR, locally or under the shim.
tree_cmd='cd "$0" && find . -type d -printf "d %p\n" -o -printf "%y %s %p\n" | LC_ALL=C sort &&
  find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum'
# same_tree NAME DIR: bucket directory DIR in the emulator's root equals $lb/DIR byte for byte
# (symbolic links, the emulator's symlink objects, compared as links),
# and reads back through the shim as the local one does.
same_tree() {
  local name=$1 dir=$2
  if diff -r --no-dereference -x "$marker" "$lb/$dir" "$root/bkt/$dir" > "$work/diff" 2>&1; then ok; else
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
