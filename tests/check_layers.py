#!/usr/bin/env python3
"""check_layers.py CC PYTHON_INCLUDE SOURCE_DIR

Checks three rules that src/internal.h states:
 1. Each file of src/ compiles on its own (src/ is built as one unit, where
    a file could use another's static names unseen).
 2. Internal code never calls an exported function that api.c may hand to
    another copy of pygate (api_list.h's entries, and the header's macros
    that expand to them): it calls this copy's pygate__impl_<name>.  The
    functions marked `meets` are the exception, named below with the
    reason: they meet the other copies first, as a call from outside does.
 3. Files use each other downward only, in the order internal.h gives (one
    list; README.md and docs/ARCHITECTURE.md repeat it): a file names a
    pygate__ function of another file (a call, or its address) only when
    that file comes later in the order.  compat_core.c is part of compat.c.
Prints each violation and exits 1 if there is any.
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


def declared_order(src):
    """internal.h's layer order: {file: rank}, 0 for the top."""
    text = open(os.path.join(src, "internal.h")).read()
    block = re.search(r"Files call each other downward only:\n(.*?)\n \* [A-Z]",
                      text, re.S).group(1)
    order = " ".join(line.strip(" *") for line in block.split("\n"))
    rank = {}
    for i, level in enumerate(order.split(">")):
        for name in level.split(","):
            rank[name.strip()] = i
    return rank


def documented_order(root):
    """docs/ARCHITECTURE.md's copy of the order, as declared_order's."""
    text = open(os.path.join(root, "docs", "ARCHITECTURE.md")).read()
    block = re.search(r"Files call each other downward only: (.*?) \(the same",
                      text, re.S).group(1).replace("`", "")
    rank = {}
    for i, level in enumerate(block.split(">")):
        for name in level.split(","):
            rank[name.strip()] = i
    return rank


def upward_uses(src, sources, texts):
    """(user, used, function) for each use of another file's pygate__
    function that is not downward."""
    rank = declared_order(src)
    defined = {}
    for name in sources:
        for m in re.finditer(r"^(pygate__\w+)\(", texts[name], re.M):
            defined[m.group(1)] = name
    # internal.h's macros that stand for a function (pygate__enter).
    header = strip_comments_and_strings(
        open(os.path.join(src, "internal.h")).read())
    for macro, target in re.findall(r"#define (pygate__\w+)\([^)]*\)\s*"
                                    r"\\?\s*(pygate__\w+)\(", header):
        if target in defined:
            defined[macro] = defined[target]
    layer = lambda name: "compat.c" if name == "compat_core.c" else name
    found = set()
    for name in sources:
        for m in re.finditer(r"(?<![\w])(pygate__\w+)\b", texts[name]):
            used = defined.get(m.group(1))
            if used is None or layer(used) == layer(name):
                continue
            if layer(name) not in rank or layer(used) not in rank:
                found.add((name, used, "(a file not in internal.h's order)"))
            elif rank[layer(used)] <= rank[layer(name)]:
                found.add((name, used, m.group(1)))
    return sorted(found)


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
    if documented_order(root) != declared_order(src):
        failures += 1
        print("docs/ARCHITECTURE.md's order of files is not internal.h's")
    texts = {name: strip_comments_and_strings(
        open(os.path.join(src, name)).read()) for name in sources}
    for user, used, what in upward_uses(src, sources, texts):
        failures += 1
        print("src/%s uses %s of src/%s, which is not below it in"
              " internal.h's order" % (user, what, used))
    checked = len(sources) - 1
    if failures:
        print("%d problem(s)" % failures)
        return 1
    print("%d files compile on their own and use each other downward only;"
          " no internal call of the %d exported functions api.c may hand"
          " to another copy" % (checked, len(wrappers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
