/*
 * bench_util.h - what both benchmark programs measure with.
 */
#ifndef PYGATE_BENCH_UTIL_H
#define PYGATE_BENCH_UTIL_H

#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (size_t i = 0; i < size; i += page)
            ((volatile char *)m)[i] = 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        munmap(m, size);
        us[t] = ((double)(b.tv_sec - a.tv_sec) * 1e6
                 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / PAGES;
    }
    for (int i = 1; i < TRIES; i++)   /* sorted, for the median */
        for (int j = i; j > 0 && us[j] < us[j - 1]; j--) {
            double x = us[j];
            us[j] = us[j - 1];
            us[j - 1] = x;
        }
    return us[TRIES / 2];
}

#endif
