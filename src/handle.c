/*
 * handle.c - the handles users hold (views, guards, pools, jobs and
 * interpreter pools), made safe to misuse.
 *
 * A handle is not a pointer to memory pygate frees: it encodes a slot of a
 * table that is never freed and the slot's generation, which closing
 * advances.  So closing twice, or passing a closed, never-made or foreign
 * handle, is seen as such (the lookup fails) without reading freed memory.
 * Slots live in pages that are allocated once and never moved, so a
 * lookup takes no lock; making and closing handles take one.
 *
 *   handle = generation << 32 | slot index << 3 | kind      (never 0)
 *
 * A use bracket (a pool's, around each submission) is noted in a set of
 * the calling thread's, not counted in the slot: eight threads submitting
 * to one pool spent a quarter of the pool's time on the slot's count, its
 * line bouncing between the cores.  A closer looks at every thread's set.
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#define PAGE_SLOTS 256u
#define MAX_PAGES 4096u   /* 1,048,576 live handles */
#define NO_SLOT UINT32_MAX

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static handle_slot *_Atomic pages[MAX_PAGES];
static uint32_t nslots;              /* slots made so far */
static uint32_t free_head = NO_SLOT; /* closed slots, to reuse */

static handle_slot *
slot_at(uint32_t index)
{
    handle_slot *page = atomic_load_explicit(&pages[index / PAGE_SLOTS],
                                              memory_order_acquire);
    return page != NULL ? &page[index % PAGE_SLOTS] : NULL;
}

/* A slot never used before, or NO_SLOT.  Under table_lock. */
static uint32_t
fresh_slot(void)
{
    if (nslots == PAGE_SLOTS * MAX_PAGES)
        return NO_SLOT;
    uint32_t c = nslots / PAGE_SLOTS;
    if (atomic_load_explicit(&pages[c], memory_order_relaxed) == NULL) {
        handle_slot *page = (handle_slot *)pygate__calloc(PAGE_SLOTS,
                                                   sizeof *page);
        if (page == NULL)
            return NO_SLOT;
        /* Generations start scattered, not at 0: a small integer or a
         * heap address passed as a handle then matches nothing. */
        for (uint32_t i = 0; i < PAGE_SLOTS; i++)
            atomic_init(&page[i].gen,
                        (c * PAGE_SLOTS + i + 1) * 0x9E3779B9u | 1u);
        atomic_store_explicit(&pages[c], page, memory_order_release);
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
    if (slot == NULL)   /* out of slots (an index given out has a page) */
        return 0;
    uint32_t gen = atomic_load_explicit(&slot->gen, memory_order_relaxed);
    slot->kind = kind;
    slot->rec = NULL;
    slot->site = NULL;
    slot->fork_generation = 0;
    slot->object = NULL;
    slot->pinned = 0;
    *out = slot;
    return (uintptr_t)gen << 32 | (uintptr_t)index << 3 | kind;
}

handle_slot *
pygate__handle_get(uintptr_t handle, handle_kind kind)
{
    uint32_t index = (uint32_t)handle >> 3;
    if ((handle & 7u) != kind || index >= PAGE_SLOTS * MAX_PAGES)
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

void
pygate__handles_lock_all(void)
{
    pthread_mutex_lock(&table_lock);
}

void
pygate__handles_unlock_all(void)
{
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

/* ---- use brackets ------------------------------------------------------- */

#define SET_BRACKETS 4   /* open at once per thread; more are counted */

/* A thread's open brackets, one cache line of its own (its owner writes
 * it at every bracket).  Sets are never freed: a thread's goes back to
 * the list at its exit, for the next thread to claim. */
typedef struct bracket_set {
    _Alignas(64) handle_slot *_Atomic open[SET_BRACKETS];
    _Atomic int claimed;
    struct bracket_set *next;   /* set once, before it is listed */
} bracket_set;

static bracket_set *_Atomic all_sets;
static __thread bracket_set *my_set
    __attribute__((tls_model("initial-exec")));
static pthread_key_t set_key;
static pthread_once_t set_key_once = PTHREAD_ONCE_INIT;
static int set_key_made;

/* At thread exit: the set goes back, empty (no bracket spans an exit). */
static void
set_release(void *arg)
{
    bracket_set *set = (bracket_set *)arg;
    my_set = NULL;
    atomic_store_explicit(&set->claimed, 0, memory_order_release);
}

static void
set_key_make(void)
{
    set_key_made = pthread_key_create(&set_key, set_release) == 0;
}

/* A set no thread holds, or a new one listed; NULL without memory. */
static bracket_set *
set_claim(void)
{
    bracket_set *set = atomic_load_explicit(&all_sets, memory_order_acquire);
    for (; set != NULL; set = set->next) {
        int idle = 0;
        if (atomic_compare_exchange_strong(&set->claimed, &idle, 1))
            return set;
    }
    set = (bracket_set *)pygate__aligned_alloc(_Alignof(bracket_set),
                                               sizeof *set);
    if (set == NULL)
        return NULL;
    for (int i = 0; i < SET_BRACKETS; i++)
        atomic_init(&set->open[i], NULL);
    atomic_init(&set->claimed, 1);
    set->next = atomic_load_explicit(&all_sets, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&all_sets, &set->next, set,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
    return set;
}

/* The calling thread's set, claimed on its first bracket; NULL when none
 * can be had (its brackets are counted in the slot then). */
static bracket_set *
set_of_thread(void)
{
    if (my_set != NULL)
        return my_set;
    pthread_once(&set_key_once, set_key_make);
    if (!set_key_made)
        return NULL;
    bracket_set *set = set_claim();
    if (set != NULL && pthread_setspecific(set_key, set) != 0) {
        atomic_store_explicit(&set->claimed, 0, memory_order_release);
        set = NULL;
    }
    return my_set = set;
}

/* Notes a bracket on slot: in a free place of the thread's set, else in
 * the slot's count.  seq_cst: a closer that advanced the generation
 * either sees it, or the caller sees the new generation. */
static void
bracket_open(handle_slot *slot)
{
    bracket_set *set = set_of_thread();
    for (int i = 0; set != NULL && i < SET_BRACKETS; i++)
        if (atomic_load_explicit(&set->open[i], memory_order_relaxed)
                == NULL) {
            atomic_store_explicit(&set->open[i], slot, memory_order_seq_cst);
            return;
        }
    atomic_fetch_add_explicit(&slot->users, 1, memory_order_seq_cst);
}

/* Whether some thread's set notes a bracket on slot. */
static int
bracketed_in_sets(handle_slot *slot)
{
    for (bracket_set *set = atomic_load_explicit(&all_sets,
                                                 memory_order_acquire);
         set != NULL; set = set->next)
        for (int i = 0; i < SET_BRACKETS; i++)
            if (atomic_load_explicit(&set->open[i], memory_order_seq_cst)
                    == slot)
                return 1;
    return 0;
}

handle_slot *
pygate__handle_use(uintptr_t handle, handle_kind kind)
{
    handle_slot *slot = pygate__handle_get(handle, kind);
    if (slot == NULL)
        return NULL;
    bracket_open(slot);
    /* Closed meanwhile (its closer may not have seen this bracket): out. */
    if (atomic_load_explicit(&slot->gen, memory_order_seq_cst)
            != (uint32_t)(handle >> 32)) {
        pygate__handle_unuse(slot);
        return NULL;
    }
    return slot;
}

/* Brackets on one slot are interchangeable: whichever place (set or
 * count) an unuse empties, the others still show the ones left open. */
void
pygate__handle_unuse(handle_slot *slot)
{
    bracket_set *set = my_set;
    for (int i = SET_BRACKETS - 1; set != NULL && i >= 0; i--)
        if (atomic_load_explicit(&set->open[i], memory_order_relaxed)
                == slot) {
            atomic_store_explicit(&set->open[i], NULL, memory_order_release);
            return;
        }
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
    while (atomic_load_explicit(&slot->users, memory_order_seq_cst) != 0
           || bracketed_in_sets(slot))
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

void
pygate__handle_sets_after_fork(void)
{
    for (bracket_set *set = atomic_load(&all_sets); set != NULL;
         set = set->next) {
        if (set == my_set)
            continue;
        for (int i = 0; i < SET_BRACKETS; i++)
            atomic_store(&set->open[i], NULL);
        atomic_store(&set->claimed, 0);
    }
}
