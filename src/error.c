/*
 * error.c - error names, descriptions, and misuse reporting.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
pygate__strerror(int err)
{
    if (err == PYGATE_OK)
        return "success";
#define XX(name, value, text) if (err == (value)) return text;
    PYGATE_ERRNO_MAP(XX)
#undef XX
    return "unknown error";
}

const char *
pygate__err_name(int err)
{
    if (err == PYGATE_OK)
        return "PYGATE_OK";
#define XX(name, value, text) if (err == (value)) return "PYGATE_" #name;
    PYGATE_ERRNO_MAP(XX)
#undef XX
    return "PYGATE_UNKNOWN";
}

/* The exported names (not handed to another copy: the texts are the same
 * in every copy). */
const char *
pygate_strerror(int err)
{
    return pygate__strerror(err);
}

const char *
pygate_err_name(int err)
{
    return pygate__err_name(err);
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
pygate__debug_mode(void)
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
pygate__misuse(int err, const char *file, int line, const char *what)
{
    if (!pygate__debug_mode())
        return err;
    fprintf(stderr, "pygate: misuse at %s:%d: %s (%s: %s)\n",
            file ? file : "?", line, what, pygate__err_name(err),
            pygate__strerror(err));
    fflush(stderr);
    abort();
}
