/*
 * test_decref.c - pygate_decref: dropping references from any thread.
 *
 * The objects are capsules whose destructor counts (C code, so the count
 * can be read after the interpreter is gone) and checks that it runs with
 * the runtime still initialized and a thread state attached.
 */
#include "harness.h"

#include <stdatomic.h>

#define SKIP 77   /* ctest SKIP_RETURN_CODE */

static _Atomic long destroyed;
static _Atomic long destroyed_detached;   /* must stay 0 */

static void
count_destruction(PyObject *capsule)
{
    (void)capsule;
    if (!Py_IsInitialized() || PyGILState_GetThisThreadState() == NULL)
        atomic_fetch_add(&destroyed_detached, 1);
    atomic_fetch_add(&destroyed, 1);
}

/* A new object that counts its destruction.  Caller is attached. */
static PyObject *
counted(void)
{
    static int token;
    PyObject *o = PyCapsule_New(&token, "test_decref", count_destruction);
    CHECK(o != NULL);
    return o;
}

/* n counted objects, made attached on the main interpreter. */
static PyObject **
make_objects(harness_python *py, int n)
{
    PyObject **objs = (PyObject **)calloc((size_t)n, sizeof *objs);
    CHECK(objs != NULL);
    PyEval_RestoreThread(py->main_ts);
    for (int i = 0; i < n; i++)
        objs[i] = counted();
    PyEval_SaveThread();
    return objs;
}

typedef struct drop {
    pygate_view *view;
    PyObject **objs;
    int from, to;
} drop;

/* Drops objs[from..to) from this thread, which never attaches. */
static void *
drop_all(void *arg)
{
    drop *d = (drop *)arg;
    for (int i = d->from; i < d->to; i++)
        CHECK_OK(pygate_decref(d->view, d->objs[i]));
    return NULL;
}

static void *
enter_once(void *arg)
{
    pygate_token tok;
    CHECK_OK(pygate_enter((pygate_view *)arg, &tok));
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

/* Free-threaded: an object whose last reference another thread drops is
 * freed by the thread that made it (CPython's biased reference counting
 * queues it there), the next time that thread looks for pending work: here
 * when `owner`, a state of that thread, runs a line of Python.  Nothing to
 * wait for with a GIL. */
static void
owner_catches_up(PyThreadState *owner)
{
#if PYGATE_TEST_FREE_THREADED
    PyEval_RestoreThread(owner);
    CHECK(PyRun_SimpleString("pass") == 0);
    PyEval_SaveThread();
#else
    (void)owner;
#endif
}

/* ---- scenarios ---------------------------------------------------------- */

/* Attached to the object's interpreter: an ordinary decref, at once. */
static void
attached_decref_is_immediate(void)
{
    harness_python py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyObject *o = counted();
    CHECK_OK(pygate_decref(py.view, o));
    CHECK(atomic_load(&destroyed) == 1);
    CHECK_OK(pygate_decref(py.view, NULL));   /* as Py_XDECREF */
    PyEval_SaveThread();
    harness_stop(&py);
    CHECK(atomic_load(&destroyed_detached) == 0);
}

/* Not attached: queued, and dropped by the next entry, on its thread. */
static void
unattached_decref_waits_for_an_entry(void)
{
    harness_python py = harness_start();
    PyObject **objs = make_objects(&py, 100);
    drop d = {py.view, objs, 0, 100};
    on_native_thread(drop_all, &d);
    CHECK(atomic_load(&destroyed) == 0);      /* nobody entered yet */
    on_native_thread(enter_once, py.view);
    owner_catches_up(py.main_ts);
    CHECK(atomic_load(&destroyed) == 100);
    free(objs);
    harness_stop(&py);
    CHECK(atomic_load(&destroyed_detached) == 0);
}

/* Eight threads drop 2,000 references each while two others keep
 * entering (and draining); every reference is dropped exactly once. */
static _Atomic int stop_entering;

static void *
keep_entering(void *arg)
{
    while (!atomic_load(&stop_entering))
        enter_once(arg);
    return NULL;
}

static void
many_threads_decref_concurrently(void)
{
    enum { DROPPERS = 8, EACH = 2000 };
    harness_python py = harness_start();
    PyObject **objs = make_objects(&py, DROPPERS * EACH);
    pthread_t enterers[2], droppers[DROPPERS];
    drop d[DROPPERS];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&enterers[i], NULL, keep_entering, py.view) == 0);
    for (int i = 0; i < DROPPERS; i++) {
        d[i] = (drop){py.view, objs, i * EACH, (i + 1) * EACH};
        CHECK(pthread_create(&droppers[i], NULL, drop_all, &d[i]) == 0);
    }
    for (int i = 0; i < DROPPERS; i++)
        CHECK(pthread_join(droppers[i], NULL) == 0);
    atomic_store(&stop_entering, 1);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(enterers[i], NULL) == 0);
    on_native_thread(enter_once, py.view);
    owner_catches_up(py.main_ts);
    CHECK(atomic_load(&destroyed) == DROPPERS * EACH);
    free(objs);
    harness_stop(&py);
    CHECK(atomic_load(&destroyed_detached) == 0);
}

/* Queued references nobody entered for are dropped by the shutdown hook,
 * attached, before thread states are torn down. */
static void
shutdown_drains_queued_decrefs(void)
{
    harness_python py = harness_start();
    PyObject **objs = make_objects(&py, 50);
    drop d = {py.view, objs, 0, 50};
    on_native_thread(drop_all, &d);
    CHECK(atomic_load(&destroyed) == 0);
    harness_stop(&py);
    CHECK(atomic_load(&destroyed) == 50);
    CHECK(atomic_load(&destroyed_detached) == 0);
    free(objs);
}

/* The same for a sub-interpreter that Py_EndInterpreter ends. */
static void
end_interpreter_drains_queued_decrefs(void)
{
    harness_python py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    PyThreadState *sub = Py_NewInterpreter();
    CHECK(sub != NULL);
    pygate_view *sub_view;
    CHECK_OK(pygate_view_from_current(&sub_view));
    PyObject *objs[20];
    for (int i = 0; i < 20; i++)
        objs[i] = counted();
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    drop d = {sub_view, objs, 0, 20};
    on_native_thread(drop_all, &d);
    CHECK(atomic_load(&destroyed) == 0);
    PyEval_RestoreThread(sub);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    CHECK(atomic_load(&destroyed) == 20);
    /* The interpreter and its objects are gone: nothing is touched. */
    CHECK_RC(pygate_decref(sub_view, (PyObject *)(uintptr_t)0x10),
             PYGATE_EGONE);
    CHECK_OK(pygate_view_close(sub_view));
    harness_stop(&py);
    CHECK(atomic_load(&destroyed_detached) == 0);
}

/* One unattached thread drops references of six interpreters in turn,
 * more than it keeps blocks for, and more than a block holds: each
 * interpreter's entry drops exactly its own.  Then one of them ends and
 * another is made (its record may reuse the ended one's memory): the
 * thread's blocks for the ended one are not reused for it. */
enum { INTERPS = 6, PER_ROUND = 50, ROUNDS = 6 };

static PyThreadState *
new_interpreter(harness_python *py, pygate_view **view, PyObject **objs,
                int n)
{
    PyEval_RestoreThread(py->main_ts);
    PyThreadState *ts = Py_NewInterpreter();
    CHECK(ts != NULL);
    CHECK_OK(pygate_view_from_current(view));
    for (int i = 0; i < n; i++)
        objs[i] = counted();
    PyThreadState_Swap(py->main_ts);
    PyEval_SaveThread();
    return ts;
}

static void
end_interpreter(harness_python *py, PyThreadState *ts, pygate_view *view)
{
    CHECK_OK(pygate_view_close(view));
    PyEval_RestoreThread(ts);
    Py_EndInterpreter(ts);
    PyThreadState_Swap(py->main_ts);
    PyEval_SaveThread();
}

static void
one_thread_many_interpreters(void)
{
    enum { EACH = PER_ROUND * ROUNDS };
    harness_python py = harness_start();
    pygate_view *views[INTERPS];
    PyThreadState *subs[INTERPS] = {NULL};
    static PyObject *objs[INTERPS][EACH];
    views[0] = py.view;
    PyEval_RestoreThread(py.main_ts);
    for (int i = 0; i < EACH; i++)
        objs[0][i] = counted();
    PyEval_SaveThread();
    for (int k = 1; k < INTERPS; k++)
        subs[k] = new_interpreter(&py, &views[k], objs[k], EACH);
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < INTERPS; k++)
            for (int i = 0; i < PER_ROUND; i++)   /* this thread: detached */
                CHECK_OK(pygate_decref(views[k],
                                       objs[k][round * PER_ROUND + i]));
    CHECK(atomic_load(&destroyed) == 0);
    for (int k = 0; k < INTERPS; k++) {
        on_native_thread(enter_once, views[k]);
        owner_catches_up(k == 0 ? py.main_ts : subs[k]);
        CHECK(atomic_load(&destroyed) == (long)(k + 1) * EACH);
    }
    /* Written again after the drains: the blocks are queued again. */
    PyObject *again[PER_ROUND];
    end_interpreter(&py, subs[1], views[1]);
    subs[1] = new_interpreter(&py, &views[1], again, PER_ROUND);
    for (int i = 0; i < PER_ROUND; i++)
        CHECK_OK(pygate_decref(views[1], again[i]));
    on_native_thread(enter_once, views[2]);   /* not its interpreter */
    owner_catches_up(subs[1]);
    CHECK(atomic_load(&destroyed) == INTERPS * EACH);
    on_native_thread(enter_once, views[1]);
    owner_catches_up(subs[1]);
    CHECK(atomic_load(&destroyed) == INTERPS * EACH + PER_ROUND);
    for (int k = 1; k < INTERPS; k++)
        end_interpreter(&py, subs[k], views[k]);
    harness_stop(&py);
    CHECK(atomic_load(&destroyed_detached) == 0);
}

/* While shutdown waits for an entry, decrefs made before the gate closed
 * are dropped by the hook; the first one after is refused, its reference
 * left alone; once Python is gone, PYGATE_EGONE. */
enum { TRIES = 20000 };
static pygate_view *closing_view;
static PyObject **tries;
static _Atomic int entered, may_leave, refused_rc = 1, queued;

static void *
hold_entry(void *arg)
{
    (void)arg;
    pygate_token tok;
    CHECK_OK(pygate_enter(closing_view, &tok));
    atomic_store(&entered, 1);
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&may_leave))
        usleep(1000);
    Py_END_ALLOW_THREADS
    CHECK_OK(pygate_leave(tok));
    return NULL;
}

static void *
decref_until_refused(void *arg)
{
    (void)arg;
    int i = 0, rc;
    while ((rc = pygate_decref(closing_view, tries[i])) == PYGATE_OK) {
        CHECK(++i < TRIES);
        atomic_store(&queued, i);
        usleep(200);
    }
    atomic_store(&queued, i);
    atomic_store(&refused_rc, rc);
    atomic_store(&may_leave, 1);
    return NULL;
}

static void
decref_codes(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    CHECK_RC(pygate_decref(NULL, NULL), PYGATE_EINVAL);
    harness_python py = harness_start();
    pygate_view *closed;
    CHECK_OK(pygate_view_from_main(&closed));
    CHECK_OK(pygate_view_close(closed));
    CHECK_RC(pygate_decref(closed, NULL), PYGATE_EINVAL);

    CHECK_OK(pygate_view_from_main(&closing_view));
    tries = make_objects(&py, TRIES);
    pthread_t holder, dropper;
    CHECK(pthread_create(&holder, NULL, hold_entry, NULL) == 0);
    while (!atomic_load(&entered))
        usleep(1000);
    CHECK(pthread_create(&dropper, NULL, decref_until_refused, NULL) == 0);
    while (atomic_load(&queued) < 5)
        usleep(1000);        /* some are queued before shutdown begins */
    harness_stop(&py);   /* the hook waits for hold_entry's entry */
    CHECK(pthread_join(holder, NULL) == 0);
    CHECK(pthread_join(dropper, NULL) == 0);
    CHECK_RC(atomic_load(&refused_rc), PYGATE_EFINALIZING);
    /* Exactly the queued ones were dropped, by the hook, attached. */
    CHECK(atomic_load(&queued) >= 5);
    CHECK(atomic_load(&destroyed) == atomic_load(&queued));
    CHECK(atomic_load(&destroyed_detached) == 0);
    int refused = atomic_load(&queued);
    CHECK_RC(pygate_decref(closing_view, tries[refused]), PYGATE_EGONE);
    CHECK_OK(pygate_view_close(closing_view));
    /* The refused references stay the caller's, as documented (and their
     * objects outlived the interpreter): tries keeps them reachable. */
}

static const scenario scenarios[] = {
    {"attached_decref_is_immediate", attached_decref_is_immediate},
    {"unattached_decref_waits", unattached_decref_waits_for_an_entry},
    {"many_threads_decref_concurrently", many_threads_decref_concurrently},
    {"shutdown_drains_queued_decrefs", shutdown_drains_queued_decrefs},
    {"end_interpreter_drains", end_interpreter_drains_queued_decrefs},
    {"one_thread_many_interpreters", one_thread_many_interpreters},
    {"decref_codes", decref_codes},
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
