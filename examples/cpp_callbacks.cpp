/*
 * cpp_callbacks.cpp - a C++ program whose own threads call Python, with
 * pygate.hpp: scoped entries on std::threads, and lambdas on a pygate
 * worker pool, while the host does native work with the GIL released.
 * Usage: cpp_callbacks [CALLS_PER_THREAD]
 */
#include <pygate.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int
main(int argc, char **argv)
{
    long calls = argc > 1 ? std::atol(argv[1]) : 10000;
    if (pygate_host_init(nullptr) != PYGATE_OK)   /* initializes, detaches */
        return 1;
    pygate_view *py = pygate_host_view();
    {
        pygate::entered in(py);
        /* The lock: `total += n` is a read and a write, and on a
         * free-threaded CPython the threads run it at the same time. */
        PyRun_SimpleString("import threading\n"
                           "total = 0\n"
                           "total_lock = threading.Lock()\n"
                           "def add(n):\n"
                           "    global total\n"
                           "    with total_lock:\n"
                           "        total += n\n");
    }

    /* Threads of the program's own, each entering around its calls. */
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([py, calls] {
            for (long i = 0; i < calls; i++) {
                pygate::entered in(py, std::nothrow);
                if (!in.ok())
                    return;   /* Python is shutting down */
                PyRun_SimpleString("add(1)");
            }
        });
    for (auto &t : threads)
        t.join();

    /* The same calls as lambdas on a pool; the pool owns each one until it
     * has run. */
    std::atomic<long> posted{0};
    {
        pygate::pool workers(py);
        for (long i = 0; i < 4 * calls; i++)
            workers.post([&posted] {
                PyRun_SimpleString("add(1)");
                posted++;
            });
    }   /* closing finishes the queue */

    long total;
    {
        pygate::entered in(py);
        PyObject *main = PyImport_AddModule("__main__");
        PyObject *v = PyObject_GetAttrString(main, "total");
        total = v != nullptr ? PyLong_AsLong(v) : -1;
        Py_XDECREF(v);
    }
    std::printf("cpp_callbacks: 4 std::threads and a pool made %ld calls;"
                " Python counted %ld\n", 8 * calls, total);
    int rc = pygate_host_shutdown();
    return rc == PYGATE_OK && total == 8 * calls && posted == 4 * calls
               ? 0
               : 1;
}
