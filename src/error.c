/*
 * error.c - error names, descriptions, and misuse reporting.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PYGATE_ERRORS(X)                                                     \
    X(PYGATE_OK, "success")                                                  \
    X(PYGATE_EINVAL, "invalid argument: NULL or not a live pygate handle")   \
    X(PYGATE_ENOMEM, "out of memory")                                        \
    X(PYGATE_ENOTINIT, "Python is not initialized")                          \
    X(PYGATE_ENOTATTACHED, "the calling thread has no attached thread state") \
    X(PYGATE_EFINALIZING, "the interpreter is shutting down; no new entries") \
    X(PYGATE_EGONE, "the interpreter no longer exists")                      \
    X(PYGATE_ENOTENTERED, "nothing to leave: the thread is not entered")     \
    X(PYGATE_EWRONGTHREAD, "the token belongs to another thread")            \
    X(PYGATE_EUNBALANCED, "the token is not the thread's innermost entry")   \
    X(PYGATE_EEXCEPTION, "a Python exception is still set; handle it first") \
    X(PYGATE_EPYTHON, "a CPython call failed; its exception is set")         \
    X(PYGATE_EBUSY, "busy: the thread is attached or inside an entry, or "  \
                    "another thread is in host init or shutdown")            \
    X(PYGATE_EALREADY, "already done: host init was called before, or "     \
                       "Python was initialized by someone else")

const char *
pygate_strerror(int err)
{
#define X(code, text) if (err == code) return text;
    PYGATE_ERRORS(X)
#undef X
    return "unknown error";
}

const char *
pygate_err_name(int err)
{
#define X(code, text) if (err == code) return #code;
    PYGATE_ERRORS(X)
#undef X
    return "PYGATE_UNKNOWN";
}

#ifndef PYGATE_DEBUG
#define PYGATE_DEBUG 0
#endif

static int
debug_from_environment(void)
{
    const char *env = getenv("PYGATE_DEBUG");
    if (env == NULL || *env == '\0')
        return PYGATE_DEBUG;
    return strcmp(env, "0") != 0;
}

int
pygate_debug_mode(void)
{
    /* -1: not read yet.  Racing first readers compute the same value. */
    static _Atomic int mode = -1;
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m < 0) {
        m = debug_from_environment();
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    return m;
}

int
pygate_misuse(int err, const char *file, int line, const char *what)
{
    if (!pygate_debug_mode())
        return err;
    fprintf(stderr, "pygate: misuse at %s:%d: %s (%s: %s)\n",
            file ? file : "?", line, what, pygate_err_name(err),
            pygate_strerror(err));
    fflush(stderr);
    abort();
}
