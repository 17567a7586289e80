#!/bin/bash
# The real ML libraries under the shim (tests/clients/requirements.txt, in the venv that
# tools/install-deps.sh makes): `clients.sh CASE` runs tests/clients/case_CASE.py's steps on a local
# directory and, under ossrun, on /oss/bkt, then compares their outputs (paths aside) and the
# stored objects byte for byte (the emulator's root against the local directory). A missing venv
# or package fails the test.
set -euo pipefail
source "$OSSSHIM_SOURCE_ROOT/tests/shim/lib.sh"
case=$1
here=$OSSSHIM_SOURCE_ROOT/tests/clients
venv=${OSSSHIM_VENV:-$HOME/.cache/ossshim-venv}
py=$venv/bin/python
[ -x "$py" ] || { echo "FAIL: no venv at $venv (run tools/install-deps.sh, or set OSSSHIM_VENV)"; exit 1; }
export PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
  TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1 OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$root/bkt"
start_emulator
lb=$work/local
mkdir -p "$lb"
marker=.ossemu-marker
vrun() { "$ossrun_bin" -- "$@"; }
strip_log() { grep -v '^ossshim\[' "$1" || true; }

# step NAME [--env VAR=VALUE]... ARGS...: `case_CASE.py ARGS` with @ standing for the case's
# directory, locally ($lb) and under the shim (/oss/bkt), in the environment given (@ replaced
# too); the same exit status and stdout (the directory's path replaced by @).
step() {
  local name=$1 lrc=0 vrc=0
  shift
  local largs=() vargs=() lenv=() venv=() a
  while [ "${1:-}" = --env ]; do lenv+=("${2//@/$lb}"); venv+=("${2//@//oss/bkt}"); shift 2; done
  for a in "$@"; do largs+=("${a//@/$lb}"); vargs+=("${a//@//oss/bkt}"); done
  (cd "$work" && env "${lenv[@]}" "$py" "$here/case_$case.py" "${largs[@]}") > "$work/l.out" 2> "$work/l.err" || lrc=$?
  (cd "$work" && vrun env "${venv[@]}" "$py" "$here/case_$case.py" "${vargs[@]}") > "$work/v.out" 2> "$work/v.err" || vrc=$?
  sed -i -E "s#$lb#@#g; s#/oss/bkt#@#g" "$work/l.out" "$work/v.out"
  cp "$work/l.out" "$work/$name.l.out"; cp "$work/v.out" "$work/$name.v.out"
  if [ "$lrc" != 0 ]; then
    bad "$name: exit $lrc locally: $(tail -5 "$work/l.err")"
  elif [ "$vrc" != 0 ]; then
    bad "$name: exit $vrc under the shim (0 locally): $(strip_log "$work/v.err" | tail -8)"
  elif [ ! -s "$work/l.out" ]; then
    bad "$name: printed nothing"
  elif ! cmp -s "$work/l.out" "$work/v.out"; then
    bad "$name: output differs under the shim: $(diff "$work/l.out" "$work/v.out" | head -20)"
  else ok; fi
  if grep -q '^ossshim\[' "$work/v.err"; then echo "note: $name: the shim logged: $(grep '^ossshim\[' "$work/v.err" | head -3)"; fi
}

# same_tree NAME [DIFF-EXCLUDES...]: the emulator's bucket equals $lb byte for byte (links as
# links), and lists the same names and types (also of files excluded from the content check).
same_tree() {
  local name=$1 x=(-x "$marker")
  shift
  for a in "$@"; do x+=(-x "$a"); done
  if diff -r --no-dereference "${x[@]}" "$lb" "$root/bkt" > "$work/diff" 2>&1; then ok; else
    bad "$name: the emulator's objects differ from the local files: $(head -5 "$work/diff")"
  fi
  (cd "$lb" && find . -printf '%y %P\n' | LC_ALL=C sort) > "$work/names.l"
  (cd "$root/bkt" && find . ! -name "$marker" -printf '%y %P\n' | LC_ALL=C sort) > "$work/names.v"
  if cmp -s "$work/names.l" "$work/names.v"; then ok; else
    bad "$name: the stored names differ: $(diff "$work/names.l" "$work/names.v" | head -8)"
  fi
}

# drop: empty the shared cache, so the next step reads from the origin.
drop() { "$ossrun_bin" cache clear > /dev/null; }

# ---- the cases ----

case_safetensors() {
  step save save @
  drop
  step read read @
  same_tree safetensors
}

case_transformers() {
  step save save @
  drop
  step load load @
  # from_pretrained gives the logits and greedy tokens of the model that was saved.
  local saved loaded
  saved=$(sed -n 's/^saved //p' "$work/save.v.out")
  loaded=$(sed -n 's/^loaded [A-Za-z]* [A-Za-z]* //p' "$work/load.v.out")
  if [ -n "$saved" ] && [ "$saved" = "$loaded" ]; then ok; else bad "from_pretrained from the prefix: '$loaded', saved '$saved'"; fi
  same_tree transformers
}

case_hfhub() {
  # The repository the loopback Hub serves: the transformers case's tiny model, made locally.
  "$py" "$here/case_transformers.py" save "$work/src" > /dev/null
  "$py" "$here/case_hfhub.py" serve "$work/src/tiny-llama" "$work/hub.port" > "$work/hub.log" 2>&1 &
  hub_pid=$!
  trap 'kill $hub_pid 2>/dev/null || true; cleanup' EXIT
  for _ in $(seq 100); do [ -s "$work/hub.port" ] && break; sleep 0.1; done
  [ -s "$work/hub.port" ] || { echo "FAIL: the loopback Hub did not start: $(cat "$work/hub.log")"; exit 1; }
  export HF_ENDPOINT=http://127.0.0.1:$(cat "$work/hub.port")
  step download --env HF_HOME=@/hf download @
  drop
  step read --env HF_HOME=@/hf --env HF_HUB_OFFLINE=1 read @
  kill $hub_pid 2>/dev/null || true
  # local_dir metadata files hold a download timestamp: names compared, not contents.
  same_tree hfhub '*.metadata'
}

case_runai() {
  step save save @
  drop
  # The streamer's pread strategy: its C++ reads through the shim.
  step read --env RUNAI_STREAMER_FS_STRATEGY=sync_buffered read @
  grep -q '^same as safe_open True$' "$work/read.v.out" && ok || bad "runai: the streamed tensors differ from safe_open's: $(cat "$work/read.v.out")"
  same_tree runai
  # Its default strategy (io_uring) bypasses libc: the kernel sees the shim's descriptor and
  # answers EBADF. It must fail loudly, never stream wrong bytes.
  drop
  local rc=0
  vrun "$py" "$here/case_runai.py" read /oss/bkt > "$work/uring.out" 2> "$work/uring.err" || rc=$?
  if [ "$rc" != 0 ] && grep -q 'Could not receive response from libstreamer' "$work/uring.err"; then ok
  elif [ "$rc" = 0 ] && grep -q '^same as safe_open True$' "$work/uring.out"; then echo "note: runai's io_uring strategy now streams correctly under the shim"; ok
  else bad "runai io_uring under the shim: exit $rc, $(tail -3 "$work/uring.out") $(strip_log "$work/uring.err" | tail -3)"; fi
}

case_oss2() {
  # Written through the shim, read back by oss2 with its CRC64 check.
  step write write @/via-shim
  same_tree oss2-write
  "$py" "$here/case_oss2.py" sdk-get via-shim > "$work/get.out" 2>&1 || true
  "$py" "$here/case_oss2.py" read "$lb/via-shim" > "$work/local.out" 2>&1
  if grep -q False "$work/get.out" || ! sed 's/ crc64 .*//' "$work/get.out" | cmp -s - "$work/local.out"; then
    bad "oss2 get_object of files written through the shim: $(diff <(sed 's/ crc64 .*//' "$work/get.out") "$work/local.out" | head -8)"
  else ok; fi
  # Written by oss2 (put_object, chunked put_object, multipart), read through the shim.
  "$py" "$here/case_oss2.py" sdk-put via-sdk > "$work/put.out" 2>&1 || bad "oss2 put: $(tail -5 "$work/put.out")"
  vrun "$py" "$here/case_oss2.py" read /oss/bkt/via-sdk > "$work/vread.out" 2> "$work/vread.err" || bad "read of oss2's objects through the shim: $(strip_log "$work/vread.err" | tail -5)"
  drop
  vrun "$py" "$here/case_oss2.py" read /oss/bkt/via-sdk > "$work/vread2.out" 2> "$work/vread.err" || bad "read of oss2's objects through the shim, cold: $(strip_log "$work/vread.err" | tail -5)"
  if cmp -s "$work/vread.out" "$work/local.out" && cmp -s "$work/vread2.out" "$work/local.out"; then ok; else
    bad "oss2's objects read through the shim differ: $(diff "$work/vread.out" "$work/local.out" | head -8)"
  fi
}

case_gguf() {
  step save save @
  drop
  step read read @
  same_tree gguf
}

declare -F "case_$case" > /dev/null || { echo "FAIL: no case $case"; exit 1; }
"case_$case"
finish
