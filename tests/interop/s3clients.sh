#!/bin/bash
# Debian's S3 clients against the emulator with AWS SigV4: awscli (small and multipart upload, ls,
# download compared, rm, wrong secret) and s3cmd (put, ls, get compared, del).
set -euo pipefail
: "${OSSSHIM_EMULATOR:?run through meson test}"
work=$(mktemp -d /tmp/ossshim-s3clients-XXXXXX)
emu_pid=
cleanup() { [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root/bkt"
"$OSSSHIM_EMULATOR" --root "$work/root" --listen 127.0.0.1:0 --quiet > "$work/emu.out" &
emu_pid=$!
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/emu.out")
[ -n "$endpoint" ] || { echo "emulator did not start"; exit 1; }
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

# No real AWS configuration or credentials may leak in.
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-creds"
export AWS_ACCESS_KEY_ID=test-ak AWS_SECRET_ACCESS_KEY=test-sk AWS_DEFAULT_REGION=cn-hangzhou
unset AWS_SESSION_TOKEN AWS_PROFILE
# Debian's awscli (a different `aws` may come first on PATH).
awsbin=/usr/bin/aws
[ -x "$awsbin" ] || awsbin=$(command -v aws)
aws=("$awsbin" --endpoint-url "$endpoint")
q=--only-show-errors

head -c 1234 /dev/urandom > "$work/small.bin"
head -c $((20 * 1024 * 1024 + 3)) /dev/urandom > "$work/big.bin"   # > 8 MiB: multipart
"${aws[@]}" s3 cp $q "$work/small.bin" "s3://bkt/dir/small file.bin" || fail "aws s3 cp small"
"${aws[@]}" s3 cp $q "$work/big.bin" s3://bkt/dir/big.bin || fail "aws s3 cp multipart"
listing=$("${aws[@]}" s3 ls s3://bkt/dir/)
grep -q "small file.bin" <<<"$listing" && grep -q " 20971523 big.bin" <<<"$listing" || fail "aws s3 ls: $listing"
"${aws[@]}" s3 ls s3://bkt/ | grep -q "PRE dir/" || fail "aws s3 ls delimiter"
"${aws[@]}" s3 cp $q s3://bkt/dir/big.bin "$work/big.down" || fail "aws s3 cp down"
cmp "$work/big.bin" "$work/big.down" || fail "multipart object differs after download"
"${aws[@]}" s3 cp $q "s3://bkt/dir/small file.bin" "$work/small.down" && cmp "$work/small.bin" "$work/small.down" || fail "small object differs"
cmp "$work/big.bin" "$work/root/bkt/dir/big.bin" || fail "stored object differs"
if AWS_SECRET_ACCESS_KEY=wrong "${aws[@]}" s3 ls s3://bkt/ 2> "$work/err"; then fail "wrong secret accepted"; fi
grep -q SignatureDoesNotMatch "$work/err" || fail "wrong secret: $(cat "$work/err")"
"${aws[@]}" s3 rm $q s3://bkt/dir/big.bin || fail "aws s3 rm"
[ ! -e "$work/root/bkt/dir/big.bin" ] || fail "aws s3 rm left the object"
echo "awscli: cp up (single, multipart), ls, cp down + cmp, wrong secret, rm: ok"

host=${endpoint#http://}
s3cmd=(s3cmd --config=/dev/null --access_key=test-ak --secret_key=test-sk --host="$host"
       --host-bucket="$host" --no-ssl --region=cn-hangzhou)
"${s3cmd[@]}" put "$work/small.bin" s3://bkt/s3cmd/one.bin >/dev/null || fail "s3cmd put"
"${s3cmd[@]}" ls s3://bkt/s3cmd/ | grep -q "s3://bkt/s3cmd/one.bin" || fail "s3cmd ls"
"${s3cmd[@]}" get s3://bkt/s3cmd/one.bin "$work/one.down" >/dev/null || fail "s3cmd get"
cmp "$work/small.bin" "$work/one.down" || fail "s3cmd object differs"
"${s3cmd[@]}" del s3://bkt/s3cmd/one.bin >/dev/null || fail "s3cmd del"
echo "s3cmd: put, ls, get + cmp, del: ok"
echo "2 passed, 0 failed"
