/* libFuzzer target: the template engine (scripts/fuzz, docs/FUZZING.md).
 * The input is parsed as JSON (any value) and used as a template tree; if
 * it is not JSON, the bytes (when valid UTF-8) are one template string.
 * Each is rendered against a fixed context and scanned. Checks:
 *
 * - render returns a value or an error message (UTF-8), never both or
 *   neither;
 * - an unterminated "${" or a default that is not JSON, found by scan,
 *   makes render fail too;
 * - when scan succeeds, render fails only with "...: no such value", and
 *   never when every template has a default (${PATH:-JSON});
 * - both scans see the same templates;
 * - a tree whose strings contain no '$' renders to an equal tree;
 * - render never changes the shape: object stays object with the same
 *   keys, array stays array with the same length;
 * - what it renders is what sagad publishes (saga_json_dump: reals in
 *   their shortest round-trip form, issue 13): it reads back equal and is
 *   never longer than jansson's %.17g text, so a re-encoded command is no
 *   larger than its input (the message size limit is checked on it). */
#include "template.h"

#include "saga_alloc.h"
#include "saga_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char context_text[] =
    "{\"input\": {\"order_id\": \"o-1\", \"amount\": 42, \"price\": 9.5, \"ok\": true, \"none\": null,"
    "            \"tenth\": 0.1, \"weights\": [0.1, 0.2, 0.30000000000000004, 1e300, -0.0, 5e-324],"
    "            \"items\": [{\"sku\": \"a\", \"qty\": 1}, {\"sku\": \"b\", \"qty\": 2}],"
    "            \"nested\": {\"a\": {\"b\": [[1, 2], {\"c\": \"${input.order_id}\"}]}},"
    "            \"empty\": \"\", \"dollar\": \"$${x}\", \"dot.key\": 1, \"\": \"blank\"},"
    " \"steps\": {\"a\": {\"output\": {\"id\": \"p-1\", \"n\": [1, 2, 3]}},"
    "            \"b\": {\"output\": null}, \"c\": {\"output\": \"text\"}},"
    " \"saga\": {\"id\": \"s-1\", \"definition\": \"order_fulfillment\"}}";

static json_t *context;

static int count_expr(const char *expr, void *user) {
    CHECK(expr != NULL);
    (*(size_t *)user)++;
    return 0;
}

static int count_ref(const saga_template_ref_t *ref, void *user) {
    CHECK(ref != NULL && ref->path != NULL);
    CHECK(strstr(ref->path, ":-") == NULL); /* the path stops at the default */
    size_t *n = user;
    n[0]++;
    if (ref->has_default) n[1]++;
    return 0;
}

static int has_dollar(const json_t *v) {
    if (json_is_string(v)) return memchr(json_string_value(v), '$', json_string_length(v)) != NULL;
    const char *key;
    json_t *val;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, val)
            if (has_dollar(val)) return 1;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, val)
            if (has_dollar(val)) return 1;
    }
    return 0;
}

static void check_shape(const json_t *tmpl, const json_t *out) {
    if (json_is_object(tmpl)) {
        CHECK(json_is_object(out));
        CHECK(json_object_size(out) == json_object_size(tmpl));
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)tmpl, key, val) {
            json_t *o = json_object_get(out, key);
            CHECK(o != NULL);
            check_shape(val, o);
        }
    } else if (json_is_array(tmpl)) {
        CHECK(json_is_array(out));
        CHECK(json_array_size(out) == json_array_size(tmpl));
        for (size_t i = 0; i < json_array_size(tmpl); i++)
            check_shape(json_array_get(tmpl, i), json_array_get(out, i));
    } else if (!json_is_string(tmpl)) {
        CHECK(json_equal(tmpl, out));
    }
}

static void exercise(const json_t *tmpl) {
    char err[256] = "";
    size_t exprs = 0;
    char scan_err[256] = "";
    int scan_rc = saga_template_scan(tmpl, count_expr, &exprs, scan_err, sizeof scan_err);
    if (scan_rc != 0)
        CHECK(strstr(scan_err, "unterminated") != NULL || strstr(scan_err, "the default is not a JSON value") != NULL);
    size_t refs[2] = {0, 0};
    char refs_err[256] = "";
    int refs_rc = saga_template_scan_refs(tmpl, count_ref, refs, refs_err, sizeof refs_err);
    CHECK(refs_rc == scan_rc);
    if (scan_rc == 0) CHECK(refs[0] == exprs);

    json_t *out = saga_template_render(tmpl, context, err, sizeof err);
    if (out) {
        char *ours = saga_json_dump(out);
        char *theirs = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        CHECK(ours != NULL && theirs != NULL);
        CHECK(strlen(ours) <= strlen(theirs));
        json_t *back = json_loads(ours, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        CHECK(back != NULL && json_equal(back, out));
        json_decref(back);
        saga_free(ours);
        saga_free(theirs);
        CHECK(scan_rc == 0);
        check_shape(tmpl, out);
        if (!has_dollar(tmpl)) CHECK(json_equal(tmpl, out));
        json_decref(out);
    } else {
        CHECK(err[0] != '\0');
        json_t *as_json = json_string(err); /* the error goes into JSON: UTF-8 */
        CHECK(as_json != NULL);
        json_decref(as_json);
        if (scan_rc == 0) {
            size_t n = strlen(err), m = strlen(": no such value");
            CHECK(n >= m && strcmp(err + n - m, ": no such value") == 0);
            CHECK(refs[1] < refs[0]); /* a template without a default failed */
        }
    }
    /* no visitor and a NULL error buffer are allowed too */
    (void)saga_template_scan(tmpl, NULL, NULL, NULL, 0);
    json_t *again = saga_template_render(tmpl, context, NULL, 0);
    json_decref(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!context) {
        context = json_loads(context_text, 0, NULL);
        CHECK(context != NULL);
    }
    json_t *tmpl = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!tmpl) tmpl = json_stringn((const char *)data, size); /* NULL unless valid UTF-8 */
    if (!tmpl) return 0;
    exercise(tmpl);
    json_decref(tmpl);
    return 0;
}
