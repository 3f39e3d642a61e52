/*
 * decref_queue.c - the queue behind pygate_decref (decref.c): references
 * dropped by threads not attached to their object's interpreter, dropped
 * later by one that is (an entry, enter.c; the shutdown hook, lifecycle.c).
 *
 * A thread writes the references it drops into blocks of its own, one per
 * interpreter (a few kept in its record), 8 bytes each: a decref writes
 * no shared cache line, but for the first into a block since its last
 * drain (which queues the block), and takes a new block every 124 (before,
 * a 24-byte node each, pushed with a CAS on the record, and the page
 * faults of new nodes cost more than the queueing itself).  A block is in
 * its record's queue while it has entries not dropped yet (QUEUED); the
 * thread queues it when it writes the first of them.  Whoever clears
 * QUEUED of a CLOSED block (its thread is done writing), or CLOSES one not
 * QUEUED, frees it.  No lock anywhere: the record's queue is one atomic
 * pointer, each block's state one atomic word.
 */
#include "internal.h"

#include <stdlib.h>

#define DECREF_BLOCK_OBJS 124   /* a block of 1 KiB */
#define DECREF_QUEUED ((uint32_t)1 << 30)
#define DECREF_CLOSED ((uint32_t)1 << 31)
#define DECREF_COUNT  (DECREF_QUEUED - 1)

struct decref_block {
    _Atomic uint32_t state;        /* entries written | QUEUED | CLOSED */
    uint32_t dropped;              /* entries decref'd (by the drainer) */
    const record *rec;             /* compared only, with serial below */
    uint64_t serial;
    decref_block *next;            /* in rec->decref_blocks while QUEUED */
    PyObject *objs[DECREF_BLOCK_OBJS];
};

static void
block_close(decref_block *b)
{
    uint32_t s = atomic_fetch_or_explicit(&b->state, DECREF_CLOSED,
                                          memory_order_acq_rel);
    if (!(s & DECREF_QUEUED))   /* every entry dropped, or left alone */
        free(b);
}

/* The calling thread's open block for rec, made (and the least recently
 * made one closed) if there is none or it is full.  Most recent first. */
static decref_block *
block_for(record *rec, decref_block **slots)
{
    int i = 0;
    for (; i < DECREF_SLOTS; i++)
        if (slots[i] != NULL && slots[i]->rec == rec
                && slots[i]->serial == rec->serial)
            break;
    if (i < DECREF_SLOTS) {
        decref_block *b = slots[i];
        uint32_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
        if ((s & DECREF_COUNT) < DECREF_BLOCK_OBJS)
            return b;
        block_close(b);   /* full */
    } else {
        i = DECREF_SLOTS - 1;
        if (slots[i] != NULL)
            block_close(slots[i]);
    }
    decref_block *b = (decref_block *)pygate__malloc(sizeof *b);
    for (; i > 0; i--)
        slots[i] = slots[i - 1];
    slots[0] = b;
    if (b == NULL)
        return NULL;
    atomic_init(&b->state, 0);
    b->dropped = 0;
    b->rec = rec;
    b->serial = rec->serial;
    b->next = NULL;
    return b;
}

void
pygate__decref_blocks_release(decref_block **slots)
{
    for (int i = 0; i < DECREF_SLOTS; i++)
        if (slots[i] != NULL) {
            block_close(slots[i]);
            slots[i] = NULL;
        }
}

int
pygate__decref_queue_push(record *rec, PyObject *obj, decref_block **slots)
{
    decref_block *b = block_for(rec, slots);
    if (b == NULL)
        return PYGATE_ENOMEM;
    uint32_t s = atomic_load_explicit(&b->state, memory_order_relaxed);
    b->objs[s & DECREF_COUNT] = obj;
    /* Only this thread adds entries, but the drainer clears QUEUED, after
     * its last read of b->next (hence acquire: b->next is written next). */
    while (!atomic_compare_exchange_weak_explicit(&b->state, &s,
                                                  (s + 1) | DECREF_QUEUED,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
        ;
    if (s & DECREF_QUEUED)
        return PYGATE_OK;   /* the drainer will see it */
    b->next = atomic_load_explicit(&rec->decref_blocks, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&rec->decref_blocks,
                                                  &b->next, b,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
    return PYGATE_OK;
}

void
pygate__decref_queue_drop(record *rec)
{
    decref_block *b = atomic_exchange_explicit(&rec->decref_blocks, NULL,
                                               memory_order_acquire);
    while (b != NULL) {
        decref_block *next = b->next;   /* b may be queued again below */
        uint32_t s = atomic_load_explicit(&b->state, memory_order_acquire);
        do {
            /* Deallocation may run code that decrefs into b: seen here. */
            while (b->dropped < (s & DECREF_COUNT)) {
                PyObject *obj = b->objs[b->dropped++];
                Py_DECREF(obj);
            }
        } while (!atomic_compare_exchange_weak_explicit(
                     &b->state, &s, s & ~DECREF_QUEUED, memory_order_acq_rel,
                     memory_order_acquire));
        if (s & DECREF_CLOSED)
            free(b);
        b = next;
    }
}

void
pygate__decref_queue_abandon(record *rec)
{
    decref_block *b = atomic_load_explicit(&rec->decref_blocks,
                                           memory_order_acquire);
    while (b != NULL) {
        decref_block *next = b->next;
        uint32_t s = atomic_fetch_and_explicit(&b->state, ~DECREF_QUEUED,
                                               memory_order_acq_rel);
        if (s & DECREF_CLOSED)
            free(b);
        b = next;
    }
}
