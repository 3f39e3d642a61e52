/*
 * alloc.c - every resource pygate acquires from the system: memory, threads
 * and (through thread.c) CPython thread states, behind one counter that a
 * test can make fail.
 *
 * SQLite's way of testing out-of-memory: tests/test_alloc.c runs a
 * scenario once counting the acquisitions, then once per N with the N-th
 * failing, and checks that each call returned its documented code with
 * nothing half-done, and that a retry succeeds.  When no failure is armed
 * the cost is one relaxed atomic load per acquisition; none is on a hot
 * path (an entry allocates only the first time a thread enters an
 * interpreter).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Acquisitions left before the armed one fails (1: the next one); 0 when
 * none is armed. */
static _Atomic long fail_countdown;
/* Acquisitions made since pygate__alloc_count_reset(). */
static _Atomic long acquired;

void
pygate__alloc_fail_at(long n)
{
    atomic_store(&fail_countdown, n > 0 ? n : 0);
}

long
pygate__alloc_count_reset(void)
{
    return atomic_exchange(&acquired, 0);
}

int
pygate__alloc_fails(void)
{
    atomic_fetch_add_explicit(&acquired, 1, memory_order_relaxed);
    long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    /* Exactly one acquisition takes the countdown from 1 to 0. */
    while (left > 0 && !atomic_compare_exchange_weak(&fail_countdown, &left,
                                                     left - 1))
        ;
    return left == 1;
}

void *
pygate__malloc(size_t size)
{
    return pygate__alloc_fails() ? NULL : malloc(size);
}

void *
pygate__calloc(size_t count, size_t size)
{
    return pygate__alloc_fails() ? NULL : calloc(count, size);
}

void *
pygate__realloc(void *old, size_t size)
{
    return pygate__alloc_fails() ? NULL : realloc(old, size);
}

char *
pygate__strdup(const char *text)
{
    return pygate__alloc_fails() ? NULL : strdup(text);
}

int
pygate__thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    return pygate__alloc_fails() ? -1
                                 : pthread_create(thread, NULL, fn, arg);
}
