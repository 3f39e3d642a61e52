/*
 * test_misuse.c - bad input and misuse: an error code in release mode
 * (nothing changed), a loud abort naming the caller's line in debug mode.
 */
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>

static harness_python py;

static void
start(void)
{
    py = harness_start();
}

static void
stop(void)
{
    harness_stop(&py);
}

/* ---- error names -------------------------------------------------------- */

static void
every_code_is_named(void)
{
    const int codes[] = {
        PYGATE_OK,
#define XX(name, value, text) PYGATE_##name,
        PYGATE_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof codes / sizeof codes[0];
    CHECK(n > 13);   /* the map is the list, PYGATE_EALREADY included */
    for (size_t i = 0; i < n; i++) {
        CHECK(codes[i] == -(int)i);   /* dense, from 0 down */
        CHECK(strcmp(pygate_strerror(codes[i]), "unknown error") != 0);
        CHECK(strncmp(pygate_err_name(codes[i]), "PYGATE_", 7) == 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(pygate_strerror(codes[i]),
                         pygate_strerror(codes[j])) != 0);
    }
    CHECK(strcmp(pygate_err_name(PYGATE_EALREADY), "PYGATE_EALREADY") == 0);
    CHECK(strcmp(pygate_strerror(-9999), "unknown error") == 0);
    CHECK(strcmp(pygate_err_name(12345), "PYGATE_UNKNOWN") == 0);
}

/* docs/API.md's table of codes has one row per code, in the map's order. */
static void
docs_list_every_code(void)
{
    FILE *f = fopen(PYGATE_SOURCE_DIR "/docs/API.md", "r");
    CHECK(f != NULL);
    const char *names[] = {
#define XX(name, value, text) "| `PYGATE_" #name "` |",
        PYGATE_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof names / sizeof names[0], next = 0;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "| `PYGATE_E", 11) != 0)
            continue;
        if (next >= n || strncmp(line, names[next], strlen(names[next])) != 0) {
            fprintf(stderr, "docs/API.md row out of step with "
                    "PYGATE_ERRNO_MAP: %s", line);
            exit(1);
        }
        next++;
    }
    fclose(f);
    if (next != n)
        fprintf(stderr, "docs/API.md lacks a row for %s\n", names[next]);
    CHECK(next == n);
}

/* ---- release mode: codes ------------------------------------------------ */

static void
bad_arguments(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    pygate_view *v = NULL;
    pygate_token tok;
    CHECK_RC(pygate_view_from_main(&v), PYGATE_ENOTINIT);
    CHECK_RC(pygate_view_from_main(NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_view_from_current(NULL), PYGATE_EINVAL);
    CHECK_RC(pygate_view_close(NULL), PYGATE_EINVAL);
    CHECK(pygate_view_id(NULL) == PYGATE_EINVAL);
    CHECK_RC(pygate_enter(NULL, &tok), PYGATE_EINVAL);
    CHECK_RC(pygate_detach(NULL), PYGATE_EINVAL);

    py.main_ts = start_python();
    /* Not attached: no py.view of "the current interpreter", and no first
     * py.view of main either (that one installs the hook). */
    CHECK_RC(pygate_view_from_current(&v), PYGATE_ENOTATTACHED);
    CHECK_RC(pygate_view_from_main(&v), PYGATE_ENOTATTACHED);
    py.view = main_view(py.main_ts);
    CHECK(pygate_view_id(py.view) == 0);
    CHECK_RC(pygate_enter(py.view, NULL), PYGATE_EINVAL);
    /* Once one exists, any thread may make more. */
    CHECK_OK(pygate_view_from_main(&v));
    CHECK_OK(pygate_view_close(v));
    stop();
}

/* Views and guards closed twice, stale, foreign or of the other kind give
 * PYGATE_EINVAL and touch no freed memory (the ASan run checks that). */
static void
handles_survive_misuse(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    start();
    pygate_token tok;
    pygate_view *v = NULL, *w = NULL;
    pygate_guard *g = NULL;
    CHECK_OK(pygate_view_from_main(&v));
    CHECK_OK(pygate_view_close(v));
    CHECK_RC(pygate_view_close(v), PYGATE_EINVAL);          /* twice */
    CHECK(pygate_view_id(v) == PYGATE_EINVAL);
    CHECK_RC(pygate_enter(v, &tok), PYGATE_EINVAL);
    CHECK_RC(pygate_guard_from_view(v, &g), PYGATE_EINVAL);
    /* A new view may take the closed one's place: the stale handle still
     * names nothing, and the new one works. */
    CHECK_OK(pygate_view_from_main(&w));
    CHECK_RC(pygate_view_close(v), PYGATE_EINVAL);
    CHECK_OK(pygate_enter(w, &tok));
    CHECK_OK(pygate_leave(tok));

    CHECK_OK(pygate_guard_from_view(w, &g));
    CHECK(pygate_guard_id(g) == 0);
    /* One kind is not the other. */
    CHECK_RC(pygate_view_close((pygate_view *)g), PYGATE_EINVAL);
    CHECK_RC(pygate_guard_close((pygate_guard *)w), PYGATE_EINVAL);
    CHECK_RC(pygate_enter_guarded((pygate_guard *)w, &tok), PYGATE_EINVAL);
    CHECK_OK(pygate_guard_close(g));
    CHECK_RC(pygate_guard_close(g), PYGATE_EINVAL);         /* twice */
    CHECK(pygate_guard_id(g) == PYGATE_EINVAL);
    CHECK_RC(pygate_enter_guarded(g, &tok), PYGATE_EINVAL);

    /* Pointers that were never handles: freed memory, the stack, junk. */
    void *block = malloc(64);
    /* Its value kept past free, out of the compiler's sight (it would
     * rightly warn of a freed pointer used). */
    volatile uintptr_t freed = (uintptr_t)block;
    free(block);
    int on_stack;
    void *foreign[] = {(void *)freed, &on_stack, (void *)1, (void *)-1,
                       (void *)0x1000, (void *)(uintptr_t)0xdeadbeef00000005};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        CHECK_RC(pygate_view_close((pygate_view *)foreign[i]), PYGATE_EINVAL);
        CHECK_RC(pygate_enter((pygate_view *)foreign[i], &tok),
                 PYGATE_EINVAL);
        CHECK_RC(pygate_guard_close((pygate_guard *)foreign[i]),
                 PYGATE_EINVAL);
    }
    CHECK(pygate_thread_depth() == 0);
    CHECK_OK(pygate_view_close(w));
    stop();
}

static void
leave_without_enter(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    pygate_token zero = {0};
    CHECK_RC(pygate_leave(zero), PYGATE_ENOTENTERED);
    CHECK_RC(pygate_reattach(zero), PYGATE_ENOTENTERED);
    start();
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    CHECK_OK(pygate_leave(tok));
    CHECK_RC(pygate_leave(tok), PYGATE_ENOTENTERED);   /* twice */
    CHECK(pygate_thread_depth() == 0);
    stop();
}

static pygate_token shared_token;

static void *
leave_someone_elses(void *arg)
{
    (void)arg;
    CHECK_RC(pygate_leave(shared_token), PYGATE_EWRONGTHREAD);
    return NULL;
}

static void
leave_on_another_thread(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    start();
    CHECK_OK(pygate_enter(py.view, &shared_token));
    PyThreadState *ts = PyThreadState_Get();
    on_native_thread(leave_someone_elses, NULL);
    /* Nothing changed for the owner. */
    CHECK(PyThreadState_Get() == ts);
    CHECK(pygate_thread_depth() == 1);
    CHECK_OK(pygate_leave(shared_token));
    stop();
}

static void
unbalanced_nesting(void)
{
    setenv("PYGATE_DEBUG", "0", 1);
    start();
    pygate_token outer, inner, det;
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK_OK(pygate_enter(py.view, &inner));
    CHECK_RC(pygate_leave(outer), PYGATE_EUNBALANCED);
    CHECK(pygate_thread_depth() == 2);
    CHECK_RC(pygate_reattach(inner), PYGATE_EUNBALANCED);
    CHECK_OK(pygate_detach(&det));
    CHECK_RC(pygate_leave(inner), PYGATE_EUNBALANCED);   /* detach is open */
    CHECK_OK(pygate_reattach(det));
    CHECK_RC(pygate_thread_release(), PYGATE_EBUSY);
    CHECK_OK(pygate_leave(inner));
    CHECK_OK(pygate_leave(outer));
    CHECK_RC(pygate_detach(&det), PYGATE_ENOTATTACHED);  /* not entered */
    CHECK_OK(pygate_thread_release());
    stop();
}

/* ---- debug mode: abort with the caller's location ----------------------- */

typedef struct misuse_call {
    void (*misuse)(void);
} misuse_call;

static void
misuse_in_debug_mode(void *arg)
{
    setenv("PYGATE_DEBUG", "1", 1);
    ((misuse_call *)arg)->misuse();
    printf("no abort\n");
}

/* Runs misuse() in a child with PYGATE_DEBUG=1 and checks that it aborts
 * and that its report names this file and the line the child announced. */
static void
expect_abort(void (*misuse)(void))
{
    misuse_call call = {misuse};
    char buf[4096];
    int status = run_in_child(misuse_in_debug_mode, &call, buf, sizeof buf);
    fprintf(stderr, "child said:\n%s", buf);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    char where[128];
    const char *line = strstr(buf, "expect line ");
    CHECK(line != NULL);
    snprintf(where, sizeof where, "test_misuse.c:%d", atoi(line + 12));
    CHECK(strstr(buf, where) != NULL);
    CHECK(strstr(buf, "pygate: misuse at") != NULL);
}

#define ANNOUNCE_NEXT_LINE() \
    (printf("expect line %d\n", __LINE__ + 1), fflush(stdout))

static void
child_leave_without_enter(void)
{
    pygate_token zero = {0};
    ANNOUNCE_NEXT_LINE();
    pygate_leave(zero);
}

static void *
leave_someone_elses_loudly(void *arg)
{
    (void)arg;
    ANNOUNCE_NEXT_LINE();
    pygate_leave(shared_token);
    return NULL;
}

static void
child_leave_on_another_thread(void)
{
    start();
    CHECK_OK(pygate_enter(py.view, &shared_token));
    on_native_thread(leave_someone_elses_loudly, NULL);
}

static void
child_unbalanced(void)
{
    start();
    pygate_token outer, inner;
    CHECK_OK(pygate_enter(py.view, &outer));
    CHECK_OK(pygate_enter(py.view, &inner));
    ANNOUNCE_NEXT_LINE();
    pygate_leave(outer);
}

static void
child_exception_at_leave(void)
{
    start();
    pygate_token tok;
    CHECK_OK(pygate_enter(py.view, &tok));
    PyErr_SetString(PyExc_RuntimeError, "left set");
    ANNOUNCE_NEXT_LINE();
    pygate_leave(tok);
}

static void *
end_inside_an_entry(void *arg)
{
    (void)arg;
    pygate_token tok;
    ANNOUNCE_NEXT_LINE();
    CHECK_OK(pygate_enter(py.view, &tok));
    return NULL;   /* without leaving */
}

static void
child_thread_ends_inside_entry(void)
{
    start();
    on_native_thread(end_inside_an_entry, NULL);
}

static void
child_close_view_twice(void)
{
    start();
    pygate_view *view;
    CHECK_OK(pygate_view_from_main(&view));
    CHECK_OK(pygate_view_close(view));
    ANNOUNCE_NEXT_LINE();
    pygate_view_close(view);
}

static void
child_close_host_view(void)
{
    CHECK_OK(pygate_host_init(NULL));
    ANNOUNCE_NEXT_LINE();
    pygate_view_close(pygate_host_view());
}

static void
debug_mode_aborts_with_location(void)
{
    expect_abort(child_leave_without_enter);
    expect_abort(child_leave_on_another_thread);
    expect_abort(child_unbalanced);
    expect_abort(child_exception_at_leave);
    expect_abort(child_thread_ends_inside_entry);
    expect_abort(child_close_view_twice);
    expect_abort(child_close_host_view);
}

/* Release mode: the host's view cannot be closed by its user. */
static void
host_view_survives_close(void)
{
    setenv("PYGATE_DEBUG", "0", 0);
    CHECK_OK(pygate_host_init(NULL));
    CHECK_RC(pygate_view_close(pygate_host_view()), PYGATE_EINVAL);
    pygate_token tok;
    CHECK_OK(pygate_enter(pygate_host_view(), &tok));
    CHECK_OK(pygate_leave(tok));
    CHECK_OK(pygate_host_shutdown());
    CHECK_RC(pygate_view_close(pygate_host_view()), PYGATE_EINVAL);
}

static const scenario scenarios[] = {
    {"every_code_is_named", every_code_is_named},
    {"docs_list_every_code", docs_list_every_code},
    {"handles_survive_misuse", handles_survive_misuse},
    {"bad_arguments", bad_arguments},
    {"leave_without_enter", leave_without_enter},
    {"leave_on_another_thread", leave_on_another_thread},
    {"unbalanced_nesting", unbalanced_nesting},
    {"debug_mode_aborts_with_location", debug_mode_aborts_with_location},
    {"host_view_survives_close", host_view_survives_close},
    {NULL, NULL}
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
