/*
 * test_clock.c - pygate's timed waits keep their length when the wall
 * clock steps (NTP, a virtual machine resumed): they are measured on
 * CLOCK_MONOTONIC.
 *
 * This program defines clock_gettime() itself, so that every caller in
 * the process (pygate, statically or dynamically linked, and CPython) gets
 * a CLOCK_REALTIME that is `wall_step` seconds off the kernel's, while the
 * kernel still measures a realtime wait on its own clock: exactly what a
 * step of the wall clock just after a deadline was computed does.  A wait
 * measured on CLOCK_REALTIME is stretched by an hour (step +3600) or ends
 * at once (step -3600); one on CLOCK_MONOTONIC is not moved.
 */
#include "harness.h"

#include <stdatomic.h>
#include <sys/syscall.h>

static _Atomic long wall_step;   /* seconds added to CLOCK_REALTIME */

int
clock_gettime(clockid_t clock, struct timespec *ts)
{
    long rc = syscall(SYS_clock_gettime, clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += atomic_load_explicit(&wall_step, memory_order_relaxed);
    return (int)rc;
}

static harness_python py;

/* A whole scenario that waits for an hour fails here, not at ctest's
 * timeout. */
static void
watchdog(unsigned seconds)
{
    signal(SIGALRM, SIG_DFL);
    alarm(seconds);
}

static _Atomic int released;

/* Holds its worker, the GIL let go, until `released`. */
static int
hold_until_released(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&released))
        usleep(1000);
    Py_END_ALLOW_THREADS
    return 5;
}

static void *
release_after_200ms(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    atomic_store(&released, 1);
    return NULL;
}

static pygate_pool *pool;
static pygate_job *held;   /* hold_until_released, on pool's one worker */

/* Python, a pool of one worker busy with `held`, and the wall clock
 * `step` seconds off from here on. */
static void
start_held_job(long step)
{
    py = harness_start();
    pygate_pool_options o = {.workers = 1};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    CHECK_OK(pygate_pool_submit(pool, hold_until_released, NULL, &held));
    atomic_store(&wall_step, step);
    watchdog(30);
}

/* Waits for `held` to end (released), then puts everything back. */
static void
finish_held_job(void)
{
    int result = 0;
    CHECK_OK(pygate_job_wait(held, -1, &result));
    CHECK(result == 5);
    atomic_store(&wall_step, 0);
    CHECK_OK(pygate_job_close(held));
    CHECK_OK(pygate_pool_close(pool));
    harness_stop(&py);
}

/* The wall clock an hour behind what it was when the deadline was made:
 * pygate_job_wait(0.2) still gives up after about 0.2 s. */
static void
job_wait_times_out_when_clock_steps_back(void)
{
    start_held_job(3600);
    double start = now_seconds();
    CHECK_RC(pygate_job_wait(held, 0.2, NULL), PYGATE_ETIMEDOUT);
    double took = now_seconds() - start;
    CHECK(took >= 0.19 && took < 10);
    atomic_store(&released, 1);
    finish_held_job();
}

/* The wall clock an hour ahead: pygate_job_wait(10) still waits for a job
 * that ends after 0.2 s, instead of giving up at once. */
static void
job_wait_waits_when_clock_steps_forward(void)
{
    start_held_job(-3600);
    pthread_t releaser;
    CHECK(pthread_create(&releaser, NULL, release_after_200ms, NULL) == 0);
    CHECK_OK(pygate_job_wait(held, 10, NULL));
    CHECK(pthread_join(releaser, NULL) == 0);
    finish_held_job();
}

static _Atomic int later_ran;

/* Waits, the GIL let go, until the job queued behind it has run. */
static int
wait_for_later_job(void *arg)
{
    (void)arg;
    Py_BEGIN_ALLOW_THREADS
    while (!atomic_load(&later_ran))
        usleep(1000);
    Py_END_ALLOW_THREADS
    return 1;
}

static int
later_job(void *arg)
{
    (void)arg;
    atomic_store(&later_ran, 1);
    return 2;
}

/* A job that waits for one queued behind it, in a pool of two workers
 * under one GIL: the other worker leaves the jobs to the one in a round
 * and stands by for hold_seconds before it tries a round itself.  That
 * timed wait is not stretched by the wall clock going an hour back (it
 * would leave both jobs waiting for the hour). */
static void
job_behind_a_blocked_one_runs_when_clock_steps_back(void)
{
    py = harness_start();
    pygate_pool_options o = {.workers = 2};
    CHECK_OK(pygate_pool_open(py.view, &o, &pool));
    usleep(50 * 1000);   /* both workers asleep, nothing queued */
    atomic_store(&wall_step, 3600);
    watchdog(30);
    pygate_job *first, *later;
    CHECK_OK(pygate_pool_submit(pool, wait_for_later_job, NULL, &first));
    CHECK_OK(pygate_pool_submit(pool, later_job, NULL, &later));
    int a = 0, b = 0;
    CHECK_OK(pygate_job_wait(first, -1, &a));
    CHECK_OK(pygate_job_wait(later, -1, &b));
    CHECK(a == 1 && b == 2);
    atomic_store(&wall_step, 0);
    CHECK_OK(pygate_job_close(first));
    CHECK_OK(pygate_job_close(later));
    CHECK_OK(pygate_pool_close(pool));
    harness_stop(&py);
}

static const scenario scenarios[] = {
    {"job_wait_times_out_when_clock_steps_back",
     job_wait_times_out_when_clock_steps_back},
    {"job_wait_waits_when_clock_steps_forward",
     job_wait_waits_when_clock_steps_forward},
    {"job_behind_a_blocked_one_runs_when_clock_steps_back",
     job_behind_a_blocked_one_runs_when_clock_steps_back},
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return run_scenario(argc, argv, scenarios);
}
