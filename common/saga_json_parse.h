/* The fast path of saga_json_parse (see saga_json_parse.c). */
#ifndef SAGA_JSON_PARSE_H
#define SAGA_JSON_PARSE_H

#include <jansson.h>
#include <stddef.h>

/* The value in buf, or NULL when buf holds anything this parser leaves to
 * jansson: invalid JSON, reals, non-ASCII bytes, integers of 19 digits or
 * more, keys of 256 bytes or more, nesting deeper than 1024. */
json_t *saga_json_parse_fast(const char *buf, size_t len);

#endif
