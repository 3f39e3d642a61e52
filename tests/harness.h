/*
 * harness.h - the tests' small shared toolkit.
 *
 * Each test program holds scenarios; ctest runs each scenario in its own
 * process (`prog scenario`), because most of them initialize or finalize
 * Python.  A failed CHECK prints file:line and exits 1.
 */
#ifndef PYGATE_TEST_HARNESS_H
#define PYGATE_TEST_HARNESS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pygate.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Built with AddressSanitizer (gcc defines the macro, clang has the
 * feature test). */
#if defined(__SANITIZE_ADDRESS__)
#  define UNDER_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define UNDER_ASAN 1
#  endif
#endif
#ifndef UNDER_ASAN
#  define UNDER_ASAN 0
#endif

/* Built with ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#  define UNDER_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define UNDER_TSAN 1
#  endif
#endif
#ifndef UNDER_TSAN
#  define UNDER_TSAN 0
#endif

/* A free-threaded CPython (no GIL): 1 or 0, for tests whose premise
 * differs there. */
#ifdef Py_GIL_DISABLED
#  define PYGATE_TEST_FREE_THREADED 1
#else
#  define PYGATE_TEST_FREE_THREADED 0
#endif

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_RC(expr, want)                                               \
    do {                                                                   \
        int rc_ = (expr);                                                  \
        if (rc_ != (want)) {                                               \
            fprintf(stderr, "%s:%d: %s returned %s (%d), wanted %s\n",     \
                    __FILE__, __LINE__, #expr, pygate_err_name(rc_), rc_,  \
                    #want);                                                \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, PYGATE_OK)

typedef struct scenario {
    const char *name;
    void (*run)(void);
} scenario;

/* Runs the scenario named by argv[1]; prints its name when it passes. */
static inline int
run_scenario(int argc, char **argv, const scenario *list)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
        return 2;
    }
    for (const scenario *s = list; s->name != NULL; s++) {
        if (strcmp(s->name, argv[1]) == 0) {
            s->run();
            printf("ok %s\n", s->name);
            return 0;
        }
    }
    fprintf(stderr, "no scenario %s\n", argv[1]);
    return 2;
}

/* Runs fn(arg) in a child of fork(), its stdout and stderr into out
 * (NUL-terminated; what does not fit in size - 1 bytes is dropped); the
 * child exits 0 when fn returns.  Returns the child's wait status. */
static inline int
run_in_child(void (*fn)(void *), void *arg, char *out, size_t size)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    char spill[256];
    while ((got = len < size - 1 ? read(fds[0], out + len, size - 1 - len)
                                 : read(fds[0], spill, sizeof spill)) > 0)
        if (len < size - 1)
            len += (size_t)got;
    out[len] = 0;
    close(fds[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    return status;
}

/* Initializes Python and detaches the main thread, as a host should. */
static inline PyThreadState *
start_python(void)
{
    Py_InitializeEx(0);
    CHECK(Py_IsInitialized());
    return PyEval_SaveThread();
}

/* A view of the main interpreter, made attached (installs pygate's hook). */
static inline pygate_view *
main_view(PyThreadState *main_tstate)
{
    pygate_view *view = NULL;
    PyEval_RestoreThread(main_tstate);
    CHECK_OK(pygate_view_from_main(&view));
    PyEval_SaveThread();
    return view;
}

/* A test's Python: the main thread's detached state and a main view. */
typedef struct harness_python {
    PyThreadState *main_ts;
    pygate_view *view;
} harness_python;

/* Starts Python for a test: release mode unless PYGATE_DEBUG is set
 * (misuse tests set it), the main thread detached, a main view made. */
static inline harness_python
harness_start(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    harness_python py;
    py.main_ts = start_python();
    py.view = main_view(py.main_ts);
    return py;
}

/* Closes the view and finalizes from the main thread. */
static inline void
harness_stop(harness_python *py)
{
    CHECK_OK(pygate_view_close(py->view));
    PyEval_RestoreThread(py->main_ts);
    CHECK(Py_FinalizeEx() == 0);
}

/* The calling thread's attached state, or NULL (CPython 3.13 made the
 * unchecked getter public). */
static inline PyThreadState *
attached_state(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

/* Thread states in the interpreter's list.  Caller is attached to it. */
static inline int
count_thread_states(PyInterpreterState *interp)
{
    int n = 0;
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t))
        n++;
    return n;
}

/* Resident set size in KiB. */
static inline long
rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Monotonic clock, in seconds. */
static inline double
now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spins for `seconds` without releasing anything (a job that holds the
 * GIL busy). */
static inline void
spin_for(double seconds)
{
    double until = now_seconds() + seconds;
    while (now_seconds() < until)
        ;
}

/* Runs fn(arg) on a new native thread and waits for it. */
static inline void
on_native_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fn, arg) == 0);
    CHECK(pthread_join(th, NULL) == 0);
}

/* Runs fn(arg) on a new thread, and joins it, whose stack lies in the
 * program's own data: below every mmap()ed thread stack (CPython 3.14+
 * keeps in a thread state the stack bounds of the thread that first ran
 * it; docs/ARCHITECTURE.md, "CPython facts"). */
static inline void
on_low_stack_thread(void *(*fn)(void *), void *arg)
{
    static char stack[8 << 20] __attribute__((aligned(4096)));
    pthread_attr_t attr;
    CHECK(pthread_attr_init(&attr) == 0);
    CHECK(pthread_attr_setstack(&attr, stack, sizeof stack) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, &attr, fn, arg) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    pthread_attr_destroy(&attr);
}

/* Evaluates a Python expression in __main__; new reference or NULL. */
static inline PyObject *
eval(const char *expr)
{
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *globals = PyModule_GetDict(main);
    return PyRun_String(expr, Py_eval_input, globals, globals);
}

static inline void
exec_ok(const char *code)
{
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *globals = PyModule_GetDict(main);
    PyObject *res = PyRun_String(code, Py_file_input, globals, globals);
    if (res == NULL)
        PyErr_Print();
    CHECK(res != NULL);
    Py_DECREF(res);
}

static inline long
eval_long(const char *expr)
{
    PyObject *res = eval(expr);
    if (res == NULL)
        PyErr_Print();
    CHECK(res != NULL);
    long v = PyLong_AsLong(res);
    Py_DECREF(res);
    return v;
}

/* Reads what was printed on stderr during fn() (also copied to stderr,
 * for the test's log); the text is static, overwritten by the next call. */
static inline char *
capture_stderr(void (*fn)(void))
{
    static char text[8192];
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL && saved >= 0);
    CHECK(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    CHECK(dup2(saved, 2) >= 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    fputs(text, stderr);
    return text;
}

/* Sends the process SIGINT half a second from now, as Ctrl-C would: a
 * thread's body (pthread_create). */
static inline void *
interrupt_soon(void *arg)
{
    (void)arg;
    usleep(500 * 1000);
    CHECK(kill(getpid(), SIGINT) == 0);
    return NULL;
}

/* Points sys.unraisablehook at a recorder: __main__.unraisable collects
 * str(exc_value) of each report.  Caller is attached. */
static inline void
record_unraisable(void)
{
    exec_ok("import sys\n"
            "unraisable = []\n"
            "sys.unraisablehook = lambda u: unraisable.append("
            "str(u.exc_value))\n");
}

#endif /* PYGATE_TEST_HARNESS_H */
