// strategies_nanobind.cpp - nanobind's gil_scoped_acquire, as extensions
// built on nanobind use it from their own threads: a PyGILState pair
// (nanobind 2.12), used here from nanobind's header alone.
#include "strategies.h"

#include <nanobind/nanobind.h>

namespace nb = nanobind;

// Default: on a thread without a thread state, each acquire creates one
// and its destructor deletes it (PyGILState_Ensure's cost on 3.12+).
extern "C" double
bench_nanobind_default(PyObject *fn, long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        nb::gil_scoped_acquire gil;
        bench_call(fn);
    }
    return bench_now_ns() - t0;
}

// An outer acquire kept open (released around the loop, so the thread is
// detached between calls as in the other strategies): how a nanobind user
// keeps the thread state.
extern "C" double
bench_nanobind_keep(PyObject *fn, long n)
{
    nb::gil_scoped_acquire outer;
    double t;
    {
        nb::gil_scoped_release detached;
        double t0 = bench_now_ns();
        for (long i = 0; i < n; i++) {
            nb::gil_scoped_acquire gil;
            bench_call(fn);
        }
        t = bench_now_ns() - t0;
    }
    return t;
}
