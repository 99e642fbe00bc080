/* Wall-clock and monotonic time, durations (saga_clock.h); the engine never calls these. */
#include "saga_clock.h"
#include "saga_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

int64_t saga_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t saga_monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *saga_format_time(int64_t ms, char *buf, size_t len) {
    /* Every lifecycle event carries a time, and every command its deadline
     * (a later second): the date part of the last two seconds is kept, so
     * most calls only write the milliseconds. */
    static _Thread_local int64_t cached_secs[2] = {INT64_MIN, INT64_MIN};
    static _Thread_local char cached[2][32];
    static _Thread_local int next_slot;
    int64_t secs = ms / 1000;
    int frac = (int)(ms % 1000);
    if (frac < 0) { frac += 1000; secs -= 1; }
    int slot = secs == cached_secs[0] ? 0 : secs == cached_secs[1] ? 1 : -1;
    if (slot < 0) {
        slot = next_slot;
        next_slot ^= 1;
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(cached[slot], sizeof cached[slot], "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_secs[slot] = secs;
    }
    size_t n = strlen(cached[slot]);
    if (len < n + 6) { /* ".mmmZ" and the NUL */
        if (len) buf[0] = '\0';
        return buf;
    }
    memcpy(buf, cached[slot], n);
    buf[n] = '.';
    buf[n + 1] = (char)('0' + frac / 100);
    buf[n + 2] = (char)('0' + frac / 10 % 10);
    buf[n + 3] = (char)('0' + frac % 10);
    buf[n + 4] = 'Z';
    buf[n + 5] = '\0';
    return buf;
}

int saga_parse_time(const char *s, int64_t *ms_out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed != 19)
        return SAGA_EPARSE;
    const char *p = s + consumed;
    int64_t frac_ms = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0) return SAGA_EPARSE;
        for (; digits < 3; digits++) frac_ms *= 10;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0) return SAGA_EPARSE;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return SAGA_EPARSE;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t secs = timegm(&tm);
    *ms_out = (int64_t)secs * 1000 + frac_ms;
    return 0;
}

int saga_parse_duration(const char *s, int64_t *ms_out) {
    if (!s || !(*s >= '0' && *s <= '9')) return SAGA_EPARSE; /* no sign, space, "inf" */
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return SAGA_EPARSE;
    double scale;
    if (strcmp(end, "ms") == 0) scale = 1;
    else if (strcmp(end, "s") == 0) scale = 1000;
    else if (strcmp(end, "m") == 0) scale = 60000;
    else if (strcmp(end, "h") == 0) scale = 3600000;
    else return SAGA_EPARSE;
    double ms = v * scale;
    if (ms > 9.0e15) return SAGA_EPARSE;
    *ms_out = (int64_t)llround(ms);
    return 0;
}
