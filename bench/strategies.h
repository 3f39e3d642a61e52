/*
 * strategies.h - what the C benchmark and its C++ parts (pybind11,
 * nanobind) share.
 */
#ifndef PYGATE_BENCH_STRATEGIES_H
#define PYGATE_BENCH_STRATEGIES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

double bench_now_ns(void);
void bench_call(PyObject *fn);   /* calls fn(); exits on an exception */

/* Each loop makes n calls of fn with its own way of attaching, on the
 * calling (unattached) thread, and returns the ns they took. */
#ifdef PYGATE_HAVE_PYBIND11
static const int have_pybind11 = 1;
void bench_pybind11_init(void);   /* attached, before the first loop */
double bench_pybind11_default(PyObject *fn, long n);
double bench_pybind11_keep(PyObject *fn, long n);
#else
static const int have_pybind11 = 0;
#define bench_pybind11_init() ((void)0)
#define bench_pybind11_default NULL
#define bench_pybind11_keep NULL
#endif

#ifdef PYGATE_HAVE_NANOBIND
static const int have_nanobind = 1;
double bench_nanobind_default(PyObject *fn, long n);
double bench_nanobind_keep(PyObject *fn, long n);
#else
static const int have_nanobind = 0;
#define bench_nanobind_default NULL
#define bench_nanobind_keep NULL
#endif

#ifdef __cplusplus
}
#endif

#endif
