#!/bin/bash
# Server-side failures reach programs as the errno a local file system would give, with one
# log line naming the operation, path, status, OSS code and request id, and never the secret.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt" && printf 'hello\n' > "$root/bkt/hello.txt"
start_emulator
export OSSSHIM_RETRY_BASE=10ms
# expect NAME 'cat message' COMMAND... : stderr (minus log lines) must be exactly the message.
expect_err() {
  local name=$1 want=$2
  shift 2
  "$@" > "$work/out" 2> "$work/err" && { bad "$name: succeeded"; return; }
  local got
  got=$(grep -v '^ossshim\[' "$work/err" || true)
  if [ "$got" == "$want" ]; then ok; else bad "$name: got [$got] want [$want]"; fi
}
f=/oss/bkt/hello.txt
expect_err "missing object" "cat: /oss/bkt/nope: No such file or directory" "$ossrun_bin" -- cat /oss/bkt/nope
expect_err "missing bucket" "cat: /oss/nobucket/x: No such file or directory" "$ossrun_bin" -- cat /oss/nobucket/x
OSS_ACCESS_KEY_SECRET=wrong-secret-value expect_err "wrong secret" "cat: $f: Permission denied" "$ossrun_bin" -- cat $f
grep -q 'HTTP 403 SignatureDoesNotMatch.*request-id [0-9A-F]\+ \[EACCES\]' "$work/err" && ok || bad "403 log line: $(cat "$work/err")"
grep -q wrong-secret-value "$work/err" && bad "the secret was logged" || ok
expect_err "endpoint down" "cat: $f: Input/output error" "$ossrun_bin" --endpoint http://127.0.0.1:1 --retries 1 -- cat $f
grep -q "Couldn't connect.*nothing accepts connections at OSSSHIM_ENDPOINT (http://127.0.0.1:1): check the host and port" "$work/err" && ok ||
  bad "connect log line: $(cat "$work/err")"
# An endpoint without a scheme is https; against a plain-HTTP server the error says to add http://.
hostport=${endpoint#http://}
expect_err "https to an http server" "cat: $f: Input/output error" "$ossrun_bin" --endpoint "$hostport" --retries 0 -- cat $f
grep -q "if the server speaks plain HTTP, write the endpoint as http://$hostport (OSSSHIM_ENDPOINT; no scheme means https)" "$work/err" && ok ||
  bad "https-to-http log line: $(cat "$work/err")"
# A burst of 503s shorter than the retries is absorbed; a persistent 500 is EIO.
admin "faults?error_status=503&error_count=2"
out=$("$ossrun_bin" -- cat $f) && [ "$out" == hello ] && ok || bad "503 burst not absorbed"
admin "faults?error_status=500"
expect_err "persistent 500" "cat: $f: Input/output error" "$ossrun_bin" --retries 2 -- cat $f
grep -q 'HTTP 500 InternalError' "$work/err" && ok || bad "500 log line: $(cat "$work/err")"
curl -s -X DELETE "$endpoint/_admin/faults" > /dev/null || true
finish
