#!/usr/bin/env python3
"""Writes pygate's single-file build: OUTDIR/pygate.c and OUTDIR/pygate.h.

SQLite's amalgamation, for extension authors who vendor pygate into a
setuptools, meson or scikit-build build: compile pygate.c with the
extension's sources, include pygate.h.  pygate.c is src/*.c in the order
CMakeLists.txt lists them, with pygate's own headers inlined once; every
internal name is already static or pygate__-prefixed, so nothing clashes,
and all of them are hidden: the module exports none (a second copy of
pygate in the process, vendored by another module or a libpygate, would
otherwise bind to them).  Hiding is a `#pragma GCC visibility` around the
sources, so every header from outside pygate (the system's, CPython's)
is included before it: a function of theirs declared hidden could not be
linked.

Usage: tools/amalgamate.py OUTDIR
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^#include "([^"]+)"\s*$')
SYSTEM_INCLUDE = re.compile(r'^#include <([^>]+)>')
# Headers of pygate's that only include headers from outside it, for the
# top of pygate.c.
OUTSIDE_ONLY = ["src/compat_core.h"]


def source_order():
    """src/*.c as CMakeLists.txt's PYGATE_SOURCES lists them: one list."""
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    block = re.search(r"set\(PYGATE_SOURCES(.*?)\)", text, re.S).group(1)
    return block.split()


def find_header(name, here):
    for d in (here, os.path.join(ROOT, "src"), os.path.join(ROOT, "include")):
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    return None


def inline(path, seen, out):
    """Copies path into out, replacing each of pygate's own #include "x"
    by x's text the first time and by nothing later."""
    out.append("/* ---- %s ---- */\n" % os.path.relpath(path, ROOT))
    for line in open(path):
        m = INCLUDE.match(line)
        header = m and find_header(m.group(1), os.path.dirname(path))
        if header is None:
            out.append(line)
        elif header not in seen:
            seen.add(header)
            inline(header, seen, out)


def system_includes(sources):
    """Every #include <...> of the sources and of pygate's headers, once,
    in the order first met."""
    paths = list(sources) + sorted(
        os.path.join("src", n) for n in os.listdir(os.path.join(ROOT, "src"))
        if n.endswith(".h"))
    seen = []
    for path in paths:
        for line in open(os.path.join(ROOT, path)):
            m = SYSTEM_INCLUDE.match(line)
            if m and line.strip() not in seen:
                seen.append(line.strip())
    return [line + "\n" for line in seen]


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    version = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    version = re.search(r"project\(pygate VERSION (\S+)", version).group(1)
    head = ("/* %s - pygate %s as one file, generated from pygate's sources by"
            "\n * tools/amalgamate.py: edit those, not this. */\n")
    header = os.path.join(ROOT, "include", "pygate.h")
    with open(os.path.join(outdir, "pygate.h"), "w") as f:
        f.write(head % ("pygate.h", version))
        # Vendored into an extension module, pygate exports nothing: the
        # module's own code calls it, and another module's copy cannot be
        # bound to these functions by mistake.
        f.write("#ifndef PYGATE_API\n"
                "#  define PYGATE_API __attribute__((visibility(\"hidden\")))\n"
                "#endif\n")
        f.write(open(header).read())
    out = [head % ("pygate.c", version),
           "/* compat_core.c needs CPython's internal headers on 3.8-3.11\n"
           " * and on free-threaded builds, which Python.h gives only with\n"
           " * Py_BUILD_CORE defined first. */\n"
           "#include <patchlevel.h>\n"
           "#include <pyconfig.h>\n"
           "#if (PY_VERSION_HEX < 0x030C0000 || defined(Py_GIL_DISABLED)) \\\n"
           "    && !defined(Py_BUILD_CORE)\n"
           "#  define Py_BUILD_CORE 1\n"
           "#endif\n"
           '#include "pygate.h"\n']
    seen = {header}
    sources = source_order()
    out += system_includes(sources)
    for path in OUTSIDE_ONLY:
        inline(os.path.join(ROOT, path), seen, out)
        seen.add(os.path.join(ROOT, path))
    out.append("#pragma GCC visibility push(hidden)\n")
    for source in sources:
        inline(os.path.join(ROOT, source), seen, out)
    out.append("#pragma GCC visibility pop\n")
    with open(os.path.join(outdir, "pygate.c"), "w") as f:
        f.writelines(out)


if __name__ == "__main__":
    main()
