#!/bin/sh
# make_python.sh SOURCE_DIR - `make demo PYTHON=python3.X` finds a pyenv
# version that is installed but not active (nothing of pyenv on PATH),
# and a Python that exists nowhere is refused with a message naming it.
# Exits 77 (skip) where pyenv has no version.
set -u
src=$1
versions=${PYENV_ROOT:-$HOME/.pyenv}/versions
exe=$(ls -d "$versions"/3.*/bin/python3.* 2>/dev/null \
      | grep -E '/python3\.[0-9]+$' | sort -V | tail -n 1)
[ -n "$exe" ] || { echo "skip: no pyenv version here"; exit 77; }
name=$(basename "$exe")
got=$(env PATH=/usr/bin:/bin make -s -C "$src" python PYTHON="$name")
[ "$got" = "$exe" ] || { echo "PYTHON=$name gave '$got', wanted $exe"; exit 1; }
if out=$(env PATH=/usr/bin:/bin make -s -C "$src" python \
           PYTHON=python3.99 2>&1); then
  echo "PYTHON=python3.99 was accepted: $out"; exit 1
fi
case $out in
  *"no Python named python3.99"*) ;;
  *) echo "PYTHON=python3.99 failed without naming it: $out"; exit 1 ;;
esac
echo "make finds $name in pyenv without PATH: $exe"
