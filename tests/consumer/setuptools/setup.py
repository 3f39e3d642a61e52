# Builds extension modules from their source and pygate's single file
# (pygate.c, pygate.h in PYGATE_SINGLE_FILE_DIR), as an extension author who
# vendors pygate would: `vendored`, and `vendored_a` and `vendored_b`, two
# more modules that each carry their own copy of pygate.
import os
from setuptools import Extension, setup

single = os.environ["PYGATE_SINGLE_FILE_DIR"]


def module(name):
    return Extension(
        name,
        sources=["vendored.c", os.path.join(single, "pygate.c")],
        include_dirs=[single],
        define_macros=[("MODULE_NAME", name)],
        extra_compile_args=["-std=gnu11"],
    )


setup(name="vendored", version="0",
      ext_modules=[module("vendored"), module("vendored_a"),
                   module("vendored_b")])
