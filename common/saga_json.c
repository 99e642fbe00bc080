#include "saga_json.h"
#include "saga_error.h"

#include <stdio.h>

json_t *saga_json_parse(const char *buf, size_t len, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v && err) snprintf(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    return v;
}

const char *saga_json_str(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int saga_json_int(const json_t *obj, const char *key, long long *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return SAGA_ENOTFOUND;
    if (!json_is_integer(v)) return SAGA_EINVAL;
    *out = json_integer_value(v);
    return 0;
}

char *saga_json_dump(const json_t *value) {
    /* jansson allocates with the functions installed by saga_alloc. */
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}
