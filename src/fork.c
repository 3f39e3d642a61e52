/*
 * fork.c - fork(): the child keeps only what its one thread owns.
 *
 * After fork() only the forking thread exists in the child, and CPython's
 * PyOS_AfterFork_Child (which the host, or os.fork(), calls next) deletes
 * every other thread state of the main interpreter and every
 * sub-interpreter.  So in the child pygate forgets, without touching any
 * thread state, every other thread's record and entries and the guards
 * their open frames held; a sub-interpreter's record is gone; guards taken
 * through handles before the fork are inherited, and no longer hold
 * shutdown (guard.c).  The forking thread keeps its frames and the guards
 * they hold, so it can leave the entry it forked from.
 *
 * The prepare handler takes the locks of the thread list, the records,
 * the handle table and the spare slab blocks, so that no list is
 * half-changed at the moment of the fork and the child inherits no lock
 * held by a thread it does not have; the services above it with locks of
 * their own (the worker pools' list and each pool's lock, pool_fork.c)
 * take theirs first, through this file's one registration, and have
 * them back after these (test_fork.fork_while_handles_change:
 * without the handle table's lock a child hung in 3 runs of 3; the spare
 * slab blocks' lock is held too briefly for it to catch).  None of them
 * is held while waiting for the GIL, so taking them cannot deadlock with
 * a forking thread that holds it.  The one lock that is, the interpreter
 * pools' making_lock, is not taken: a host cannot fork while an
 * interpreter pool is open (pygate_host_fork), nor can CPython's child
 * survive a sub-interpreter.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Services added (pygate__fork_add_service), and how many of them the
 * last prepare ran: the parent and the child run those, even if another
 * thread adds one in between. */
#define FORK_SERVICES 4
static fork_service services[FORK_SERVICES];
static _Atomic unsigned services_added;
static unsigned services_prepared;

void
pygate__fork_add_service(const fork_service *s)
{
    static pthread_mutex_t adding = PTHREAD_MUTEX_INITIALIZER;
    pygate__fork_watch();
    pthread_mutex_lock(&adding);
    unsigned n = atomic_load(&services_added);
    if (n == FORK_SERVICES) {
        fprintf(stderr, "pygate: more than %d fork services\n",
                FORK_SERVICES);
        abort();
    }
    services[n] = *s;
    atomic_store_explicit(&services_added, n + 1, memory_order_release);
    pthread_mutex_unlock(&adding);
}

static void
fork_prepare(void)
{
    services_prepared =
        atomic_load_explicit(&services_added, memory_order_acquire);
    for (unsigned i = services_prepared; i > 0; i--)
        services[i - 1].prepare();
    pygate__threads_lock_all();
    pygate__records_lock_all();
    pygate__handles_lock_all();
    pygate__slabs_lock_all();
}

/* The locks nothing is taken under, given back first: the child frees the
 * gone threads' slab blocks (spare_lock) while it forgets them. */
static void
unlock_leaves(void)
{
    pygate__slabs_unlock_all();
    pygate__handles_unlock_all();
}

static void
fork_parent(void)
{
    unlock_leaves();
    pygate__records_unlock_all();
    pygate__threads_unlock_all();
    for (unsigned i = 0; i < services_prepared; i++)
        services[i].parent();
}

/* Shared guards that self's open frames hold on rec (local ones live in
 * self's entries and stay as they are). */
static uint64_t
own_shared_guards(pygate_thread *self, record *rec)
{
    uint64_t n = 0;
    for (uint32_t i = 0; self != NULL && i < self->nframes; i++) {
        frame *f = &self->frames[i];
        if (f->kind != FRAME_DETACH && f->rec == rec && f->held == NULL)
            n++;
    }
    return n;
}

static int
own_site(pygate_thread *self, guard_site *site)
{
    for (uint32_t i = 0; self != NULL && i < self->nframes; i++)
        if (self->frames[i].site == site)
            return 1;
    return 0;
}

/* Debug mode: drops the sites of guards the child no longer counts. */
static void
prune_sites(record *rec, pygate_thread *self)
{
    RECORD_ASSERT_LOCKED(rec);
    guard_site **link = &rec->sites;
    while (*link != NULL) {
        guard_site *site = *link;
        if (own_site(self, site)) {
            link = &site->next;
            continue;
        }
        *link = site->next;
        if (site->next != NULL)
            site->next->prev = site->prev;
        free(site);
    }
}

static void
fork_child(void)
{
    pygate_thread *self = pygate__thread_self(0);
    PyThreadState *kept = pygate__compat_current_tstate();
    entry *doomed = NULL;
    unlock_leaves();
    pygate__threads_forget_others(self, &doomed);
    pygate__handle_sets_after_fork();
    for (record *rec = pygate__records_next(NULL); rec != NULL;
         rec = pygate__records_next(rec)) {
        pygate__thread_forget_foreign_entries(rec, self, kept, &doomed);
        prune_sites(rec, self);
        pygate__record_reset_after_fork(rec, own_shared_guards(self, rec));
    }
    pygate__records_after_fork();
    pygate__records_unlock_all();
    pygate__threads_unlock_all();
    pygate__thread_free_entries(doomed);   /* may free records: no lock held */
    for (unsigned i = 0; i < services_prepared; i++)
        services[i].child();
}

static void
watch(void)
{
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0) {
        /* Without the handlers a forked child would wait for ever at
         * shutdown for threads it does not have. */
        fprintf(stderr, "pygate: pthread_atfork failed\n");
        abort();
    }
}

void
pygate__fork_watch(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, watch);
}
