/* LD_PRELOAD shim for it_clock_jump: CLOCK_REALTIME (clock_gettime, as
 * saga_now_ms reads it) is shifted by the number of milliseconds in the file
 * $CLOCKSHIFT_FILE, re-read at most every 50 ms of monotonic time; the
 * monotonic clock is untouched. Writing a new number jumps the wall clock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *ts) {
    static clock_gettime_fn real;
    static long long offset_ms, read_at_ms = -1000;
    clock_gettime_fn fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    int rc = fn(id, ts);
    if (rc != 0 || id != CLOCK_REALTIME) return rc;
    struct timespec m;
    fn(CLOCK_MONOTONIC, &m);
    long long mono_ms = (long long)m.tv_sec * 1000 + m.tv_nsec / 1000000;
    if (mono_ms - __atomic_load_n(&read_at_ms, __ATOMIC_RELAXED) >= 50) {
        __atomic_store_n(&read_at_ms, mono_ms, __ATOMIC_RELAXED);
        const char *path = getenv("CLOCKSHIFT_FILE");
        FILE *f = path ? fopen(path, "r") : NULL;
        long long v;
        if (f) {
            if (fscanf(f, "%lld", &v) == 1) __atomic_store_n(&offset_ms, v, __ATOMIC_RELAXED);
            fclose(f);
        }
    }
    long long off = __atomic_load_n(&offset_ms, __ATOMIC_RELAXED);
    long long ns = (long long)ts->tv_nsec + (off % 1000) * 1000000LL;
    ts->tv_sec += (time_t)(off / 1000);
    while (ns < 0) { ns += 1000000000LL; ts->tv_sec--; }
    while (ns >= 1000000000LL) { ns -= 1000000000LL; ts->tv_sec++; }
    ts->tv_nsec = (long)ns;
    return rc;
}
