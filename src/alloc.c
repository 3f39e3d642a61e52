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

#include <stddef.h>
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

/* ---- slabs -------------------------------------------------------------- */

#define SLAB_BYTES 8192

/* Empty blocks kept for reuse, process-wide: a burst of jobs that a pool
 * runs as fast as they come then takes no fresh pages (their faults cost
 * more than the rest of a job's bookkeeping). */
#define SLAB_SPARE_MAX 256   /* 2 MiB */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static slab_block *spare_blocks;   /* linked through their first bytes */
static unsigned nspare;

/* Each object is preceded by its block's address (NULL: calloc'd alone),
 * in a header that keeps the object 16-byte aligned. */
typedef union slab_header {
    slab_block *block;
    max_align_t align;
} slab_header;

struct slab_block {
    _Atomic uint32_t live;   /* objects not freed, + the ones never handed
                                out while its thread still carves it */
    uint32_t used, capacity; /* objects handed out (its thread only) */
    size_t stride;
    slab_header first[];     /* objects, stride bytes apart */
};

static void
slab_unref(slab_block *b, uint32_t n)
{
    if (atomic_fetch_sub_explicit(&b->live, n, memory_order_acq_rel) != n)
        return;
    pthread_mutex_lock(&spare_lock);
    if (nspare < SLAB_SPARE_MAX) {
        *(slab_block **)b = spare_blocks;
        spare_blocks = b;
        nspare++;
        b = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
    free(b);
}

static slab_block *
spare_block(void)
{
    pthread_mutex_lock(&spare_lock);
    slab_block *b = spare_blocks;
    if (b != NULL) {
        spare_blocks = *(slab_block **)b;
        nspare--;
    }
    pthread_mutex_unlock(&spare_lock);
    return b;
}

void
pygate__slab_release(slab_block **mine)
{
    slab_block *b = *mine;
    if (b != NULL)   /* the objects never handed out, and the hold */
        slab_unref(b, b->capacity - b->used + 1);
    *mine = NULL;
}

static slab_block *
slab_new(size_t size)
{
    size_t stride = (sizeof(slab_header) + size + sizeof(slab_header) - 1)
                    / sizeof(slab_header) * sizeof(slab_header);
    size_t capacity = (SLAB_BYTES - sizeof(slab_block)) / stride;
    if (capacity < 1)
        return NULL;   /* no object that large is made in a slab */
    slab_block *b = spare_block();
    if (b == NULL && (b = (slab_block *)pygate__malloc(SLAB_BYTES)) == NULL)
        return NULL;
    atomic_init(&b->live, (uint32_t)capacity + 1);
    b->used = 0;
    b->capacity = (uint32_t)capacity;
    b->stride = stride;
    return b;
}

void *
pygate__slab_alloc(slab_block **mine, size_t size)
{
    slab_header *h;
    if (mine == NULL) {
        h = (slab_header *)pygate__calloc(1, sizeof *h + size);
        if (h == NULL)
            return NULL;
        h->block = NULL;
        return h + 1;
    }
    slab_block *b = *mine;
    if (b == NULL || b->used == b->capacity || b->stride < sizeof *h + size) {
        slab_block *fresh = slab_new(size);
        if (fresh == NULL)
            return NULL;
        pygate__slab_release(mine);
        *mine = b = fresh;
    }
    h = (slab_header *)((char *)b->first + (size_t)b->used++ * b->stride);
    h->block = b;
    memset(h + 1, 0, size);
    return h + 1;
}

void
pygate__slab_free(void *obj)
{
    if (obj == NULL)
        return;
    slab_header *h = (slab_header *)obj - 1;
    if (h->block != NULL)
        slab_unref(h->block, 1);
    else
        free(h);
}
