#!/bin/bash
# Installs everything ossshim needs to build and test, from Debian 12's packages (and the pinned npm
# test dependencies). Idempotent: quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# --demo: only what building and the demo need (no test clients, no npm, no PyPI).
demo_only=0
[ "${1:-}" = --demo ] && demo_only=1
packages=(build-essential pkg-config meson ninja-build curl ca-certificates
          libcurl4-openssl-dev libssl-dev libtomlplusplus-dev catch2 libunwind-dev libisal-dev
          libpugixml-dev libmicrohttpd-dev python3)
[ $demo_only = 1 ] || packages+=(clang-format python3-numpy python3-torch awscli s3cmd aria2 rsync)
# ali-oss needs node >= 14; a node already on the machine will do.
if [ $demo_only = 0 ] && { ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ $demo_only = 1 ] && exit 0

# npm test dependencies, pinned by tests/interop/package-lock.json.
if [ ! -d tests/interop/node_modules/ali-oss ] ||
   [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci (tests/interop)"
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
