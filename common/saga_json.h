/* jansson helpers used across the project. */
#ifndef SAGA_JSON_H
#define SAGA_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Parses bytes (not NUL-terminated) as one JSON value. On error returns
 * NULL and writes "line L, column C: reason" into err, in ASCII (bytes of
 * the input quoted in the reason become '?'). Caller decrefs. */
json_t *saga_json_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Borrowed string member, or NULL when absent or not a string. */
const char *saga_json_str(const json_t *obj, const char *key);

/* Integer member into *out; 0, or SAGA_ENOTFOUND / SAGA_EINVAL. */
int saga_json_int(const json_t *obj, const char *key, long long *out);

/* Compact serialisation (object keys in insertion order); caller frees
 * with saga_free. NULL on allocation failure. Reals are written in their
 * shortest round-trip form (saga_json_format_real). */
char *saga_json_dump(const json_t *value);

/* Writes v in the shortest form that strtod reads back as exactly v (the
 * first of %.15g, %.16g, %.17g that round-trips), as jansson spells reals:
 * always a '.' or an exponent ("1.0", "1e300", "-0.0", "1e-7"). len must be
 * at least 32. Returns the length, or -1 for NaN and infinities. */
int saga_json_format_real(double v, char *buf, size_t len);

/* A JSON text writer, for a record built from rows without a json_t tree
 * (the changelog encoder): the caller writes the structure ({, "key":, ",")
 * with saga_json_buf_raw and the values with the helpers, which write what
 * saga_json_dump writes for the same value. Errors are sticky: after the
 * first, every append is a no-op and saga_json_buf_finish reports it.
 * Zero-initialise ({0}); saga_json_buf_finish or saga_json_buf_free ends it. */
typedef struct {
    char *buf;
    size_t len, cap;
    int fallback; /* 0 ok; 1 invalid content (saga_json_dump: hand the value to jansson); -1 out of memory */
} saga_json_buf_t;

/* Makes room for n more bytes up front (appends grow the buffer anyway). */
void saga_json_buf_reserve(saga_json_buf_t *b, size_t n);

/* Appends n bytes as they are (structure, or text known to be JSON). */
void saga_json_buf_raw(saga_json_buf_t *b, const char *s, size_t n);

/* Appends s[0..n) as a JSON string: quoted and escaped; invalid UTF-8 is an
 * error (SAGA_EPARSE). NUL bytes are written as \u0000. */
void saga_json_buf_string(saga_json_buf_t *b, const char *s, size_t n);

/* Appends v as a JSON integer (as jansson's "%lld"). */
void saga_json_buf_int(saga_json_buf_t *b, long long v);

/* Appends s[0..n), one JSON value in text form (a column sagad wrote with
 * saga_json_dump), as it is, after checking its syntax (saga_json_valid):
 * SAGA_EPARSE (also recorded in b) when it is not one JSON value, else 0
 * (also after an earlier error, appending nothing). */
int saga_json_buf_json(saga_json_buf_t *b, const char *s, size_t n);

/* 0, SAGA_ENOMEM or SAGA_EPARSE: the first error of the appends so far. */
int saga_json_buf_error(const saga_json_buf_t *b);

/* The text written, NUL-terminated (caller frees with saga_free), its
 * length in *len; the buffer is reset. NULL after an error (the buffer is
 * freed; saga_json_buf_error said which before the call). */
char *saga_json_buf_finish(saga_json_buf_t *b, size_t *len);

/* Frees what b holds and resets it. */
void saga_json_buf_free(saga_json_buf_t *b);

/* 1 when s[0..n) is exactly one JSON value (RFC 8259 syntax, blanks around
 * it allowed, nesting at most 2048 deep), else 0. Syntax only: unlike
 * saga_json_parse it does not refuse duplicate keys, lone surrogate escapes
 * or numbers out of range. No allocation. */
int saga_json_valid(const char *s, size_t n);

/* A flat object of plain strings, such as the outbox's headers column, read
 * without building a json_t: {"k":"v",...} with no blanks, escapes or
 * control bytes. Fills pairs (pointing into text) and returns their count;
 * -1 when text is anything else (the caller then parses it with jansson). */
typedef struct {
    const char *key, *value;
    size_t key_len, value_len;
} saga_json_pair_t;
int saga_json_flat_object(const char *text, saga_json_pair_t *pairs, int max);

#endif
