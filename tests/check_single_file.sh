#!/bin/sh
# check_single_file.sh CC PYTHON SOURCE_DIR PYTHON_INCLUDE WORK_DIR
# The single file (tools/amalgamate.py) compiles warning-free against this
# CPython's headers, free-threaded and debug builds included, where the
# setuptools consumer test (tests/consumer) cannot run: a CPython without
# setuptools.
set -eu
cc=$1 python=$2 src=$3 pyinc=$4 work=$5
rm -rf "$work"
"$python" "$src/tools/amalgamate.py" "$work" >/dev/null
"$cc" -std=gnu11 -Wall -Wextra -Werror -fPIC -c "$work/pygate.c" \
  -I"$work" -I"$pyinc" -o "$work/pygate.o"
echo "single file compiled against $pyinc"
