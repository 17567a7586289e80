#!/bin/sh
# meson install's last step: refresh the dynamic loader's cache so that the bare name
# LD_PRELOAD=libossshim.so finds the installed library. $1 is the install libdir. (meson 1.0 shows
# a script's output only when it fails, or with meson install's verbose logging.)
libdir=$1
# meson tells a staged install (--destdir or DESTDIR) by a destdir prefix unlike the prefix.
if [ -n "${DESTDIR:-}" ] || [ "${MESON_INSTALL_DESTDIR_PREFIX:-}" != "${MESON_INSTALL_PREFIX:-}" ]; then
  echo "ossshim: staged into DESTDIR; run ldconfig on the target after unpacking" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ossshim: not root, ldconfig skipped; preload by full path: LD_PRELOAD=$libdir/libossshim.so" >&2
  exit 0
fi
ldconfig
if ! ldconfig -p | grep -q "libossshim.so "; then
  echo "ossshim: $libdir is not in the loader's search path; add it to /etc/ld.so.conf.d/ossshim.conf and run ldconfig, or preload by full path" >&2
fi
