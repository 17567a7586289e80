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
[ $demo_only = 1 ] || packages+=(clang-format python3-numpy python3-torch python3-venv awscli s3cmd aria2 rsync)
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

# The Python test environment of tests/clients (the real ML libraries under the shim): a venv on
# Debian's python3 whose numpy and torch 1.13 serve (--system-site-packages), with the PyPI packages
# of tests/clients/requirements.txt, every one pinned and installed --no-deps (so no PyPI torch is
# pulled in). OSSSHIM_VENV places it (default ~/.cache/ossshim-venv, kept across build trees).
# A fresh install took 23 s here (191 MB); when requirements.txt is unchanged this is a no-op.
venv=${OSSSHIM_VENV:-$HOME/.cache/ossshim-venv}
req=tests/clients/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.ossshim-requirements.txt"; then
  echo "install-deps: pip install -r $req into $venv"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$venv/.ossshim-requirements.txt"
fi
