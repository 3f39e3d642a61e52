/*
 * nanobind_pool.cpp - a nanobind module whose own C++ threads call Python
 * callbacks through pygate, as docs/API.md tells a nanobind user to
 * ("pybind11 and nanobind beside pygate"); tests/foreign/nanobind_pool.py
 * runs it.
 *
 *   calls(fn, threads, each)  each of `threads` native threads calls fn()
 *       `each` times: nanobind's gil_scoped_acquire inside a pygate entry
 *       (a PyGILState pair: it finds the attached state and only counts),
 *       gil_scoped_release inside an entry around native work, and a
 *       pygate entry inside nanobind's acquire; returns the sum of what fn
 *       returned.
 *   acquire_calls(fn, threads, each, keep)  each thread calls fn() `each`
 *       times through nanobind's gil_scoped_acquire alone, after
 *       pygate_thread_keep_gilstate() when keep is true; returns the
 *       largest value fn returned (fn counts its calls in a
 *       threading.local, which lives as long as the thread's state).
 *   pep788_calls(fn, threads, each)  (CPython 3.15+) CPython's own PEP 788
 *       entries and pygate's on the same threads, each nested in the
 *       other and alone; returns the sum of what fn returned.
 *   call_through_shutdown(fn, threads)  starts native threads that call
 *       fn() through pygate until an entry is refused, and returns: the
 *       interpreter then finalizes under them.  At exit (after
 *       Py_FinalizeEx) the module joins them and prints how they stopped.
 */
#include <nanobind/nanobind.h>

#include "shutdown_callers.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace nb = nanobind;

namespace {

pygate_view *view;   // the main interpreter's, made at import

// Runs body(thread_number) on `threads` native threads, the caller
// detached meanwhile (the threads need the GIL where there is one).
template <class Body>
void
on_threads(int threads, Body body)
{
    nb::gil_scoped_release caller;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&body, t] { body(t); });
    for (auto &th : pool)
        th.join();
}

long
calls(nb::callable fn, int threads, int each)
{
    std::atomic<long> total{0};
    on_threads(threads, [&](int) {
        for (int i = 0; i < each; i++) {
            if (i % 3 == 2) {   // pygate inside nanobind's acquire
                nb::gil_scoped_acquire gil;
                pygate::entered in(view);
                total += nb::cast<long>(fn());
                continue;
            }
            pygate::entered in(view);
            if (i % 3 == 1) {   // nanobind's acquire inside pygate
                nb::gil_scoped_acquire nested;
                total += nb::cast<long>(fn());
            } else {
                total += nb::cast<long>(fn());
            }
            nb::gil_scoped_release native;   // native work here
        }
    });
    return total.load();
}

long
acquire_calls(nb::callable fn, int threads, int each, bool keep)
{
    std::atomic<long> largest{0};
    std::atomic<int> refused{0};
    on_threads(threads, [&](int) {
        if (keep && pygate_thread_keep_gilstate(view) != PYGATE_OK) {
            refused++;
            return;
        }
        long most = 0;
        for (int i = 0; i < each; i++) {
            nb::gil_scoped_acquire gil;
            most = std::max(most, nb::cast<long>(fn()));
        }
        long seen = largest.load();
        while (most > seen && !largest.compare_exchange_weak(seen, most)) {
        }
    });
    if (refused.load() != 0)
        throw std::runtime_error("pygate_thread_keep_gilstate refused");
    return largest.load();
}

#if PY_VERSION_HEX >= 0x030F0000
PyInterpreterView *cpython_view;   // CPython's own PEP 788 view

long
pep788_calls(nb::callable fn, int threads, int each)
{
    std::atomic<long> total{0};
    std::atomic<int> refused{0};
    on_threads(threads, [&](int) {
        for (int i = 0; i < each; i++) {
            PyThreadStateToken *token = nullptr;
            if (i % 3 != 1) {   // CPython's entry outside (or alone)
                token = PyThreadState_EnsureFromView(cpython_view);
                if (token == nullptr) {
                    refused++;
                    return;
                }
            }
            {
                pygate::entered in(view);
                if (i % 3 == 1) {   // CPython's entry inside pygate's
                    token = PyThreadState_EnsureFromView(cpython_view);
                    if (token == nullptr) {
                        refused++;
                        return;
                    }
                }
                total += nb::cast<long>(fn());
                if (i % 3 == 1)
                    PyThreadState_Release(token);
            }
            if (i % 3 == 2)   // and CPython's entry alone, pygate's left
                total += nb::cast<long>(fn());
            if (i % 3 != 1)
                PyThreadState_Release(token);
        }
    });
    if (refused.load() != 0)
        throw std::runtime_error("PyThreadState_EnsureFromView refused");
    return total.load();
}
#endif

void
call_through_shutdown(nb::callable fn, int threads)
{
    shutdown_callers::start("nanobind_pool", view, fn.release().ptr(), threads);
}

} // namespace

NB_MODULE(nanobind_pool, m)
{
    if (pygate_view_from_current(&view) != PYGATE_OK)
        throw std::runtime_error("pygate_view_from_current failed");
    m.def("calls", &calls);
    m.def("acquire_calls", &acquire_calls);
#if PY_VERSION_HEX >= 0x030F0000
    cpython_view = PyInterpreterView_FromCurrent();
    if (cpython_view == nullptr)
        throw nb::python_error();
    m.def("pep788_calls", &pep788_calls);
#endif
    m.def("call_through_shutdown", &call_through_shutdown);
}
