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

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SAGA_EPARSE;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int saga_parse_rfc3339(const char *s, int64_t *ms_out) {
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return SAGA_EPARSE;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) return SAGA_EPARSE;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return SAGA_EPARSE;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int nd = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 3) frac = frac * 10 + (*p - '0');
        if (nd == 0 || nd > 9) return SAGA_EPARSE;
        for (; nd < 3; nd++) frac *= 10;
    }
    int offset_min = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        offset_min = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 23 || om > 59) return SAGA_EPARSE;
        offset_min = (oh * 60 + om) * (p[0] == '-' ? -1 : 1);
    } else {
        return SAGA_EPARSE;
    }
    /* days from civil (Howard Hinnant's algorithm) */
    int yy = mo <= 2 ? y - 1 : y;
    int era = yy / 400;
    int yoe = yy - era * 400;
    int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec) - (int64_t)offset_min * 60;
    *ms_out = secs * 1000 + frac;
    return 0;
}
