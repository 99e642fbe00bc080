/* Cutting UTF-8 text on character boundaries.
 *
 * Texts quoted in error messages, stored in fixed buffers or cut to a
 * length are cut on a character boundary, never inside a UTF-8 sequence:
 * the cut text goes into JSON (events, replies, dead-letter headers, the
 * admin API), which refuses a broken sequence or shows it as '?'. Every
 * such cut goes through these. Pure, no allocation. */
#ifndef SAGA_UTF8_H
#define SAGA_UTF8_H

#include <stddef.h>

/* The length of the longest prefix of s[0..len) of at most max bytes that
 * does not end inside a UTF-8 character (len when it fits). */
size_t saga_utf8_prefix_n(const char *s, size_t len, size_t max);

/* As saga_utf8_prefix_n for a NUL-terminated s (NULL: 0), as an int for
 * "%.*s": snprintf(buf, n, "'%.*s'", saga_utf8_prefix(s, 64), s). */
int saga_utf8_prefix(const char *s, size_t max);

/* Copies src (NULL: "") into dst (size bytes, NUL-terminated), cut on a
 * character boundary when it does not fit. Returns dst. */
char *saga_utf8_copy(char *dst, size_t size, const char *src);

/* Drops the incomplete UTF-8 sequence a cut (snprintf into a buffer too
 * short) left at the end of s; the text before it is assumed valid. */
void saga_utf8_trim_cut(char *s);

#endif
