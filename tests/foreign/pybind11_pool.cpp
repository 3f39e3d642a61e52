/*
 * pybind11_pool.cpp - a pybind11 module whose own C++ threads call Python
 * callbacks through pygate, as docs/API.md tells a pybind11 user to
 * ("pybind11 and nanobind beside pygate"); tests/foreign/pybind11_pool.py
 * runs it.
 *
 *   calls(fn, threads, each)  each of `threads` native threads calls fn()
 *       `each` times in pygate entries: pybind11's gil_scoped_acquire
 *       inside an entry (it finds the attached state and does nothing),
 *       gil_scoped_release inside an entry around native work, and
 *       pygate entered inside pybind11's acquire; returns the sum of what
 *       fn returned.
 *   call_through_shutdown(fn, threads)  starts native threads that call
 *       fn() through pygate until an entry is refused, and returns: the
 *       interpreter then finalizes under them.  At exit (after
 *       Py_FinalizeEx) the module joins them and prints how they stopped.
 */
#include <pybind11/pybind11.h>

#include "shutdown_callers.h"

#include <atomic>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

pygate_view *view;   // the main interpreter's, made at import

long
calls(py::function fn, int threads, int each)
{
    std::atomic<long> total{0};
    std::vector<std::thread> pool;
    {
        py::gil_scoped_release caller;   // the pool's threads need the GIL
        for (int t = 0; t < threads; t++)
            pool.emplace_back([&] {
                for (int i = 0; i < each; i++) {
                    if (i % 3 == 2) {   // pygate inside pybind11's acquire
                        py::gil_scoped_acquire gil;
                        pygate::entered in(view);
                        total += fn().cast<long>();
                        continue;
                    }
                    pygate::entered in(view);
                    if (i % 3 == 1) {   // pybind11's acquire inside pygate
                        py::gil_scoped_acquire nested;
                        total += fn().cast<long>();
                    } else {
                        total += fn().cast<long>();
                    }
                    py::gil_scoped_release native;   // native work here
                }
            });
        for (auto &th : pool)
            th.join();
    }
    return total.load();
}

void
call_through_shutdown(py::function fn, int threads)
{
    shutdown_callers::start("pybind11_pool", view, fn.release().ptr(), threads);
}

} // namespace

PYBIND11_MODULE(pybind11_pool, m)
{
    if (pygate_view_from_current(&view) != PYGATE_OK)
        throw std::runtime_error("pygate_view_from_current failed");
    m.def("calls", &calls);
    m.def("call_through_shutdown", &call_through_shutdown);
}
