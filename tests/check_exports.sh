#!/bin/sh
# check_exports.sh SHARED_LIB STATIC_LIB HEADER... - only the API is visible:
# the shared library exports exactly the functions (and the thread-local
# fast records) the headers mark PYGATE_API, and every global symbol of the
# static library is named pygate_* (the API) or pygate__* (internal), so it
# clashes with nobody.
set -eu
shared=$1 static=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Declarations may span lines: join each one, then take the name before "(".
cat "$@" | tr '\n' ' ' | tr ';' '\n' \
  | sed -n -e 's/.*PYGATE_API[^(]*[ *]\(pygate_[A-Za-z0-9_]*\)(.*/\1/p' \
      -e 's/.*PYGATE_API extern [A-Za-z0-9_ ]* \(pygate_[A-Za-z0-9_]*\)\( .*\)*$/\1/p' \
  | sort -u >"$tmp/declared"
# ASan adds an ODR indicator (__odr_asan.NAME) for each global variable.
nm -D --defined-only "$shared" | awk '$3 !~ /^__odr_asan\./ {print $3}' \
  | sort -u >"$tmp/exported"
if ! cmp -s "$tmp/declared" "$tmp/exported"; then
  echo "exported symbols differ from the PYGATE_API declarations:"
  diff "$tmp/declared" "$tmp/exported" || true
  exit 1
fi
nm --defined-only "$static" \
  | awk '$2 ~ /^[A-Z]$/ && $2 != "U" && $3 !~ /^__odr_asan\./ {print $3}' \
  | grep -v '^pygate_' >"$tmp/stray" || true
if [ -s "$tmp/stray" ]; then
  echo "global symbols of the static library outside pygate's prefix:"
  cat "$tmp/stray"
  exit 1
fi
echo "exports: $(wc -l <"$tmp/exported") symbols, as declared"
