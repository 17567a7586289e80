#!/bin/bash
# meson install: every file lands where `meson introspect --installed` says, and after a real
# install the bare name LD_PRELOAD=libossshim.so works (ldconfig ran), as does the installed ossrun.
# The real install happens in a private mount namespace, over a tmpfs /usr/local and a copy of
# /etc, so the machine is left as it was.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$root/bkt"
printf 'installed and preloaded by name\n' > "$root/bkt/hello.txt"
start_emulator
build=$OSSSHIM_BUILD_ROOT

# 1. Staged into DESTDIR.
meson install -C "$build" --no-rebuild --destdir "$work/stage" >/dev/null
installed=$(meson introspect --installed "$build" | /usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin).values()))')
for f in $installed; do
  [ -e "$work/stage$f" ] && ok || bad "meson install --destdir did not install $f"
done
grep -q "libossshim.so$" <<<"$installed" && grep -q "/ossrun$" <<<"$installed" && grep -q "ossrun.1$" <<<"$installed" &&
  grep -q "libossshim-net.so$" <<<"$installed" && ok || bad "install set incomplete: $installed"

# 2. A real install (root), isolated by a mount namespace.
libdir=$(dirname "$(grep 'libossshim.so$' <<<"$installed")")
bindir=$(dirname "$(grep '/ossrun$' <<<"$installed")")
case "$libdir" in /usr/local/*) ;; *) bad "this test expects the default prefix /usr/local, got $libdir"; finish; exit 1 ;; esac
cp -a /etc "$work/etc"
# meson test puts the build tree on LD_LIBRARY_PATH; the bare name must come from the loader cache.
got=$(env -u LD_LIBRARY_PATH unshare --mount --propagation private bash -c '
  set -e
  mount -t tmpfs tmpfs /usr/local
  mount --bind "$1/etc" /etc
  meson install -C "$2" --no-rebuild --quiet >/dev/null
  echo "[preload] $(LD_PRELOAD=libossshim.so cat /oss/bkt/hello.txt)"
  echo "[version] $("$3/ossrun" --version)"
  echo "[ossrun] $("$3/ossrun" cat /oss/bkt/hello.txt)"
' _ "$work" "$build" "$bindir" 2>&1) || true
grep -qx "\[preload\] installed and preloaded by name" <<<"$got" && ok || bad "bare-name LD_PRELOAD=libossshim.so after meson install: $got"
grep -qx "\[version\] ossrun [0-9.]* (preloads $libdir/libossshim.so)" <<<"$got" && ok || bad "installed ossrun --version: $got"
grep -qx "\[ossrun\] installed and preloaded by name" <<<"$got" && ok || bad "installed ossrun: $got"
[ ! -e /usr/local/bin/ossrun ] || [ /usr/local/bin/ossrun -ot "$work" ] && ok || bad "the install escaped the mount namespace"
finish
