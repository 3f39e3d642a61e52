/*
 * pybind11_host.cpp - a C++ host that embeds Python with pygate and whose
 * threads call Python through pybind11, which keeps per-interpreter state
 * (its "internals") that an extension module makes when it is imported,
 * attached; a host has no such import.
 *
 *   pybind11_host internals  the host makes pybind11's internals inside
 *       one pygate entry at start-up, attached as a module import would;
 *       then eight threads start at once and call Python through
 *       pybind11's gil_scoped_acquire alone, every other call inside a
 *       pygate entry too; every call is counted and the host shuts down.
 *   pybind11_host bare       the same threads with no internals made
 *       first (pybind11 then makes them from whichever thread comes
 *       first): not a test, for measuring by hand what the start-up entry
 *       avoids (docs/API.md, "pybind11 (and nanobind) beside pygate").
 *       Making each thread's first acquire inside an entry is not
 *       enough without a GIL: entries then run at once.
 */
#include <pybind11/embed.h>

#include <pygate.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

const int THREADS = 8, EACH = 200;

// Releases every thread at once, for the widest race on the internals.
struct start_line {
    std::mutex lock;
    std::condition_variable go;
    int waiting = 0;

    void wait_for_all()
    {
        std::unique_lock<std::mutex> hold(lock);
        if (++waiting == THREADS)
            go.notify_all();
        go.wait(hold, [this] { return waiting == THREADS; });
    }
};

long
call_len(void)
{
    // len() of a fresh list of three: a real call through pybind11.
    py::list items;
    for (int i = 0; i < 3; i++)
        items.append(i);
    return static_cast<long>(py::len(items)) - 2;
}

} // namespace

int
main(int argc, char **argv)
{
    bool bare = argc > 1 && std::strcmp(argv[1], "bare") == 0;
    if (pygate_host_init(nullptr) != PYGATE_OK) {
        std::fprintf(stderr, "pybind11_host: pygate_host_init failed\n");
        return 1;
    }
    pygate_view *view = pygate_host_view();
    if (!bare) {
        pygate::entered in(view);
        py::detail::get_internals();
    }
    start_line line;
    std::atomic<long> calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < THREADS; t++)
        threads.emplace_back([&] {
            line.wait_for_all();
            for (int i = 0; i < EACH; i++) {
                if (i % 2 == 1 && !bare) {
                    pygate::entered in(view);
                    py::gil_scoped_acquire nested;
                    calls += call_len();
                    continue;
                }
                py::gil_scoped_acquire gil;
                calls += call_len();
            }
        });
    for (auto &th : threads)
        th.join();
    int rc = pygate_host_shutdown();
    std::printf("pybind11_host %s: %ld calls from %d threads, shutdown %s\n",
                bare ? "bare" : "internals", calls.load(), THREADS,
                pygate_err_name(rc));
    return calls.load() == long(THREADS) * EACH && rc == PYGATE_OK ? 0 : 1;
}
