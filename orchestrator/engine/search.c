/* Search attributes of a saga: names, and their values rendered from the
 * definition's templates when the saga starts (definition.h). Pure. */
#include "definition.h"
#include "template.h"

#include <string.h>

#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_utf8.h"

bool saga_search_name_ok(const char *name, size_t len) {
    if (len == 0 || len > SAGA_SEARCH_NAME_MAX) return false;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'))) return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

json_t *saga_search_render(const saga_definition_t *def, const char *saga_id, const json_t *input) {
    if (!def || def->search_count == 0) return NULL;
    json_t *ctx = json_pack("{s:O, s:{}, s:{s:s, s:s}}", "input", input ? input : json_null(), "steps", "saga", "id",
                            saga_id, "definition", def->name);
    json_t *out = ctx ? json_object() : NULL;
    for (int i = 0; out && i < def->search_count; i++) {
        char err[200], value[SAGA_SEARCH_VALUE_MAX + 1];
        json_t *v = saga_template_render(def->search[i].tmpl, ctx, err, sizeof err);
        if (!v || json_is_null(v)) { /* no value: the attribute is not set */
            json_decref(v);
            continue;
        }
        if (json_is_string(v)) {
            saga_utf8_copy(value, sizeof value, json_string_value(v));
        } else {
            char *text = saga_json_dump(v);
            saga_utf8_copy(value, sizeof value, text ? text : "");
            saga_free(text);
        }
        json_decref(v);
        if (json_object_set_new(out, def->search[i].name, json_string(value))) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(ctx);
    return out;
}
