/*
 * shutdown_callers.h - what the binding-library modules of tests/foreign
 * share: native threads left calling Python through pygate while the
 * interpreter finalizes, joined at exit (after Py_FinalizeEx) with a line
 * that says how they stopped (tests/CMakeLists.txt checks it: every thread
 * refused cleanly, none otherwise).
 */
#ifndef PYGATE_TESTS_SHUTDOWN_CALLERS_H
#define PYGATE_TESTS_SHUTDOWN_CALLERS_H

#include <pygate.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace shutdown_callers {

inline const char *module_name;
inline std::vector<std::thread> callers;
inline std::atomic<long> calls_made{0};
inline std::atomic<int> stopped_finalizing{0}, stopped_other{0};

inline void
join_at_exit()
{
    for (auto &th : callers)
        th.join();
    std::printf("%s: %zu threads stopped at shutdown (%d refused with"
                " PYGATE_EFINALIZING or PYGATE_EGONE, %d otherwise) after"
                " %ld calls\n", module_name, callers.size(),
                stopped_finalizing.load(), stopped_other.load(),
                calls_made.load());
    std::fflush(stdout);
}

/* Starts `threads` native threads that call f() through pygate (view: the
 * interpreter's) until an entry is refused, and returns.  f is a reference
 * the threads use without the GIL's help to keep it: never dropped (the
 * interpreter that could drop it is gone by then).  Call while attached,
 * from one module (module: its name, for the line at exit). */
inline void
start(const char *module, pygate_view *view, PyObject *f, int threads)
{
    static std::once_flag once;
    module_name = module;
    std::call_once(once, [] { std::atexit(join_at_exit); });
    for (int t = 0; t < threads; t++)
        callers.emplace_back([view, f] {
            for (;;) {
                pygate::entered in(view, std::nothrow);
                if (!in.ok()) {
                    int rc = in.code();
                    (rc == PYGATE_EFINALIZING || rc == PYGATE_EGONE
                         ? stopped_finalizing : stopped_other)++;
                    return;
                }
                PyObject *r = PyObject_CallObject(f, nullptr);
                if (r == nullptr)
                    PyErr_Clear();
                Py_XDECREF(r);
                calls_made++;
            }
        });
}

} // namespace shutdown_callers

#endif
