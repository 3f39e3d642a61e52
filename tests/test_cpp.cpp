/*
 * test_cpp.cpp - pygate.hpp: scopes that leave when an exception unwinds,
 * owning handles, callables with captures whose lifetime is defined,
 * errors as exceptions and the noexcept path, PyGILState callers on a kept
 * state.  Built as C++17 and C++20.
 */
#include "harness.h"

#include <pygate.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

static harness_python py;

/* ---- scopes ------------------------------------------------------------- */

/* An entered scope leaves when a C++ exception unwinds through it. */
static void
scopes_leave_on_exceptions(void)
{
    py = harness_start();
    bool caught = false;
    try {
        pygate::entered in(py.view);
        CHECK(PyGILState_Check());
        CHECK(pygate_thread_depth() == 1);
        {
            pygate::entered again(py.view);   /* nested: a count */
            CHECK(pygate_thread_depth() == 2);
#if PYGATE_INLINE_NESTING
            /* counted inline (pygate.h), and left inline by the unwind */
            CHECK(pygate__fast_v1.nested_ == 1);
#endif
            throw std::runtime_error("unwind");
        }
    } catch (const std::runtime_error &) {
        caught = true;
    }
    CHECK(caught);
    CHECK(pygate_thread_depth() == 0);
    CHECK(!PyGILState_Check());
    /* Detached inside an entry: other threads may run Python. */
    {
        pygate::entered in(py.view);
        {
            pygate::detached out;
            CHECK(!PyGILState_Check());
        }
        CHECK(PyGILState_Check());
    }
    /* A scope moves (within its thread) and leaves once. */
    {
        pygate::entered a(py.view);
        pygate::entered b(std::move(a));
        CHECK(!a.ok() && b.ok());
        CHECK(pygate_thread_depth() == 1);
    }
    CHECK(pygate_thread_depth() == 0);
    /* Entering through something that is not a view: an exception, or a
     * code on the noexcept path; nothing is left to leave. */
    pygate_view *bogus = reinterpret_cast<pygate_view *>(0x18);
    try {
        pygate::entered in(bogus);
        CHECK(!"entered through a bogus view");
    } catch (const pygate::error &e) {
        CHECK(e.code() == PYGATE_EINVAL);
        CHECK(std::string(e.what()).find("pygate_enter: PYGATE_EINVAL")
              != std::string::npos);
    }
    {
        pygate::entered in(bogus, std::nothrow);
        CHECK(!in.ok() && in.code() == PYGATE_EINVAL);
    }
    CHECK(pygate_thread_depth() == 0);
    harness_stop(&py);
}

/* ---- owning handles ------------------------------------------------------ */

static void
handles_close_themselves(void)
{
    py = harness_start();
    pygate_view *raw = nullptr;
    {
        pygate::view v = pygate::view::from_main();
        CHECK(v.id() == 0);
        raw = v.get();
        pygate::view moved = std::move(v);
        CHECK(!v && moved.get() == raw);
        pygate::guard g = pygate::guard::from(moved);
        CHECK(pygate_guard_id(g.get()) == 0);
    }
    CHECK(pygate_view_id(raw) == PYGATE_EINVAL);   /* closed once */
    harness_stop(&py);
    try {
        pygate::view::from_main();
        CHECK(!"a view of a Python not running");
    } catch (const pygate::error &e) {
        CHECK(e.code() == PYGATE_ENOTINIT);
    }
}

/* ---- pools and callables ------------------------------------------------ */

/* Each callable holds a reference to `alive`: once every job ran or was
 * cancelled, only the test's own is left. */
static void
posted_callables_live_until_they_end(void)
{
    py = harness_start();
    auto alive = std::make_shared<int>(0);
    std::atomic<int> ran{0};
    {
        pygate::pool workers(py.view);
        for (int i = 0; i < 1000; i++)
            workers.post([alive, &ran, i] {
                PyObject *n = PyLong_FromLong(i);   /* attached */
                CHECK(n != nullptr);
                Py_DECREF(n);
                ran++;
            });
    }   /* closed: the queue finished */
    CHECK(ran == 1000);
    CHECK(alive.use_count() == 1);
    /* Cancelled ones are destroyed too. */
    std::atomic<bool> release{false};
    pygate_pool_options cancel = {1, 0, 0, PYGATE_POOL_CANCEL, 0};
    {
        pygate::pool workers(py.view, &cancel);
        workers.post([&release] {
            pygate::detached out;
            while (!release)
                usleep(1000);
        });
        for (int i = 0; i < 100; i++)
            CHECK(workers.post_nothrow([alive, &ran] { ran++; })
                  == PYGATE_OK);
        release = true;
    }
    printf("cancel pool: %d of 100 ran\n", ran.load() - 1000);
    CHECK(alive.use_count() == 1);
    /* A posted callable's C++ exception cannot cross the worker's C
     * frames: it is reported as a Python exception nobody collected. */
    {
        pygate::entered in(py.view);
        record_unraisable();
    }
    {
        pygate::pool workers(py.view);
        workers.post([] { throw std::runtime_error("posted and thrown"); });
    }
    {
        pygate::entered in(py.view);
        CHECK(eval_long("len([u for u in unraisable"
                        " if u == 'C++ exception: posted and thrown'])")
              == 1);
    }
}

static int
raise_value_error(void)
{
    PyErr_SetString(PyExc_ValueError, "raised in a job");
    return -1;
}

static void
jobs_give_results_and_exceptions(void)
{
    py = harness_start();
    pygate::pool workers(py.view);
    pygate::job answer = workers.submit([] { return 6 * 7; });   /* CTAD */
    auto nothing = workers.submit([] {});
    auto thrown = workers.submit(
        []() -> int { throw std::out_of_range("thrown in a job"); });
    auto raised = workers.submit(raise_value_error);
    CHECK(answer.get() == 42);
    CHECK(nothing.get() == 0);
    try {
        thrown.get();
        CHECK(!"the C++ exception was lost");
    } catch (const std::out_of_range &e) {
        CHECK(std::string(e.what()) == "thrown in a job");
    }
    try {
        raised.get();
        CHECK(!"the Python exception was lost");
    } catch (const pygate::error &e) {
        CHECK(e.code() == PYGATE_EEXCEPTION);
        CHECK(std::string(e.what()).find("ValueError: raised in a job")
              != std::string::npos);
    }
    CHECK(answer.ready());
    workers.reset();   /* closes before Python goes */
    harness_stop(&py);
}

/* pygate_call with a lambda: its result, and its C++ exception thrown in
 * the caller. */
static void
call_runs_callables(void)
{
    py = harness_start();
    int seen = 0;
    CHECK(pygate::call(py.view, [&seen] {
              seen = PyGILState_Check();
              return 5;
          }) == 5);
    CHECK(seen == 1);
    try {
        pygate::call(py.view, []() -> int { throw std::logic_error("no"); });
        CHECK(!"the C++ exception was lost");
    } catch (const std::logic_error &e) {
        CHECK(std::string(e.what()) == "no");
    }
    harness_stop(&py);
}

static void
interp_pool_from_cpp(void)
{
    py = harness_start();
    pygate_interp_pool_options o = {};
    o.interpreters = 2;
    {
        pygate::interp_pool pool(&o);
        CHECK(pool.size() == 2);
        pygate::value r = pool.call(PYGATE_ANY_INTERP, "binascii", "crc32",
                                    {pygate::value::bytes("hello", 5)});
        CHECK(r.kind() == PYGATE_VALUE_INT && r.integer() == 907060870);
        try {
            pool.call(0, "math", "sqrt", {pygate::value::of(-1.0)});
            CHECK(!"the Python exception was lost");
        } catch (const pygate::error &e) {
            CHECK(e.code() == PYGATE_EEXCEPTION);
            CHECK(std::string(e.what()).find("ValueError")
                  != std::string::npos);
        }
        std::atomic<int> ran{0};
        for (int i = 0; i < 10; i++)
            pool.post(i % 2, [&ran] { ran++; });
        CHECK(pool.submit(1, [] { return 3; }).get() == 3);
        pool.reset();
        CHECK(ran == 10);
    }
    try {
        pygate_interp_pool_options bad = {};
        bad.interpreters = 1000;
        pygate::interp_pool pool(&bad);
        CHECK(!"opened with 1000 interpreters");
    } catch (const pygate::error &e) {
        CHECK(e.code() == PYGATE_EINVAL);
        CHECK(std::string(e.what()).find("interpreters = 1000")
              != std::string::npos);
    }
    harness_stop(&py);
}

/* ---- code that calls PyGILState itself ---------------------------------- */

/* After keep_gilstate, a thread's PyGILState pairs and its pygate entries
 * all use one state; an attached thread is refused with PYGATE_EBUSY. */
static void
gilstate_pairs_use_the_kept_state(void)
{
    py = harness_start();
    {
        pygate::entered in(py.view);
        int code = 0;
        try {
            pygate::keep_gilstate(py.view);
        } catch (const pygate::error &e) {
            code = e.code();
        }
        CHECK(code == PYGATE_EBUSY);
    }
    PyThreadState *seen[3] = {nullptr, nullptr, nullptr};
    int code = 0;
    std::thread foreign([&] {
        try {
            pygate::keep_gilstate(py.view);
        } catch (const pygate::error &e) {
            code = e.code();
            return;
        }
        for (int i = 0; i < 2; i++) {   /* as foreign code would */
            PyGILState_STATE g = PyGILState_Ensure();
            seen[i] = PyThreadState_Get();
            PyGILState_Release(g);
        }
        pygate::entered in(py.view);
        seen[2] = PyThreadState_Get();
    });
    foreign.join();
    CHECK(code == 0);
    CHECK(seen[0] != nullptr && seen[0] == seen[1] && seen[1] == seen[2]);
    harness_stop(&py);
}

static const scenario scenarios[] = {
    {"scopes_leave_on_exceptions", scopes_leave_on_exceptions},
    {"handles_close_themselves", handles_close_themselves},
    {"posted_callables_live_until_they_end",
     posted_callables_live_until_they_end},
    {"jobs_give_results_and_exceptions", jobs_give_results_and_exceptions},
    {"call_runs_callables", call_runs_callables},
    {"interp_pool_from_cpp", interp_pool_from_cpp},
    {"gilstate_pairs_use_the_kept_state", gilstate_pairs_use_the_kept_state},
    {NULL, NULL}};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
