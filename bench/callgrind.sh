# Sourced by bench/instructions.sh and bench/per_call_instructions.sh:
# instructions counted by valgrind's callgrind over a whole process (all
# its threads), which the machine's other load does not move.
#
#   callgrind_count CMD...   prints CMD's instruction count; exit status
#                            CMD's own (its stderr kept in $callgrind_log)
#   callgrind_per N1 N2 A B  (B - A) / (N2 - N1): one iteration's share
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
callgrind_dir=$(mktemp -d)
callgrind_log=$callgrind_dir/log
trap 'rm -rf "$callgrind_dir"' EXIT

callgrind_count() {
  local rc=0
  valgrind --tool=callgrind --callgrind-out-file="$callgrind_dir/cg" \
    "$@" >/dev/null 2>"$callgrind_log" || rc=$?
  [ "$rc" -eq 0 ] && sed -nE 's/.*Collected : ([0-9]+).*/\1/p' "$callgrind_log"
  return "$rc"
}

callgrind_per() {
  echo $(( ($4 - $3) / ($2 - $1) ))
}
