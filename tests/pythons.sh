# Sourced by tests/run_matrix.sh and bench/run_bench.sh: finds every CPython
# on this machine (pyenv 3.8+, Debian's python3.X and python3.X-dbg).
# find_pythons fills
#   runs=("label|python executable|cmake build type|")   in version order
#   missing=("what was looked for and not found")
find_pythons() {
  runs=()
  missing=()
  pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for minor in 8 9 10 11 12 13 14; do
    found=""
    for dir in $(ls -d "$pyenv_root"/versions/3.$minor.* 2>/dev/null | sort -V); do
      [ -x "$dir/bin/python3.$minor" ] && found="$dir/bin/python3.$minor"
    done
    if [ -n "$found" ]; then
      ver=$(basename "$(dirname "$(dirname "$found")")")
      runs+=("CPython $ver (pyenv)|$found|RelWithDebInfo|")
    elif [ "$minor" -le 13 ]; then
      missing+=("CPython 3.$minor (pyenv)")
    fi
  done
  for minor in 8 9 10 11 12 13 14; do
    exe=/usr/bin/python3.$minor
    [ -x "$exe" ] && runs+=("CPython $($exe -c 'import platform; print(platform.python_version())') (Debian)|$exe|RelWithDebInfo|")
    exe=/usr/bin/python3.$minor-dbg
    [ -x "$exe" ] && runs+=("CPython $($exe -c 'import platform; print(platform.python_version())') debug (Debian -dbg)|$exe|Debug|")
  done
  [ -x /usr/bin/python3.11 ] || missing+=("CPython 3.11 (Debian python3.11)")
  [ -x /usr/bin/python3.11-dbg ] || missing+=("CPython 3.11 debug (Debian python3.11-dbg)")
}
