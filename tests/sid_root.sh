#!/usr/bin/env bash
# Today's CPython releases (3.13 latest, 3.14, 3.15 and their debug builds,
# with gcc 16 and pybind11 3.x) come from Debian's sid suite.  This script
# keeps a sid root made with debootstrap and runs commands inside it.
#
#   tests/sid_root.sh ensure          make the root unless it exists (~2 min)
#   tests/sid_root.sh why-not         why the root cannot be made or used
#                                     here, or nothing (exit 0) when it can
#   tests/sid_root.sh ready           exit 0 when the root exists
#   tests/sid_root.sh run DIR CMD...  run CMD in the root, in DIR, with DIR
#                                     (a folder of this machine) visible there
#                                     at the same path; the mounts exist only
#                                     in CMD's own mount namespace
#
# The root lives in $PYGATE_SID_ROOT (default /var/tmp/pygate-sid-root),
# outside the checkout, so that a fresh clone (CI) reuses it.  It is made
# again when it is missing or was made with another package list.
set -u
ROOT=${PYGATE_SID_ROOT:-/var/tmp/pygate-sid-root}
PACKAGES=python3.13-dev,python3.13-dbg,python3.14-dev,python3.14-dbg,python3.15-dev,python3.15-dbg,gcc,g++,make,cmake,pybind11-dev,nanobind-dev,procps,pkgconf,python3-setuptools,cython3
STAMP="$ROOT/.pygate-sid-root"

why_not() {   # why the root cannot be made (if missing) or used here
  [ "$(id -u)" -eq 0 ] || { echo "not root (debootstrap, mount and chroot need root)"; return 1; }
  command -v chroot >/dev/null || { echo "chroot is not installed"; return 1; }
  command -v unshare >/dev/null || { echo "unshare is not installed (util-linux)"; return 1; }
  ready || command -v debootstrap >/dev/null ||
    { echo "debootstrap is not installed (apt-get install debootstrap)"; return 1; }
  return 0
}

ready() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGES" ]
}

ensure() {
  ready && return 0
  why_not >&2 || return 1
  local tmp="$ROOT.tmp.$$"
  rm -rf "$tmp"
  echo "sid_root: making $ROOT with debootstrap (about 2 minutes)" >&2
  if ! debootstrap --variant=minbase --include="$PACKAGES" sid "$tmp" \
         >"$tmp.log" 2>&1; then
    echo "sid_root: debootstrap failed (network? see $tmp.log):" >&2
    tail -5 "$tmp.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -f "$tmp.log"
  echo "$PACKAGES" >"$tmp/.pygate-sid-root"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
}

# The mounts live in a mount namespace of the command's own (unshare): they
# vanish when it ends, however it ends (failure, Ctrl-C, kill -9), and
# runs side by side (make test and make bench) never see each other's.
run() {
  local dir=$1
  shift
  ready || { echo "sid_root: no root at $ROOT (run: $0 ensure)" >&2; return 1; }
  case "$dir" in
    /*) [ "$dir" != / ] && [ -d "$dir" ] ||
          { echo "sid_root: run needs an existing folder other than /, not '$dir'" >&2; return 2; } ;;
    *) echo "sid_root: run needs an absolute path, not '$dir'" >&2; return 2 ;;
  esac
  mkdir -p "$ROOT$dir"
  # pygate's own settings (PYGATE_TORTURE_RUNS, PYGATE_DEBUG, ...) reach the
  # command as they would outside the root; nothing else does.
  local cmd inner settings=""
  settings=$(env | grep -E '^PYGATE_[A-Z0-9_]+=' | grep -v '^PYGATE_ENV=' |
             while IFS= read -r v; do printf '%q ' "$v"; done)
  cmd="cd $(printf '%q' "$dir") && $(printf '%q ' "$@")"
  inner="mount -t proc proc $(printf '%q' "$ROOT/proc") &&
    mount --bind /dev $(printf '%q' "$ROOT/dev") &&
    mount --bind $(printf '%q' "$dir") $(printf '%q' "$ROOT$dir") &&
    exec chroot $(printf '%q' "$ROOT") /usr/bin/env -i \
      PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 $settings ${PYGATE_ENV:-} \
      /bin/bash -c $(printf '%q' "$cmd")"
  unshare --mount --propagation private /bin/bash -c "$inner"
}

case "${1:-}" in
  ensure) ensure ;;
  why-not) why_not ;;
  ready) ready ;;
  run) shift; run "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
