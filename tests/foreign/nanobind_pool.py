"""Runs tests/foreign/nanobind_pool.cpp's module: nanobind_pool.py DIR MODE

calls: native threads call a Python function through pygate beside
nanobind's gil_scoped_acquire/release, every call counted; then through
nanobind's acquire alone, with and without pygate keeping the threads'
states (a threading.local lasts across calls only when kept); then, on
3.15+, CPython's own PEP 788 entries beside pygate's.
shutdown: native threads keep calling while the interpreter finalizes;
the module prints at exit how they stopped (tests/CMakeLists.txt checks
it: every thread refused cleanly, none otherwise)."""
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import nanobind_pool  # noqa: E402

if sys.argv[2] == "calls":
    def one():
        return 1

    total = nanobind_pool.calls(one, 8, 300)
    print("nanobind_pool.calls: %d calls from 8 threads" % total)
    assert total == 8 * 300, total

    seen = threading.local()

    def count():
        seen.n = getattr(seen, "n", 0) + 1
        return seen.n

    kept = nanobind_pool.acquire_calls(count, 4, 200, True)
    print("nanobind_pool.acquire_calls, states kept: a thread's local"
          " counted %d of 200 calls" % kept)
    assert kept == 200, kept
    per_call = nanobind_pool.acquire_calls(count, 4, 200, False)
    print("nanobind_pool.acquire_calls, states made per call: %d" % per_call)
    # CPython 3.12+ deletes the state PyGILState_Ensure made at the
    # matching Release, and the thread's local with it.
    if sys.version_info >= (3, 12):
        assert per_call == 1, per_call

    if hasattr(nanobind_pool, "pep788_calls"):
        total = nanobind_pool.pep788_calls(one, 8, 300)
        print("nanobind_pool.pep788_calls: %d calls from 8 threads" % total)
        assert total == 8 * 400, total
    else:
        assert sys.version_info < (3, 15)
elif sys.argv[2] == "shutdown":
    def busy():
        return sum(range(50))

    nanobind_pool.call_through_shutdown(busy, 4)
    time.sleep(0.2)
    print("nanobind_pool: the interpreter finalizes under 4 calling threads")
    sys.stdout.flush()
