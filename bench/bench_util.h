/*
 * bench_util.h - what both benchmark programs measure with.
 */
#ifndef PYGATE_BENCH_UTIL_H
#define PYGATE_BENCH_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The CPython measured, as the tables name it: "3.14.7t" for a
 * free-threaded build (Python.h is included first). */
#ifdef Py_GIL_DISABLED
#  define BENCH_PY_VERSION PY_VERSION "t"
#else
#  define BENCH_PY_VERSION PY_VERSION
#endif

/* Resident set size in KiB (-1 if unknown). */
static inline long
bench_rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The monotonic clock in microseconds. */
static inline double
bench_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Sorts v in place, for a median (a handful of values: insertion). */
static inline void
bench_sort(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
}

/* Microseconds the kernel takes to hand this process one fresh page: the
 * fault on its first write, zeroing included (median of 5 mappings of
 * 256 pages, huge pages off, as in malloc's thread arenas).  Any queue that
 * grows pays it once per page: a machine where it is slow (a VM) makes a
 * benchmark that grows memory slow too.  -1 if mmap fails. */
static inline double
bench_fresh_page_us(void)
{
    enum { PAGES = 256, TRIES = 5 };
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = PAGES * page;
    double us[TRIES];
    for (int t = 0; t < TRIES; t++) {
        char *m = (char *)mmap(NULL, size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -1;
#ifdef MADV_NOHUGEPAGE
        madvise(m, size, MADV_NOHUGEPAGE);
#endif
        double start = bench_now_us();
        for (size_t i = 0; i < size; i += page)
            ((volatile char *)m)[i] = 1;
        us[t] = (bench_now_us() - start) / PAGES;
        munmap(m, size);
    }
    bench_sort(us, TRIES);
    return us[TRIES / 2];
}

enum { BENCH_YIELDS = 20000 };

static inline void *
bench_yield_on(void *cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)*(const int *)cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        return (void *)1;
    for (int i = 0; i < BENCH_YIELDS; i++)
        sched_yield();
    return NULL;
}

/* Microseconds a core takes to go from one thread of this process to
 * another: two threads pinned to one CPU yield to each other BENCH_YIELDS
 * times each (median of 3; a yield with nobody to switch to is timed
 * alone into *yield_us).  With more threads than cores, a synchronous
 * call made by a thread that is not running waits for at least one such
 * switch: it prices pygate_call's eight callers on two cores.  -1 if the
 * threads cannot be pinned. */
static inline double
bench_thread_switch_us(double *yield_us)
{
    enum { TRIES = 3 };
    int cpu = sched_getcpu();
    double sw[TRIES], alone[TRIES];
    if (cpu < 0)
        return -1;
    for (int t = 0; t < TRIES; t++) {
        double start = bench_now_us();
        for (int i = 0; i < BENCH_YIELDS; i++)
            sched_yield();
        alone[t] = (bench_now_us() - start) / BENCH_YIELDS;
        pthread_t a, b;
        void *failed_a = NULL, *failed_b = NULL;
        start = bench_now_us();
        if (pthread_create(&a, NULL, bench_yield_on, &cpu) != 0)
            return -1;
        if (pthread_create(&b, NULL, bench_yield_on, &cpu) != 0) {
            pthread_join(a, NULL);
            return -1;
        }
        pthread_join(a, &failed_a);
        pthread_join(b, &failed_b);
        if (failed_a != NULL || failed_b != NULL)
            return -1;
        sw[t] = (bench_now_us() - start) / (2.0 * BENCH_YIELDS);
    }
    bench_sort(sw, TRIES);
    bench_sort(alone, TRIES);
    *yield_us = alone[TRIES / 2];
    return sw[TRIES / 2];
}

#endif
