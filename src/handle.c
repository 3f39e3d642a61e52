/*
 * handle.c - the handles users hold (views, guards), made safe to misuse.
 *
 * A handle is not a pointer to memory pygate frees: it encodes a slot of a
 * table that is never freed and the slot's generation, which closing
 * advances.  So closing twice, or passing a closed, never-made or foreign
 * handle, is seen as such (the lookup fails) without reading freed memory.
 * Slots live in chunks that are allocated once and never moved, so a
 * lookup takes no lock; making and closing handles take one.
 *
 *   handle = generation << 32 | slot index << 3 | kind      (never 0)
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>

#define CHUNK_SLOTS 256u
#define MAX_CHUNKS 4096u   /* 1,048,576 live handles */
#define NO_SLOT UINT32_MAX

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static handle_slot *_Atomic chunks[MAX_CHUNKS];
static uint32_t nslots;              /* slots made so far */
static uint32_t free_head = NO_SLOT; /* closed slots, to reuse */

static handle_slot *
slot_at(uint32_t index)
{
    handle_slot *chunk = atomic_load_explicit(&chunks[index / CHUNK_SLOTS],
                                              memory_order_acquire);
    return chunk != NULL ? &chunk[index % CHUNK_SLOTS] : NULL;
}

/* A slot never used before, or NO_SLOT.  Under table_lock. */
static uint32_t
fresh_slot(void)
{
    if (nslots == CHUNK_SLOTS * MAX_CHUNKS)
        return NO_SLOT;
    uint32_t c = nslots / CHUNK_SLOTS;
    if (atomic_load_explicit(&chunks[c], memory_order_relaxed) == NULL) {
        handle_slot *chunk = (handle_slot *)pygate__calloc(CHUNK_SLOTS,
                                                   sizeof *chunk);
        if (chunk == NULL)
            return NO_SLOT;
        /* Generations start scattered, not at 0: a small integer or a
         * heap address passed as a handle then matches nothing. */
        for (uint32_t i = 0; i < CHUNK_SLOTS; i++)
            atomic_init(&chunk[i].gen,
                        (c * CHUNK_SLOTS + i + 1) * 0x9E3779B9u | 1u);
        atomic_store_explicit(&chunks[c], chunk, memory_order_release);
    }
    return nslots++;
}

uintptr_t
pygate__handle_new(handle_kind kind, handle_slot **out)
{
    pthread_mutex_lock(&table_lock);
    uint32_t index = free_head;
    if (index != NO_SLOT)
        free_head = slot_at(index)->next_free;
    else
        index = fresh_slot();
    pthread_mutex_unlock(&table_lock);
    handle_slot *slot = index != NO_SLOT ? slot_at(index) : NULL;
    if (slot == NULL)   /* out of slots (an index given out has a chunk) */
        return 0;
    uint32_t gen = atomic_load_explicit(&slot->gen, memory_order_relaxed);
    slot->kind = kind;
    slot->rec = NULL;
    slot->site = NULL;
    slot->fork_generation = 0;
    slot->object = NULL;
    *out = slot;
    return (uintptr_t)gen << 32 | (uintptr_t)index << 3 | kind;
}

handle_slot *
pygate__handle_get(uintptr_t handle, handle_kind kind)
{
    uint32_t index = (uint32_t)handle >> 3;
    if ((handle & 7u) != kind || index >= CHUNK_SLOTS * MAX_CHUNKS)
        return NULL;
    handle_slot *slot = slot_at(index);
    if (slot == NULL || slot->kind != kind
            || atomic_load_explicit(&slot->gen, memory_order_acquire)
               != (uint32_t)(handle >> 32))
        return NULL;
    return slot;
}

/* Advances the slot's generation, so the handle no longer matches;
 * returns the slot, or NULL if the handle was not live.  The slot is not
 * reused until free_slot(). */
static handle_slot *
retire(uintptr_t handle, handle_kind kind)
{
    pthread_mutex_lock(&table_lock);
    handle_slot *slot = pygate__handle_get(handle, kind);
    if (slot != NULL)
        atomic_fetch_add_explicit(&slot->gen, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&table_lock);
    return slot;
}

static void
free_slot(handle_slot *slot, uintptr_t handle)
{
    pthread_mutex_lock(&table_lock);
    slot->next_free = free_head;
    free_head = (uint32_t)handle >> 3;
    pthread_mutex_unlock(&table_lock);
}

int
pygate__handle_close(uintptr_t handle, handle_kind kind)
{
    handle_slot *slot = retire(handle, kind);
    if (slot != NULL)
        free_slot(slot, handle);
    return slot != NULL;
}

handle_slot *
pygate__handle_use(uintptr_t handle, handle_kind kind)
{
    handle_slot *slot = pygate__handle_get(handle, kind);
    if (slot == NULL)
        return NULL;
    atomic_fetch_add_explicit(&slot->users, 1, memory_order_seq_cst);
    /* Closed meanwhile (its closer may not have seen this bracket): out. */
    if (atomic_load_explicit(&slot->gen, memory_order_seq_cst)
            != (uint32_t)(handle >> 32)) {
        pygate__handle_unuse(slot);
        return NULL;
    }
    return slot;
}

void
pygate__handle_unuse(handle_slot *slot)
{
    atomic_fetch_sub_explicit(&slot->users, 1, memory_order_release);
}

int
pygate__handle_close_drained(uintptr_t handle, handle_kind kind)
{
    handle_slot *slot = retire(handle, kind);
    if (slot == NULL)
        return 0;
    /* No new bracket opens on it now; the open ones are short.  Only then
     * may the slot be reused. */
    while (atomic_load_explicit(&slot->users, memory_order_seq_cst) != 0)
        sched_yield();
    free_slot(slot, handle);
    return 1;
}

void
pygate__handle_forget_brackets(uintptr_t handle, handle_kind kind)
{
    handle_slot *slot = pygate__handle_get(handle, kind);
    if (slot != NULL)
        atomic_store_explicit(&slot->users, 0, memory_order_relaxed);
}
