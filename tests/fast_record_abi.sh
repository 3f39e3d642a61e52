#!/bin/sh
# fast_record_abi.sh CC CONSUMER LIBPYGATE - the fast record's version rule
# (pygate.h, "The inline path"; docs/ARCHITECTURE.md, "The fast record"):
# a program built against a header whose inline path reads
# pygate__fast_v1 (and pygate__views_closed_v1) runs with this library,
# and with a library that lacks them (an older one, made here as a stub
# under the same soname) it fails to load, naming one of them (the loader
# stops at the first it misses), rather than run with a layout it does not
# know.
set -u
cc=$1 consumer=$2 lib=$3
nm -D --undefined-only "$consumer" | grep -q ' pygate__fast_v1$' || {
  echo "the consumer does not read pygate__fast_v1: nothing to check"
  exit 1
}
"$consumer" || { echo "the consumer fails with its own library"; exit 1; }
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ -n "$soname" ] || { echo "no soname in $lib"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The exported functions the consumer calls, without the record.
printf 'int pygate_enter_at(void *v, void *t, const char *f, int l)\n{ return -1; }\n' \
  | "$cc" -shared -fPIC -x c - -Wl,-soname,"$soname" -o "$tmp/$soname" || exit 1
if out=$(LD_LIBRARY_PATH="$tmp" "$consumer" 2>&1); then
  echo "the consumer ran with a library that lacks pygate__fast_v1"
  exit 1
fi
echo "$out" | grep -Eq 'pygate__(fast|views_closed)_v1' || {
  echo "refused, but without naming the record: $out"
  exit 1
}
echo "refused with a library lacking the record: $out"
