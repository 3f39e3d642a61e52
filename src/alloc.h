/*
 * alloc.h - every resource pygate acquires from the system, behind one
 * counter a test can make fail, and the slabs (alloc.c).  The bottom of
 * src/: it uses nothing of pygate's, and compat.c, below internal.h's
 * other files, includes it alone.
 */
#ifndef PYGATE_ALLOC_H
#define PYGATE_ALLOC_H

/* Python.h before any system header, as CPython asks (it sets
 * _GNU_SOURCE and the like): src/ is one translation unit, which alloc.c
 * opens with this header. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Resources from the system (alloc.c): malloc, calloc, realloc,
 * aligned_alloc (size a multiple of alignment), strdup and
 * pthread_create (-1 on failure), each of which a test can make fail. */
void *pygate__malloc(size_t size);
void *pygate__calloc(size_t count, size_t size);
void *pygate__realloc(void *old, size_t size);
void *pygate__aligned_alloc(size_t alignment, size_t size);
char *pygate__strdup(const char *text);
int pygate__thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);
/* 1 when the acquisition about to be made must fail (a test armed it);
 * for those made elsewhere (CPython thread states, thread.c). */
int pygate__alloc_fails(void);
/* Test hooks: the n-th acquisition from now fails (0: none), and the
 * number made since the last call. */
void pygate__alloc_fail_at(long n);
long pygate__alloc_count_reset(void);

/* Objects of one size that one thread makes and any thread frees (a
 * pool's jobs): carved from blocks the making thread allocates for itself
 * (*mine, one per kind of object), so that neither side takes a malloc
 * lock per object; a block is freed with the last of its objects once its
 * thread has moved on.  pygate__slab_alloc returns size zeroed bytes, or
 * NULL (out of memory: only when it needs a new block); with mine NULL,
 * plain calloc.  pygate__slab_free: any thread.  pygate__slab_release:
 * the owning thread, at its exit. */
typedef struct slab_block slab_block;
void *pygate__slab_alloc(slab_block **mine, size_t size);
/* As pygate__slab_alloc, the bytes not zeroed (an object mostly written
 * later, if at all: a job pack's entries). */
void *pygate__slab_alloc_dirty(slab_block **mine, size_t size);
void pygate__slab_free(void *obj);
void pygate__slab_release(slab_block **mine);
/* A slab object with two holders, first in it: the last to let go frees
 * it (a pool's job pack: the pool that runs it and the thread that fills
 * it).  Any thread. */
typedef struct slab_shared {
    _Atomic uint32_t holders;
} slab_shared;
void pygate__slab_let_go(slab_shared *obj);
/* fork() (fork.c): the lock of the spare blocks, taken last before the
 * fork (nothing is taken under it) and given back after it, so that the
 * child does not inherit it held by a thread it does not have. */
void pygate__slabs_lock_all(void);
void pygate__slabs_unlock_all(void);

#endif
