"""Runs tests/foreign/pybind11_pool.cpp's module: pybind11_pool.py DIR MODE

calls: native threads call a Python function through pygate beside
pybind11's gil_scoped_acquire/release, and every call is counted.
shutdown: native threads keep calling while the interpreter finalizes;
the module prints at exit how they stopped (tests/CMakeLists.txt checks
it: every thread refused cleanly, none otherwise)."""
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import pybind11_pool  # noqa: E402

if sys.argv[2] == "calls":
    seen = threading.local()
    counts = []

    def one():
        seen.n = getattr(seen, "n", 0) + 1
        return 1

    total = pybind11_pool.calls(one, 8, 300)
    print("pybind11_pool.calls: %d calls from 8 threads" % total)
    assert total == 8 * 300, total
elif sys.argv[2] == "shutdown":
    def busy():
        return sum(range(50))

    pybind11_pool.call_through_shutdown(busy, 4)
    time.sleep(0.2)
    print("pybind11_pool: the interpreter finalizes under 4 calling threads")
    sys.stdout.flush()
