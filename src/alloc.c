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
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

/* Built with AddressSanitizer (gcc defines the macro, clang has the
 * feature test), or for valgrind memcheck (PYGATE_VALGRIND, from the
 * PYGATE_MEMCHECK build): the slabs below tell the checker which of their
 * bytes are freed, as malloc would.  Without, a job used after its free
 * went unseen: its block stays allocated until its last object is freed. */
#if defined(__SANITIZE_ADDRESS__)
#  define PYGATE__ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define PYGATE__ASAN 1
#  endif
#endif
#ifdef PYGATE__ASAN
#  include <sanitizer/asan_interface.h>
#  define slab_poison(addr, size) ASAN_POISON_MEMORY_REGION(addr, size)
#  define slab_unpoison(addr, size) ASAN_UNPOISON_MEMORY_REGION(addr, size)
#elif defined(PYGATE_VALGRIND)
#  include <valgrind/memcheck.h>
#  define slab_poison(addr, size) VALGRIND_MAKE_MEM_NOACCESS(addr, size)
#  define slab_unpoison(addr, size) VALGRIND_MAKE_MEM_UNDEFINED(addr, size)
#else
#  define slab_poison(addr, size) ((void)(addr), (void)(size))
#  define slab_unpoison(addr, size) ((void)(addr), (void)(size))
#endif

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

void *
pygate__aligned_alloc(size_t alignment, size_t size)
{
    return pygate__alloc_fails() ? NULL : aligned_alloc(alignment, size);
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
#define CACHE_LINE 64

/* Empty blocks kept for reuse, process-wide: a burst of jobs that a pool
 * runs as fast as they come then takes no fresh pages (their faults cost
 * more than the rest of a job's bookkeeping). */
#define SLAB_SPARE_MAX 256   /* 2 MiB */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static slab_block *spare_blocks;   /* linked by next_spare */
static unsigned nspare;

/* Each object is preceded by its block's address (NULL: calloc'd alone),
 * and takes whole cache lines with it (stride): the thread that made the
 * next object never writes a line the freeing thread writes.  For the
 * same reason the count that freeing threads decrement has a line of its
 * own.  Objects are aligned to 8 bytes. */
typedef struct slab_header {
    slab_block *block;
} slab_header;

struct slab_block {
    uint32_t used, capacity;   /* objects handed out (its thread only) */
    size_t stride;
    slab_block *next_spare;    /* while kept for reuse */
    _Alignas(CACHE_LINE) _Atomic uint32_t live;
                               /* objects not freed, + the ones never
                                  handed out while its thread carves it */
    _Alignas(CACHE_LINE) char first[];   /* objects, stride bytes apart,
                                            each after its header */
};

static void
slab_unref(slab_block *b, uint32_t n)
{
    if (atomic_fetch_sub_explicit(&b->live, n, memory_order_acq_rel) != n)
        return;
    pthread_mutex_lock(&spare_lock);
    if (nspare < SLAB_SPARE_MAX) {
        b->next_spare = spare_blocks;
        spare_blocks = b;
        nspare++;
        b = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
    if (b != NULL)
        slab_unpoison(b->first, SLAB_BYTES - sizeof *b);
    free(b);
}

static slab_block *
spare_block(void)
{
    pthread_mutex_lock(&spare_lock);
    slab_block *b = spare_blocks;
    if (b != NULL) {
        spare_blocks = b->next_spare;
        nspare--;
    }
    pthread_mutex_unlock(&spare_lock);
    return b;
}

void
pygate__slabs_lock_all(void)
{
    pthread_mutex_lock(&spare_lock);
}

void
pygate__slabs_unlock_all(void)
{
    pthread_mutex_unlock(&spare_lock);
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
    size_t stride = (sizeof(slab_header) + size + CACHE_LINE - 1)
                    / CACHE_LINE * CACHE_LINE;
    size_t capacity = (SLAB_BYTES - sizeof(slab_block)) / stride;
    if (capacity < 1)
        return NULL;   /* no object that large is made in a slab */
    slab_block *b = spare_block();
    if (b == NULL)
        b = (slab_block *)pygate__aligned_alloc(CACHE_LINE, SLAB_BYTES);
    if (b == NULL)
        return NULL;
    /* Nothing carved yet: every object's bytes are off limits until
     * handed out (a spare block's are already). */
    slab_poison(b->first, SLAB_BYTES - sizeof *b);
    atomic_init(&b->live, (uint32_t)capacity + 1);
    b->used = 0;
    b->capacity = (uint32_t)capacity;
    b->stride = stride;
    return b;
}

void *
pygate__slab_alloc_dirty(slab_block **mine, size_t size)
{
    slab_header *h;
    if (mine == NULL) {
        h = (slab_header *)pygate__malloc(sizeof *h + size);
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
    h = (slab_header *)(b->first + (size_t)b->used++ * b->stride);
    slab_unpoison(h, sizeof *h + size);   /* the rest of the stride stays */
    h->block = b;
    return h + 1;
}

void *
pygate__slab_alloc(slab_block **mine, size_t size)
{
    void *obj = pygate__slab_alloc_dirty(mine, size);
    if (obj != NULL)
        memset(obj, 0, size);
    return obj;
}

void
pygate__slab_let_go(slab_shared *obj)
{
    if (atomic_fetch_sub_explicit(&obj->holders, 1, memory_order_acq_rel)
            == 1)
        pygate__slab_free(obj);
}

void
pygate__slab_free(void *obj)
{
    if (obj == NULL)
        return;
    slab_header *h = (slab_header *)obj - 1;
    slab_block *b = h->block;
    if (b == NULL) {
        free(h);
        return;
    }
    /* Before the reference goes: after it, the block may be another
     * thread's again, or freed.  The header too: a second free of the
     * object is reported where it reads it. */
    slab_poison(h, b->stride);
    slab_unref(b, 1);
}
