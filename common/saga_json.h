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
