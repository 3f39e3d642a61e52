#!/usr/bin/env python3
"""check_layers.py CC PYTHON_INCLUDE SOURCE_DIR

Checks two rules that src/internal.h states:
 1. Each file of src/ compiles on its own (src/ is built as one unit, where
    a file could use another's static names unseen).
 2. Internal code never calls an exported function that api.c may hand to
    another copy of pygate (api_list.h's entries, and the header's macros
    that expand to them): it calls this copy's pygate__impl_<name>.  The
    functions marked `meets` are the exception, named below with the
    reason: they meet the other copies first, as a call from outside does.
Prints each violation as file:line and exits 1 if there is any.
"""
import os
import re
import subprocess
import sys

# meets=1 functions that internal code still calls through the exported
# wrapper: the call may make this copy's first record in an interpreter
# (a new sub-interpreter, the main one under a borrowed thread state), and
# must meet another copy there first, and hand the call over when it
# adopted one (api.c's meet_other_copies).
MEETING = {"pygate_view_from_current", "pygate_view_from_main",
           "pygate_guard_from_current", "pygate_guard_from_current_at"}


def strip_comments_and_strings(text):
    """text with comments and string literals blanked, lines kept."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, text,
                  flags=re.S)


def exported_wrappers(root):
    """Names of exported functions api.c may forward, meets=0 ones, and the
    header macros that expand to them."""
    text = open(os.path.join(root, "src", "api_list.h")).read()
    names = set()
    for meets, name in re.findall(r"X\((\d), [^,]+, (\w+),", text):
        names.add("pygate_" + name)
    header = open(os.path.join(root, "include", "pygate.h")).read()
    for macro, body in re.findall(r"#define (pygate_\w+)\([^)]*\)\s*\\?\s*"
                                  r"(pygate_\w+)\(", header):
        if body in names:
            names.add(macro)
    return names - MEETING


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    cc, pyinc, root = sys.argv[1:]
    src = os.path.join(root, "src")
    failures = 0
    sources = sorted(n for n in os.listdir(src) if n.endswith(".c"))
    for name in sources:
        if name == "compat_core.c":   # built apart, with Py_BUILD_CORE
            continue
        for debug in ("0", "1"):
            r = subprocess.run(
                [cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                 "-fsyntax-only", "-DPYGATE_DEBUG=" + debug,
                 "-I" + os.path.join(root, "include"), "-I" + src,
                 "-I" + pyinc, os.path.join(src, name)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True)
            if r.returncode != 0:
                failures += 1
                print("src/%s does not compile on its own (PYGATE_DEBUG=%s):"
                      % (name, debug))
                print(r.stdout)
    wrappers = exported_wrappers(root)
    call = re.compile(r"(?<![\w])(%s)\s*\(" % "|".join(sorted(wrappers)))
    for name in sources + sorted(n for n in os.listdir(src)
                                 if n.endswith(".h")):
        if name in ("api.c", "api_list.h"):
            continue
        text = strip_comments_and_strings(open(os.path.join(src, name)).read())
        for number, line in enumerate(text.split("\n"), 1):
            for m in call.finditer(line):
                if re.match(r"\s*#\s*define", line):
                    continue
                failures += 1
                print("src/%s:%d: calls the exported %s (call this copy's"
                      " pygate__impl_ function)" % (name, number, m.group(1)))
    checked = len(sources) - 1
    if failures:
        print("%d problem(s)" % failures)
        return 1
    print("%d files compile on their own; no internal call of the %d"
          " exported functions api.c may hand to another copy"
          % (checked, len(wrappers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
