/* Wall-clock and monotonic time for the I/O shell. The pure engine never
 * calls these: it receives now_ms from its caller. */
#ifndef SAGA_CLOCK_H
#define SAGA_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t saga_now_ms(void);       /* milliseconds since the Unix epoch */
int64_t saga_monotonic_us(void); /* for measuring durations */

/* RFC 3339 UTC with milliseconds, e.g. 2026-11-24T22:39:04.123Z.
 * Returns buf; an empty string if it does not fit. */
char *saga_format_time(int64_t ms, char *buf, size_t len);

/* Parses what saga_format_time writes (and "Z"/"+00:00" forms without
 * fraction). Returns 0 or SAGA_EPARSE. */
int saga_parse_time(const char *s, int64_t *ms_out);

/* Any RFC 3339 time: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), 'T'
 * and 'Z' in either case, a real calendar date from 1970; milliseconds
 * kept. Returns 0 or SAGA_EPARSE. */
int saga_parse_rfc3339(const char *s, int64_t *ms_out);

/* Durations as in definitions: "250ms", "10s", "5m", "1h" (also "1.5s").
 * Returns 0 or SAGA_EPARSE. */
int saga_parse_duration(const char *s, int64_t *ms_out);

#endif
