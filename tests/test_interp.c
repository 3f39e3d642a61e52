/*
 * test_interp.c - native threads and sub-interpreters.
 */
#include "harness.h"

#include <sched.h>
#include <stdatomic.h>

#define SKIP 77   /* ctest SKIP_RETURN_CODE */

static harness_python py;

typedef struct sub {
    PyThreadState *tstate;
    pygate_view *view;
} sub;

/* Creates a sub-interpreter (own GIL if asked, 3.12+), marks its __main__
 * with `where = name`, makes a view of it, and returns detached. */
static sub
make_sub(int own_gil, const char *name)
{
    sub s = {NULL, NULL};
    PyEval_RestoreThread(py.main_ts);
#if PY_VERSION_HEX >= 0x030C0000
    if (own_gil) {
        PyInterpreterConfig config = {
            .use_main_obmalloc = 0,
            .allow_fork = 0,
            .allow_exec = 0,
            .allow_threads = 1,
            .allow_daemon_threads = 0,
            .check_multi_interp_extensions = 1,
            .gil = PyInterpreterConfig_OWN_GIL,
        };
        PyStatus st = Py_NewInterpreterFromConfig(&s.tstate, &config);
        CHECK(!PyStatus_Exception(st));
    } else
#endif
    {
        CHECK(!own_gil);
        s.tstate = Py_NewInterpreter();
    }
    CHECK(s.tstate != NULL);
    char code[64];
    snprintf(code, sizeof code, "where = '%s'\n", name);
    exec_ok(code);
    CHECK_OK(pygate_view_from_current(&s.view));
    CHECK(pygate_view_id(s.view) > 0);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
    return s;
}

static void
end_sub(sub *s)
{
    PyEval_RestoreThread(s->tstate);
    Py_EndInterpreter(s->tstate);
    PyThreadState_Swap(py.main_ts);
    PyEval_SaveThread();
}

static void
start(void)
{
    py = harness_start();
    PyEval_RestoreThread(py.main_ts);
    exec_ok("where = 'main'\n");
    PyEval_SaveThread();
}

static void
stop(void)
{
    harness_stop(&py);
}

/* True when the attached interpreter's __main__ says `where == name`. */
static int
in(const char *name)
{
    PyObject *where = eval("where");
    CHECK(where != NULL);
    int same = PyUnicode_CompareWithASCIIString(where, name) == 0;
    Py_DECREF(where);
    return same;
}

/* ---- threads entering main and sub in any order ------------------------- */

typedef struct walker {
    sub *subs;
    int nsubs;
    unsigned seed;
    int parked;            /* set when done; the thread then waits */
} walker;

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int release_parked;

static void
enter_check_leave(pygate_view *v, const char *name)
{
    pygate_token tok;
    CHECK_OK(pygate_enter(v, &tok));
    CHECK(in(name));
    CHECK_OK(pygate_leave(tok));
}

static void *
walk(void *arg)
{
    walker *w = (walker *)arg;
    char name[16];
    for (int i = 0; i < 300; i++) {
        int k = (int)(rand_r(&w->seed) % (unsigned)(w->nsubs + 1));
        if (k == w->nsubs) {
            enter_check_leave(py.view, "main");
            continue;
        }
        snprintf(name, sizeof name, "sub%d", k);
        /* Switch inside an entry of main: the leave restores main. */
        pygate_token outer, inner;
        CHECK_OK(pygate_enter(py.view, &outer));
        PyThreadState *mts = PyThreadState_Get();
        CHECK(in("main"));
        CHECK_OK(pygate_enter(w->subs[k].view, &inner));
        CHECK(in(name));
        CHECK(PyThreadState_Get() != mts);
        CHECK(PyGILState_GetThisThreadState() == PyThreadState_Get());
        CHECK_OK(pygate_leave(inner));
        CHECK(PyThreadState_Get() == mts);
        CHECK(in("main"));
        CHECK_OK(pygate_leave(outer));
        /* And straight in from outside. */
        enter_check_leave(w->subs[k].view, name);
        /* The gilstate slot never keeps a sub-interpreter's state. */
        PyThreadState *slot = PyGILState_GetThisThreadState();
        CHECK(slot == NULL || slot == mts);
    }
    pthread_mutex_lock(&park_lock);
    w->parked = 1;
    pthread_cond_broadcast(&park_cond);
    while (!release_parked)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    /* The subs were ended while this thread held states for them. */
    pygate_token tok;
    for (int k = 0; k < w->nsubs; k++)
        CHECK_RC(pygate_enter(w->subs[k].view, &tok), PYGATE_EGONE);
    enter_check_leave(py.view, "main");
    return NULL;
}

#define WALKERS 4

static void
walk_interpreters(int own_gil)
{
    start();
    sub subs[2] = {make_sub(own_gil, "sub0"), make_sub(own_gil, "sub1")};
    pthread_t th[WALKERS];
    walker w[WALKERS];
    release_parked = 0;
    for (int i = 0; i < WALKERS; i++) {
        w[i] = (walker){subs, 2, (unsigned)i + 1, 0};
        CHECK(pthread_create(&th[i], NULL, walk, &w[i]) == 0);
    }
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < WALKERS; i++)
        while (!w[i].parked)
            pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);

    /* Every walker holds a cached state in each sub: ending them must not
     * abort with "not the last thread". */
    for (int k = 0; k < 2; k++)
        end_sub(&subs[k]);

    pthread_mutex_lock(&park_lock);
    release_parked = 1;
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    for (int i = 0; i < WALKERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int k = 0; k < 2; k++)
        CHECK_OK(pygate_view_close(subs[k].view));
    stop();
}

static void
shared_gil_subinterpreters(void)
{
    walk_interpreters(0);
}

static void
own_gil_subinterpreters(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    walk_interpreters(1);
#else
    printf("skipped: own-GIL interpreters need CPython 3.12+\n");
    exit(SKIP);
#endif
}

/* ---- the gilstate slot agrees with the attached state ------------------- */

/* While attached, the slot holds the attached state: PyGILState_Ensure in
 * a callback finds it and makes no second one. */
static void
check_slot_is_attached(void)
{
    PyThreadState *ts = PyThreadState_Get();
    CHECK(PyGILState_GetThisThreadState() == ts);
    PyGILState_STATE g = PyGILState_Ensure();
    CHECK(PyThreadState_Get() == ts);
    CHECK(eval_long("1 + 1") == 2);
    PyGILState_Release(g);
    CHECK(PyThreadState_Get() == ts);
    CHECK(PyGILState_GetThisThreadState() == ts);
}

/* Outside every entry the slot never holds a sub-interpreter's state (its
 * end would free it from another thread): only what it held before. */
static void
check_slot_outside(PyThreadState *expected)
{
    CHECK(pygate_thread_depth() == 0);
    CHECK(PyGILState_GetThisThreadState() == expected);
}

static pygate_token
enter_checked(pygate_view *v, const char *name)
{
    pygate_token tok;
    CHECK_OK(pygate_enter(v, &tok));
    CHECK(in(name));
    check_slot_is_attached();
    return tok;
}

static void *
every_transition(void *arg)
{
    sub *s = (sub *)arg;
    /* A thread with an empty slot enters a sub-interpreter. */
    check_slot_outside(NULL);
    CHECK_OK(pygate_leave(enter_checked(s->view, "sub")));
    check_slot_outside(NULL);
    /* Main: its state stays in the slot for later PyGILState calls. */
    CHECK_OK(pygate_leave(enter_checked(py.view, "main")));
    PyThreadState *mts = PyGILState_GetThisThreadState();
    CHECK(mts != NULL);
    /* The sub again, from outside, with main's state in the slot. */
    CHECK_OK(pygate_leave(enter_checked(s->view, "sub")));
    check_slot_outside(mts);
    /* main -> sub -> back to main. */
    pygate_token outer = enter_checked(py.view, "main");
    CHECK_OK(pygate_leave(enter_checked(s->view, "sub")));
    CHECK(in("main"));
    check_slot_is_attached();
    CHECK_OK(pygate_leave(outer));
    check_slot_outside(mts);
    /* sub -> main -> back to the sub. */
    outer = enter_checked(s->view, "sub");
    PyThreadState *sts = PyThreadState_Get();
    CHECK_OK(pygate_leave(enter_checked(py.view, "main")));
    CHECK(PyThreadState_Get() == sts);
    check_slot_is_attached();
    /* Detach and reattach inside the sub's entry. */
    pygate_token det;
    CHECK_OK(pygate_detach(&det));
    CHECK(PyGILState_GetThisThreadState() == sts);
    CHECK_OK(pygate_reattach(det));
    check_slot_is_attached();
    /* Nested entry of the same sub. */
    CHECK_OK(pygate_leave(enter_checked(s->view, "sub")));
    check_slot_is_attached();
    CHECK_OK(pygate_leave(outer));
    check_slot_outside(mts);
    /* Releasing the thread's states empties the slot (they were its). */
    CHECK_OK(pygate_thread_release());
    check_slot_outside(NULL);
    CHECK_OK(pygate_leave(enter_checked(s->view, "sub")));
    check_slot_outside(NULL);
    return NULL;
}

static void
gilstate_slot_agrees(void)
{
    start();
#if PY_VERSION_HEX >= 0x030C0000
    sub s = make_sub(1, "sub");
#else
    sub s = make_sub(0, "sub");
#endif
    on_native_thread(every_transition, &s);
    end_sub(&s);   /* no state of that thread left in it */
    CHECK_OK(pygate_view_close(s.view));
    stop();
}

/* ---- views name interpreters by ID, not address ------------------------- */

static void *
enter_first(void *arg)
{
    enter_check_leave(((sub *)arg)->view, "first");
    return NULL;
}

static void *
enter_gone_and_new(void *arg)
{
    sub *s = (sub *)arg;
    pygate_token tok;
    CHECK_RC(pygate_enter(s[0].view, &tok), PYGATE_EGONE);
    enter_check_leave(s[1].view, "second");
    return NULL;
}

static void
views_survive_their_interpreter(void)
{
    start();
    sub s[2];
    s[0] = make_sub(0, "first");
    on_native_thread(enter_first, &s[0]);   /* leaves a cached state */
    end_sub(&s[0]);
    s[1] = make_sub(0, "second");   /* may reuse the first one's address */
    CHECK(pygate_view_id(s[0].view) != pygate_view_id(s[1].view));
    on_native_thread(enter_gone_and_new, s);
    /* The main thread too: the old view fails, closing it still works. */
    pygate_token tok;
    CHECK_RC(pygate_enter(s[0].view, &tok), PYGATE_EGONE);
    CHECK_OK(pygate_view_close(s[0].view));
    end_sub(&s[1]);
    CHECK_OK(pygate_view_close(s[1].view));
    stop();
}

/* ---- the first views of an interpreter, made at one moment ------------- */

/* pygate's records (internal, from the static library; tests/soak.c too). */
long pygate__records_count(void);
void pygate__records_describe(FILE *out);

enum { FIRST_VIEWERS = 16 };
static PyInterpreterState *fresh_interp;
static _Atomic int viewers_ready, viewers_go;
static int64_t viewer_ids[FIRST_VIEWERS];

/* Attaches a state of its own to fresh_interp and takes a view from
 * there, all threads at once: on a free-threaded build they run side by
 * side and each may find the interpreter without a record. */
static void *
first_view(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&viewers_ready, 1);
    while (!atomic_load(&viewers_go))
        sched_yield();
    PyThreadState *ts = PyThreadState_New(fresh_interp);
    CHECK(ts != NULL);
    PyEval_RestoreThread(ts);
    pygate_view *v;
    CHECK_OK(pygate_view_from_current(&v));
    viewer_ids[i] = pygate_view_id(v);
    CHECK_OK(pygate_view_close(v));
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent();
    return NULL;
}

/* They all get the one record of the interpreter (one shutdown hook), in
 * each of ten rounds (without the one-step publication, a free-threaded
 * build made two records in about one round of six). */
static void
first_views_at_once(void)
{
    start();
    for (int round = 0; round < 10; round++) {
        PyEval_RestoreThread(py.main_ts);
        PyThreadState *sub_ts = Py_NewInterpreter();
        CHECK(sub_ts != NULL);
        fresh_interp = sub_ts->interp;   /* 3.8 has no getter */
        PyThreadState_Swap(py.main_ts);
        PyEval_SaveThread();
        long before = pygate__records_count();
        atomic_store(&viewers_ready, 0);
        atomic_store(&viewers_go, 0);
        pthread_t th[FIRST_VIEWERS];
        for (int i = 0; i < FIRST_VIEWERS; i++)
            CHECK(pthread_create(&th[i], NULL, first_view,
                                 (void *)(intptr_t)i) == 0);
        while (atomic_load(&viewers_ready) < FIRST_VIEWERS)
            sched_yield();
        atomic_store(&viewers_go, 1);
        for (int i = 0; i < FIRST_VIEWERS; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
        long after = pygate__records_count();
        if (after != before + 1)
        {
            printf("round %d: records %ld before, %ld after %d first views"
                   " at once:\n", round, before, after, FIRST_VIEWERS);
            pygate__records_describe(stdout);
        }
        CHECK(after == before + 1);
        for (int i = 1; i < FIRST_VIEWERS; i++)
            CHECK(viewer_ids[i] == viewer_ids[0]);
        PyEval_RestoreThread(sub_ts);
        Py_EndInterpreter(sub_ts);
        PyThreadState_Swap(py.main_ts);
        PyEval_SaveThread();
        CHECK(pygate__records_count() == before);
    }
    puts("10 rounds of 16 first views at once: one record each time");
    stop();
}

static const scenario scenarios[] = {
    {"first_views_at_once", first_views_at_once},
    {"shared_gil_subinterpreters", shared_gil_subinterpreters},
    {"own_gil_subinterpreters", own_gil_subinterpreters},
    {"views_survive_their_interpreter", views_survive_their_interpreter},
    {"gilstate_slot_agrees", gilstate_slot_agrees},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
