/*
 * bench_util.h - what both benchmark programs measure with.
 */
#ifndef PYGATE_BENCH_UTIL_H
#define PYGATE_BENCH_UTIL_H

#include <stdio.h>
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

#endif
