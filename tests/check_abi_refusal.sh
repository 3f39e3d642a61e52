#!/bin/sh
# check_abi_refusal.sh CC PYTHON_INCLUDE PYGATE_INCLUDE ABI_HEX DEBUG FREE_THREADED
# pygate.h refuses the headers of another CPython than the one its
# library was built for (README: "refused at compile time"): it is
# compiled here, against this CPython's headers, as a consumer of a pygate
# built for another version, for the other debug kind, and for the other
# free-threaded kind, and each must stop with the error that names it.
set -u
cc=$1 pyinc=$2 inc=$3 abi=$4 debug=$5 ft=$6
other_debug=$((1 - debug)) other_ft=$((1 - ft))
ok="-DPYGATE_PY_ABI=0x$abi -DPYGATE_PY_DEBUG=$debug -DPYGATE_PY_FREE_THREADED=$ft"
try() {   # try EXPECTED FLAGS...: the compile fails, saying EXPECTED
  want=$1; shift
  if out=$(echo '#include <pygate.h>' | "$cc" -fsyntax-only -x c - -I"$pyinc" -I"$inc" "$@" 2>&1); then
    [ -z "$want" ] && return 0
    echo "pygate.h accepted $*"; exit 1
  fi
  [ -n "$want" ] || { echo "pygate.h refused its own CPython ($*): $out"; exit 1; }
  echo "$out" | grep -q "$want" || { echo "wrong error for $*: $out"; exit 1; }
  echo "refused $*: $want"
}
try "" $ok
try "built for another CPython" -DPYGATE_PY_ABI=0x0207 -DPYGATE_PY_DEBUG=$debug -DPYGATE_PY_FREE_THREADED=$ft
try "built for a debug CPython" -DPYGATE_PY_ABI=0x$abi -DPYGATE_PY_DEBUG=$other_debug -DPYGATE_PY_FREE_THREADED=$ft
try "built for a free-threaded CPython" -DPYGATE_PY_ABI=0x$abi -DPYGATE_PY_DEBUG=$debug -DPYGATE_PY_FREE_THREADED=$other_ft
