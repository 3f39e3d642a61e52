# Builds the `vendored` extension module from its source and pygate's single
# file (pygate.c, pygate.h in PYGATE_SINGLE_FILE_DIR), as an extension
# author who vendors pygate would.
import os
from setuptools import Extension, setup

single = os.environ["PYGATE_SINGLE_FILE_DIR"]
setup(
    name="vendored",
    version="0",
    ext_modules=[Extension(
        "vendored",
        sources=["vendored.c", os.path.join(single, "pygate.c")],
        include_dirs=[single],
        extra_compile_args=["-std=gnu11"],
    )],
)
