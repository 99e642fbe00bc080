/* Definition checks that read templates: the payload templates' roots and
 * step references, and the search attributes (definition.h). Pure. */
#include "definition.h"
#include "definition_internal.h"
#include "template.h"

#include "saga_error.h"
#include "saga_utf8.h"

#include <stdio.h>
#include <string.h>

/* ---- templates ---- */

static int visit_expr(const saga_template_ref_t *ref, void *user) {
    tmpl_check_t *t = user;
    const char *expr = ref->path;
    const char *segs[8];
    size_t lens[8];
    int n = 0;
    const char *p = expr;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0) {
            def_add_err(t->errs, t->at->s, "${%.*s}: empty path segment", saga_utf8_prefix(expr, 100), expr);
            return 0;
        }
        if (n < 8) { segs[n] = p; lens[n] = len; }
        n++;
        if (!dot) break;
        p = dot + 1;
    }
#define SEG_IS(i, lit) (lens[i] == strlen(lit) && strncmp(segs[i], lit, lens[i]) == 0)
    if (SEG_IS(0, "input")) return 0;
    if (t->search && !SEG_IS(0, "saga")) {
        def_add_err(t->errs, t->at->s,
                    "${%.*s}: a search attribute is set when the saga starts, from ${input...} and ${saga...} only",
                    saga_utf8_prefix(expr, 100), expr);
        return 0;
    }
    if (SEG_IS(0, "saga")) {
        if (n != 2 || !(SEG_IS(1, "id") || SEG_IS(1, "definition")))
            def_add_err(t->errs, t->at->s, "${%.*s}: saga has only 'id' and 'definition'", saga_utf8_prefix(expr, 100), expr);
        return 0;
    }
    if (SEG_IS(0, "steps")) {
        if (n < 3 || !SEG_IS(2, "output")) {
            def_add_err(t->errs, t->at->s, "${%.*s}: must be ${steps.NAME.output} or ${steps.NAME.output.PATH}", saga_utf8_prefix(expr, 100), expr);
            return 0;
        }
        char name[SAGA_NAME_MAX];
        size_t len = lens[1] < sizeof name ? lens[1] : sizeof name - 1;
        memcpy(name, segs[1], len);
        name[len] = '\0';
        int j = saga_definition_step_index(t->def, name);
        if (j < 0) {
            def_add_err(t->errs, t->at->s, "${%.*s}: unknown step '%s'", saga_utf8_prefix(expr, 100), expr, name);
        } else if (t->compensation && j == t->step) {
            /* The compensation carries the action's output, which is absent
             * when the outcome is unknown (a timeout): without a default
             * the compensation could never be rendered. */
            if (!ref->has_default && !t->errs->stored)
                def_add_err(t->errs, t->at->s,
                        "compensation reads its own step's output without a default "
                        "(${%.*s} has no value after a timeout: write ${%.*s:-null})",
                        saga_utf8_prefix(expr, 100), expr, saga_utf8_prefix(expr, 100), expr);
        } else if (!(t->ancestors & ((uint64_t)1 << j))) {
            def_add_err(t->errs, t->at->s,
                    "${%.*s}: step '%s' does not run before '%s' (it must be reached through 'after')", saga_utf8_prefix(expr, 100), expr, name, t->def->steps[t->step].name);
        }
        return 0;
    }
    def_add_err(t->errs, t->at->s, "${%.*s}: unknown root '%.*s' (expected input, steps or saga)", saga_utf8_prefix(expr, 100), expr,
            (int)saga_utf8_prefix_n(segs[0], lens[0], 60), segs[0]);
#undef SEG_IS
    return 0;
}

void def_check_templates(const json_t *v, const ptr_t *at, tmpl_check_t *t) {
    if (json_is_string(v)) {
        char err[200];
        t->at = at;
        int rc = saga_template_scan_refs(v, visit_expr, t, err, sizeof err);
        if (rc == SAGA_ENOMEM) def_add_err(t->errs, "", "out of memory");
        else if (rc != 0) def_add_err(t->errs, at->s, "%s", err);
    } else if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            ptr_t p = def_ptr_key(at, key);
            def_check_templates(val, &p, t);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) {
            ptr_t p = def_ptr_idx(at, i);
            def_check_templates(val, &p, t);
        }
    }
}

/* ---- search attributes ---- */

void def_decode_search(saga_definition_t *def, const json_t *json, saga_def_errors_t *errs) {
    const json_t *search = json_object_get(json, "search");
    if (!search) return;
    const ptr_t root = {""};
    ptr_t at = def_ptr_key(&root, "search");
    if (!json_is_object(search)) {
        def_add_err(errs, at.s, "must be an object of NAME: TEMPLATE, not %s", def_type_name(search));
        return;
    }
    if (json_object_size(search) > SAGA_MAX_SEARCH) {
        def_add_err(errs, at.s, "has %zu attributes; at most %d are allowed", json_object_size(search),
                    SAGA_MAX_SEARCH);
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)search, key, v) {
        ptr_t p = def_ptr_key(&at, key);
        if (!saga_search_name_ok(key, strlen(key))) {
            def_add_err(errs, p.s,
                        "'%.*s' is not a search attribute name (a letter, then letters, digits or '_'; at most %d)",
                        saga_utf8_prefix(key, 80), key, SAGA_SEARCH_NAME_MAX);
            continue;
        }
        if (!json_is_string(v)) {
            def_add_err(errs, p.s, "must be a template string such as \"${input.%s}\", not %s", key,
                        def_type_name(v));
            continue;
        }
        tmpl_check_t t = {.def = def, .step = -1, .at = &p, .errs = errs, .search = true};
        def_check_templates(v, &p, &t);
        if (def->search_count < SAGA_MAX_SEARCH) {
            saga_search_def_t *s = &def->search[def->search_count++];
            snprintf(s->name, sizeof s->name, "%s", key);
        }
    }
}
