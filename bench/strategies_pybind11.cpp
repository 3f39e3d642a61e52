// strategies_pybind11.cpp - pybind11's gil_scoped_acquire, as extensions
// built on pybind11 use it from their own threads.
#include "strategies.h"

#include <pybind11/pybind11.h>

namespace py = pybind11;

// pybind11 keeps its state ("internals") in the interpreter; an
// extension module makes it when it is imported, attached.  Do the same.
extern "C" void
bench_pybind11_init(void)
{
    py::detail::get_internals();
}

// Default: on a thread without a thread state, each acquire creates one
// and its destructor deletes it (PyGILState_Ensure's cost on 3.11+).
extern "C" double
bench_pybind11_default(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        py::gil_scoped_acquire gil;
        bench_call(fn);
    }
    return bench_now_ns() - t0;
}

// inc_ref(): the documented way to keep the thread state between
// acquires; dec_ref() at the end lets the last release delete it.
extern "C" double
bench_pybind11_keep(PyObject *fn, long n)
{
    {
        py::gil_scoped_acquire pin;
        pin.inc_ref();
    }
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        py::gil_scoped_acquire gil;
        bench_call(fn);
    }
    double t = bench_now_ns() - t0;
    {
        py::gil_scoped_acquire unpin;
        unpin.dec_ref();
    }
    return t;
}
