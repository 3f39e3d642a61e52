/*
 * test_alloc.c - every resource pygate acquires can fail, SQLite's way.
 *
 * One run of a whole life (a view, entries nested deep, a guard, a deferred
 * decref, a worker pool and its jobs, an interpreter pool and a call with
 * values) counts the acquisitions pygate makes (src/alloc.c: memory,
 * threads, CPython thread states).  Then, for every N, a child process
 * makes the N-th fail and lives the same life, checking at each call that
 * it succeeded or returned PYGATE_ENOMEM with nothing half-done (not
 * attached after a failed entry, still attached at the same depth after a
 * failed nested one, nothing queued after a failed submit), and that the
 * same call made again succeeds.  At the end of each child: every thread
 * state pygate made is gone, and finalization finds no guard to wait for.
 *
 * And the slabs that pool jobs come from: objects zeroed, distinct and
 * reused; under AddressSanitizer, what they free is poisoned as malloc's
 * is, so that a job used after its free (or freed twice) is reported.
 */
#include "harness.h"

#include <sys/wait.h>
#if UNDER_ASAN
#  include <sanitizer/asan_interface.h>
#endif
/* The memcheck build (PYGATE_MEMCHECK) marks freed slab bytes for
 * valgrind, and runs each scenario with --error-exitcode=99. */
#ifdef PYGATE_VALGRIND
#  include <valgrind/memcheck.h>
#  define UNDER_VALGRIND RUNNING_ON_VALGRIND
#  define VALGRIND_ERROR_EXIT 99
#else
#  define UNDER_VALGRIND 0
#endif

/* src/alloc.c's test hooks and slabs (internal, linked from the static
 * library). */
void pygate__alloc_fail_at(long n);
long pygate__alloc_count_reset(void);
typedef struct slab_block slab_block;
void *pygate__slab_alloc(slab_block **mine, size_t size);
void pygate__slab_free(void *obj);
void pygate__slab_release(slab_block **mine);

static pygate_view *view;
static int enomem_seen;   /* failures that reached this life's calls */

/* rc, or the same call's second answer after PYGATE_ENOMEM, which must be
 * PYGATE_OK; `after` checks what a failure left (nothing half-done). */
#define ONCE_MORE(call, after)                                             \
    do {                                                                   \
        int once_rc_ = (call);                                             \
        if (once_rc_ == PYGATE_ENOMEM) {                                   \
            enomem_seen++;                                                 \
            after;                                                         \
            once_rc_ = (call);                                             \
        }                                                                  \
        CHECK_RC(once_rc_, PYGATE_OK);                                     \
    } while (0)

static int
add_one(void *arg)
{
    long *n = (long *)arg;
    PyObject *r = PyLong_FromLong(*n);
    CHECK(r != NULL);
    *n = PyLong_AsLong(r) + 1;
    Py_DECREF(r);
    return 0;
}

static void
entries(void)
{
    pygate_token outer;
    ONCE_MORE(pygate_enter(view, &outer), CHECK(attached_state() == NULL));
    CHECK(eval_long("6 * 7") == 42);
    /* Deeper than the frame stack's first allocation. */
    enum { DEPTH = 20 };
    pygate_token inner[DEPTH];
    for (int i = 0; i < DEPTH; i++)
        ONCE_MORE(pygate_enter(view, &inner[i]),
                  CHECK(attached_state() != NULL));
    for (int i = DEPTH - 1; i >= 0; i--)
        CHECK_OK(pygate_leave(inner[i]));
    CHECK_OK(pygate_leave(outer));
    CHECK(attached_state() == NULL);
}

static void
guard_and_decref(void)
{
    pygate_guard *guard;
    ONCE_MORE(pygate_guard_from_view(view, &guard), (void)0);
    CHECK_OK(pygate_guard_close(guard));

    pygate_token tok;
    ONCE_MORE(pygate_enter(view, &tok), CHECK(attached_state() == NULL));
    exec_ok("class Probe:\n"
            "    def __del__(self):\n"
            "        global dropped\n"
            "        dropped += 1\n"
            "dropped = 0\n");
    PyObject *obj = eval("Probe()");
    CHECK(obj != NULL);
    CHECK_OK(pygate_leave(tok));
    /* Not attached: queued; ENOMEM leaves the reference with the caller. */
    ONCE_MORE(pygate_decref(view, obj), (void)0);
    ONCE_MORE(pygate_enter(view, &tok), CHECK(attached_state() == NULL));
    CHECK(eval_long("dropped") == 1);   /* dropped by this entry */
    CHECK_OK(pygate_leave(tok));
}

static void
worker_pool(void)
{
    pygate_pool_options one = {.workers = 1, .on_close = PYGATE_POOL_FINISH};
    pygate_pool *pool = NULL;
    ONCE_MORE(pygate_pool_open(view, &one, &pool), CHECK(pool == NULL));
    long n[3] = {10, 20, 30};
    pygate_job *jobs[3];
    for (int i = 0; i < 3; i++) {
        uint64_t before;
        CHECK_OK(pygate_pool_counts(pool, &before, NULL, NULL));
        ONCE_MORE(pygate_pool_submit(pool, add_one, &n[i], &jobs[i]), {
            uint64_t after;
            CHECK_OK(pygate_pool_counts(pool, &after, NULL, NULL));
            CHECK(after == before);   /* nothing queued */
        });
    }
    for (int i = 0; i < 3; i++) {
        int result = -1;
        CHECK_OK(pygate_job_wait(jobs[i], 30, &result));
        CHECK(result == 0);
        CHECK_OK(pygate_job_close(jobs[i]));
    }
    CHECK(n[0] == 11 && n[1] == 21 && n[2] == 31);
    uint64_t submitted, completed, cancelled;
    CHECK_OK(pygate_pool_counts(pool, &submitted, &completed, &cancelled));
    CHECK(submitted == 3 && completed == 3 && cancelled == 0);
    CHECK_OK(pygate_pool_close(pool));
}

static void
interpreter_pool(void)
{
    pygate_interp_pool_options o = {.interpreters = 1, .workers = 1};
    pygate_interp_pool *pool = NULL;
    char error[512] = "";
    ONCE_MORE(pygate_interp_pool_open(&o, &pool, error, sizeof error), {
        CHECK(pool == NULL);
        CHECK(error[0] != '\0');   /* says why */
    });
    pygate_value arg = {.kind = PYGATE_VALUE_STR, .data = "pygate",
                        .size = 6};
    pygate_value result;
    ONCE_MORE(pygate_interp_pool_call(pool, 0, "operator", "concat",
                                      (pygate_value[]){arg, arg}, 2,
                                      &result), (void)0);
    CHECK(result.kind == PYGATE_VALUE_STR && result.size == 12);
    CHECK(memcmp(result.data, "pygatepygate", 12) == 0);
    pygate_value_clear(&result);
    CHECK_OK(pygate_interp_pool_close(pool));
}

static void *
native_life(void *arg)
{
    (void)arg;
    entries();
    guard_and_decref();
    worker_pool();
    interpreter_pool();
    return NULL;
}

/* The whole life, Python included; returns the acquisitions made. */
static long
live(long fail_at)
{
    PyThreadState *main_ts = start_python();
    PyEval_RestoreThread(main_ts);
    int before = count_thread_states(main_ts->interp);
    pygate__alloc_count_reset();
    pygate__alloc_fail_at(fail_at);
    ONCE_MORE(pygate_view_from_main(&view), CHECK(view == NULL));
    PyEval_SaveThread();
    on_native_thread(native_life, NULL);
    PyEval_RestoreThread(main_ts);
    /* The native thread's states went with it: none left behind. */
    CHECK(count_thread_states(main_ts->interp)
          == before);
    PyEval_SaveThread();
    long made = pygate__alloc_count_reset();
    pygate__alloc_fail_at(0);
    CHECK_OK(pygate_view_close(view));
    /* No guard left held: finalization does not wait. */
    CHECK_OK(pygate_set_drain_limits(0.5, 5));
    double t0 = now_seconds();
    PyEval_RestoreThread(main_ts);
    CHECK(Py_FinalizeEx() == 0);
    CHECK(now_seconds() - t0 < 3);
    return made;
}

/* Each child's answer to its parent, through its exit status.  A life's
 * count varies a little with timing (which worker enters first), so the
 * N-th acquisition may not happen in a child's life. */
enum { FAILED_IN_LIFE = 10, FAILED_ELSEWHERE = 11, NOT_REACHED = 12 };

static int
run_child(long n)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(120);   /* a hang fails the child */
        long made = live(n);
        _exit(made < n ? NOT_REACHED
              : enomem_seen > 0 ? FAILED_IN_LIFE : FAILED_ELSEWHERE);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status)
            || (WEXITSTATUS(status) != FAILED_IN_LIFE
                && WEXITSTATUS(status) != FAILED_ELSEWHERE
                && WEXITSTATUS(status) != NOT_REACHED)) {
        fprintf(stderr, "the life with acquisition %ld failing went wrong"
                " (status %#x)\n", n, status);
        exit(1);
    }
    return WEXITSTATUS(status);
}

static void
every_acquisition_fails_cleanly(void)
{
    /* The count, in a child too: this process never starts Python. */
    fflush(NULL);
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        long made = live(0);
        CHECK(write(pipe_fds[1], &made, sizeof made) == sizeof made);
        _exit(0);
    }
    long total = 0;
    CHECK(read(pipe_fds[0], &total, sizeof total) == sizeof total);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && status == 0);
    CHECK(total > 10);
    /* Under valgrind every life is slow: a sample of the points. */
    long step = getenv("PYGATE_MEMCHECK") != NULL ? 7 : 1;
    long in_life = 0, elsewhere = 0, not_reached = 0;
    for (long n = 1; n <= total; n += step) {
        int answer = run_child(n);
        in_life += answer == FAILED_IN_LIFE;
        elsewhere += answer == FAILED_ELSEWHERE;
        not_reached += answer == NOT_REACHED;
    }
    printf("%ld acquisitions in a life; each made to fail in a life of its"
           " own: %ld answered PYGATE_ENOMEM and succeeded when called"
           " again, %ld failed inside pygate (a worker, the interpreter"
           " maker, a debug-mode guard site) and were retried or done"
           " without, %ld lives made fewer\n", total, in_life, elsewhere,
           not_reached);
    CHECK(not_reached <= 3);   /* the count is nearly fixed */
}

/* Bytes of an object a slab handed out, all zero. */
static int
all_zero(const unsigned char *obj, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (obj[i] != 0)
            return 0;
    return 1;
}

#if UNDER_ASAN || defined(PYGATE_VALGRIND)
/* In a child: touch(obj) must be reported by AddressSanitizer as a use of
 * a poisoned address (and the child die of it), or by valgrind memcheck
 * (whose report goes to its own descriptor, so the child's exit code
 * says it). */
static void
check_reported(void (*touch)(void *), void *obj)
{
    char report[16384];
    int status = run_in_child(touch, obj, report, sizeof report);
#ifdef PYGATE_VALGRIND
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == VALGRIND_ERROR_EXIT);
#else
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    CHECK(strstr(report, "AddressSanitizer: use-after-poison") != NULL);
#endif
}

static void
read_one(void *obj)
{
    printf("%d\n", *(volatile unsigned char *)obj);
}

static void
free_again(void *obj)
{
    pygate__slab_free(obj);
}
#endif

static void
slab_poisons_what_it_frees(void)
{
    enum { SIZE = 100 };   /* not a multiple of 8: the tail is checked */
    slab_block *mine = NULL;
    unsigned char *a = pygate__slab_alloc(&mine, SIZE);
    CHECK(a != NULL && all_zero(a, SIZE));
    memset(a, 0xAB, SIZE);
    unsigned char *b = pygate__slab_alloc(&mine, SIZE);
    CHECK(b != NULL && b != a && all_zero(b, SIZE));
    pygate__slab_free(a);
#if UNDER_ASAN
    CHECK(__asan_address_is_poisoned(a));
    CHECK(__asan_address_is_poisoned(a + SIZE - 1));
    CHECK(__asan_region_is_poisoned(b, SIZE) == NULL);
    CHECK(__asan_address_is_poisoned(b + SIZE));   /* past the object */
    check_reported(read_one, a);
    check_reported(free_again, a);
#elif defined(PYGATE_VALGRIND)
    if (UNDER_VALGRIND) {
        check_reported(read_one, a);
        check_reported(free_again, a);
    }
#endif
    pygate__slab_free(b);
    pygate__slab_release(&mine);   /* the block is empty: kept for reuse */
    /* A thread that comes next gets kept blocks back, usable and zeroed. */
    for (int i = 0; i < 200; i++) {
        unsigned char *c = pygate__slab_alloc(&mine, SIZE);
        CHECK(c != NULL && all_zero(c, SIZE));
        memset(c, 0xCD, SIZE);
        pygate__slab_free(c);
    }
    pygate__slab_release(&mine);
    printf("slab objects zeroed, distinct and reused;%s\n",
           UNDER_ASAN ? " freed ones poisoned, a read and a second free"
                        " of one reported by AddressSanitizer"
           : UNDER_VALGRIND ? " a read and a second free of a freed one"
                              " reported by valgrind memcheck"
           : " freed ones checked only under AddressSanitizer and"
             " valgrind memcheck");
}

static const scenario scenarios[] = {
    {"every_acquisition_fails_cleanly", every_acquisition_fails_cleanly},
    {"slab_poisons_what_it_frees", slab_poisons_what_it_frees},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
