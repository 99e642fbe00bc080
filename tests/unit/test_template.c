/* Payload templates: typed single templates, interpolation, the "$${"
 * escape, missing values, array indexes, recursion, scanning, and
 * allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "template.h"

#include <stdlib.h>
#include <string.h>

static json_t *ctx_new(void) {
    json_error_t jerr;
    json_t *ctx = json_loads("{\"input\":{\"order_id\":\"o-1\",\"amount\":42,\"price\":9.5,\"vip\":true,"
                             "\"note\":null,\"items\":[{\"sku\":\"A\",\"qty\":2},{\"sku\":\"B\",\"qty\":1}],"
                             "\"addr\":{\"city\":\"Oslo\"}},"
                             "\"steps\":{\"charge_payment\":{\"output\":{\"payment_id\":\"p-9\"}}},"
                             "\"saga\":{\"id\":\"s-1\",\"definition\":\"order_fulfillment\"}}",
                             0, &jerr);
    assert_non_null(ctx);
    return ctx;
}

/* Renders the JSON text tmpl_text; compares with expected JSON text. */
static void expect_render(const char *tmpl_text, const char *expected_text) {
    json_error_t jerr;
    json_t *tmpl = json_loads(tmpl_text, JSON_DECODE_ANY, &jerr);
    json_t *expected = json_loads(expected_text, JSON_DECODE_ANY, &jerr);
    assert_non_null(tmpl);
    assert_non_null(expected);
    json_t *ctx = ctx_new();
    char err[256] = "";
    json_t *out = saga_template_render(tmpl, ctx, err, sizeof err);
    if (!out) fail_msg("render failed: %s", err);
    if (!json_equal(out, expected)) {
        char *got = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, expected %s", got, expected_text);
    }
    json_decref(out);
    json_decref(ctx);
    json_decref(tmpl);
    json_decref(expected);
}

static void expect_render_error(const char *tmpl_text, const char *message) {
    json_error_t jerr;
    json_t *tmpl = json_loads(tmpl_text, JSON_DECODE_ANY, &jerr);
    assert_non_null(tmpl);
    json_t *ctx = ctx_new();
    char err[256] = "";
    json_t *out = saga_template_render(tmpl, ctx, err, sizeof err);
    assert_null(out);
    assert_string_equal(err, message);
    json_decref(ctx);
    json_decref(tmpl);
}

static void test_exact_keeps_type(void **state) {
    (void)state;
    expect_render("\"${input.amount}\"", "42");
    expect_render("\"${input.price}\"", "9.5");
    expect_render("\"${input.vip}\"", "true");
    expect_render("\"${input.note}\"", "null");
    expect_render("\"${input.order_id}\"", "\"o-1\"");
    expect_render("\"${input.items}\"", "[{\"sku\":\"A\",\"qty\":2},{\"sku\":\"B\",\"qty\":1}]");
    expect_render("\"${input.addr}\"", "{\"city\":\"Oslo\"}");
}

static void test_whole_roots(void **state) {
    (void)state;
    expect_render("\"${saga.id}\"", "\"s-1\"");
    expect_render("\"${saga.definition}\"", "\"order_fulfillment\"");
    expect_render("\"${steps.charge_payment.output.payment_id}\"", "\"p-9\"");
    expect_render("\"${steps.charge_payment.output}\"", "{\"payment_id\":\"p-9\"}");
}

static void test_interpolation(void **state) {
    (void)state;
    expect_render("\"order ${input.order_id} for ${input.amount} EUR\"", "\"order o-1 for 42 EUR\"");
    expect_render("\"vip=${input.vip} note=${input.note}\"", "\"vip=true note=null\"");
    expect_render("\"a=${input.addr}\"", "\"a={\\\"city\\\":\\\"Oslo\\\"}\"");
    expect_render("\"${input.order_id}${saga.id}\"", "\"o-1s-1\"");
    expect_render("\"x${input.order_id}\"", "\"xo-1\"");
}

static void test_escape(void **state) {
    (void)state;
    expect_render("\"$${input.order_id}\"", "\"${input.order_id}\"");
    expect_render("\"cost: $${price} and ${input.amount}\"", "\"cost: ${price} and 42\"");
    expect_render("\"$ and $$ and {}\"", "\"$ and $$ and {}\"");
    expect_render("\"50$\"", "\"50$\"");
}

static void test_array_index(void **state) {
    (void)state;
    expect_render("\"${input.items.0.sku}\"", "\"A\"");
    expect_render("\"${input.items.1.qty}\"", "1");
    expect_render("\"second: ${input.items.1.sku}\"", "\"second: B\"");
    expect_render_error("\"${input.items.2.sku}\"", "${input.items.2.sku}: no such value");
    expect_render_error("\"${input.items.01}\"", "${input.items.01}: no such value");
    expect_render_error("\"${input.items.x}\"", "${input.items.x}: no such value");
}

static void test_missing(void **state) {
    (void)state;
    expect_render_error("\"${input.customer}\"", "${input.customer}: no such value");
    expect_render_error("\"hello ${input.customer}!\"", "${input.customer}: no such value");
    expect_render_error("{\"a\":{\"b\":[\"${steps.notify.output}\"]}}", "${steps.notify.output}: no such value");
    expect_render_error("\"${input.order_id.x}\"", "${input.order_id.x}: no such value");
    expect_render_error("\"${input.}\"", "${input.}: no such value");
    expect_render_error("\"${}\"", "${}: no such value");
    expect_render_error("\"open ${input.a\"", "${input.a: unterminated '${'");
}

static void test_recursive_values_not_keys(void **state) {
    (void)state;
    expect_render("{\"${input.order_id}\":\"${input.order_id}\",\"n\":[1,\"${input.amount}\",[\"${saga.id}\"]],"
                  "\"k\":{\"deep\":\"id ${saga.id}\"},\"plain\":7,\"t\":true}",
                  "{\"${input.order_id}\":\"o-1\",\"n\":[1,42,[\"s-1\"]],\"k\":{\"deep\":\"id s-1\"},"
                  "\"plain\":7,\"t\":true}");
    expect_render("{}", "{}");
    expect_render("[]", "[]");
}

static void test_result_is_independent_copy(void **state) {
    (void)state;
    json_t *ctx = ctx_new();
    json_t *tmpl = json_string("${input.addr}");
    char err[128];
    json_t *out = saga_template_render(tmpl, ctx, err, sizeof err);
    assert_non_null(out);
    json_object_set_new(out, "city", json_string("Bergen"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(ctx, "input"), "addr"), "city")),
                        "Oslo");
    json_decref(out);
    json_decref(tmpl);
    json_decref(ctx);
}

/* ${PATH:-JSON}: the default, a JSON literal, when PATH has no value
 * (absent or null); a whole-string template keeps the default's type. */
static void test_default(void **state) {
    (void)state;
    /* the value wins when present */
    expect_render("\"${input.amount:-0}\"", "42");
    expect_render("\"${steps.charge_payment.output.payment_id:-null}\"", "\"p-9\"");
    /* absent: the default, with its JSON type */
    expect_render("\"${steps.reserve.output.booking_id:-null}\"", "null");
    expect_render("\"${input.customer:-\\\"anonymous\\\"}\"", "\"anonymous\"");
    expect_render("\"${input.missing:-0}\"", "0");
    expect_render("\"${input.missing:--1.5}\"", "-1.5");
    expect_render("\"${input.missing:-true}\"", "true");
    expect_render("\"${input.missing:-{}}\"", "{}");
    expect_render("\"${input.missing:-[]}\"", "[]");
    expect_render("\"${input.missing:-{\\\"a\\\":[1,{\\\"b\\\":\\\"}\\\"}]}}\"", "{\"a\":[1,{\"b\":\"}\"}]}");
    expect_render("\"${input.missing:- null }\"", "null");
    /* null counts as no value */
    expect_render("\"${input.note:-\\\"n/a\\\"}\"", "\"n/a\"");
    expect_render("\"${input.note}\"", "null");
    /* interpolated: strings as-is, others as compact JSON */
    expect_render("\"ref ${steps.x.output.ref:-\\\"none\\\"} / ${input.missing:-{}} / ${input.amount:-0}\"",
                  "\"ref none / {} / 42\"");
    expect_render("\"a ${input.missing:-\\\"}{\\\"} b\"", "\"a }{ b\"");
    expect_render("\"a ${input.missing:-\\\"\\\\\\\"}\\\"} b\"", "\"a \\\"} b\"");
    /* a default is not a template: it is not rendered again */
    expect_render("\"${input.missing:-\\\"${input.amount}\\\"}\"", "\"${input.amount}\"");
    /* no default, or a bad one */
    expect_render_error("\"${input.missing:-}\"", "${input.missing:-}: the default is not a JSON value");
    expect_render_error("\"${input.missing:-nul}\"", "${input.missing:-nul}: the default is not a JSON value");
    expect_render_error("\"${input.missing:-1 2}\"", "${input.missing:-1 2}: the default is not a JSON value");
    expect_render_error("\"${input.missing:-{\"", "${input.missing:-{: unterminated '${'");
    expect_render_error("\"x ${input.missing:-\\\"}\"", "${input.missing:-\"}: unterminated '${'");
    expect_render_error("\"${input.missing:\"", "${input.missing:: unterminated '${'");
    /* ":" without "-" is part of the path */
    expect_render_error("\"${input.missing:0}\"", "${input.missing:0}: no such value");
}

typedef struct {
    char seen[8][64];
    int n;
} seen_t;

static int collect(const char *expr, void *user) {
    seen_t *s = user;
    if (s->n < 8) strncpy(s->seen[s->n], expr, 63);
    s->n++;
    return 0;
}

static void test_scan(void **state) {
    (void)state;
    json_error_t jerr;
    json_t *tmpl = json_loads("{\"a\":\"${input.x}\",\"b\":[\"n ${saga.id} $${no} ${steps.s.output.y}\"],"
                              "\"${key}\":1}",
                              0, &jerr);
    seen_t s = {0};
    char err[128] = "";
    assert_int_equal(saga_template_scan(tmpl, collect, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.seen[0], "input.x");
    assert_string_equal(s.seen[1], "saga.id");
    assert_string_equal(s.seen[2], "steps.s.output.y");
    json_decref(tmpl);
}

static void test_scan_unterminated(void **state) {
    (void)state;
    json_t *tmpl = json_pack("{s:[s]}", "a", "ok ${input.x} then ${input.y");
    seen_t s = {0};
    char err[128] = "";
    assert_int_equal(saga_template_scan(tmpl, collect, &s, err, sizeof err), SAGA_EPARSE);
    assert_string_equal(err, "${input.y: unterminated '${'");
    json_decref(tmpl);
}

typedef struct {
    char seen[8][64];
    int dflt[8];
    int n;
} seen_ref_t;

static int collect_ref(const saga_template_ref_t *ref, void *user) {
    seen_ref_t *s = user;
    if (s->n < 8) {
        strncpy(s->seen[s->n], ref->path, 63);
        s->dflt[s->n] = ref->has_default;
    }
    s->n++;
    return 0;
}

static void test_scan_defaults(void **state) {
    (void)state;
    json_t *tmpl = json_pack("{s:s, s:[s]}", "a", "${steps.a.output.id:-null}",
                             "b", "x ${input.y} ${input.z:-{\"k\":\"}\"}} ${saga.id:-\"s\"}");
    seen_ref_t s = {0};
    char err[128] = "";
    assert_int_equal(saga_template_scan_refs(tmpl, collect_ref, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.seen[0], "steps.a.output.id");
    assert_int_equal(s.dflt[0], 1);
    assert_string_equal(s.seen[1], "input.y");
    assert_int_equal(s.dflt[1], 0);
    assert_string_equal(s.seen[2], "input.z");
    assert_int_equal(s.dflt[2], 1);
    assert_string_equal(s.seen[3], "saga.id");
    assert_int_equal(s.dflt[3], 1);
    /* the plain scan sees the path without the default */
    seen_t p = {0};
    assert_int_equal(saga_template_scan(tmpl, collect, &p, err, sizeof err), 0);
    assert_int_equal(p.n, 4);
    assert_string_equal(p.seen[0], "steps.a.output.id");
    json_decref(tmpl);
    /* a bad default is refused at load time */
    tmpl = json_string("${input.z:-nope}");
    assert_int_equal(saga_template_scan_refs(tmpl, collect_ref, &s, err, sizeof err), SAGA_EPARSE);
    assert_string_equal(err, "${input.z:-nope}: the default is not a JSON value (null, true, 0, \"text\", [], {})");
    json_decref(tmpl);
}

/* Every allocation failure either ends in "out of memory" or (a failure
 * the default's parsing absorbs: the fast parser falls back on jansson)
 * in the right result; never in a wrong value or a leak. */
static void test_default_alloc_failure(void **state) {
    (void)state;
    json_t *tmpl = json_pack("{s:s, s:s, s:s}", "a", "${input.missing:-{\"k\":[1.5,\"\u00e9\"]}}",
                             "b", "n ${input.missing:-[-1.25e3,\"\\u00e9x\"]} m", "c", "${input.note:-null}");
    json_t *ctx = ctx_new();
    char err[128] = "";
    json_t *want = saga_template_render(tmpl, ctx, err, sizeof err);
    assert_non_null(want);
    int failures = 0;
    for (long n = 0; n < 300; n++) {
        err[0] = '\0';
        saga_alloc_fail_after(n);
        json_t *out = saga_template_render(tmpl, ctx, err, sizeof err);
        saga_alloc_fail_after(-1);
        if (out) {
            assert_true(json_equal(out, want));
            json_decref(out);
            continue;
        }
        if (!strstr(err, "out of memory")) fail_msg("n=%ld: %s", n, err);
        failures++;
    }
    assert_true(failures > 3);
    json_decref(want);
    json_decref(ctx);
    json_decref(tmpl);
}

static int stop_at_second(const char *expr, void *user) {
    int *n = user;
    (void)expr;
    return ++*n == 2 ? SAGA_EINVAL : 0;
}

static void test_scan_visit_stops(void **state) {
    (void)state;
    json_t *tmpl = json_pack("[s,s,s]", "${a}", "${b}", "${c}");
    int n = 0;
    char err[64];
    assert_int_equal(saga_template_scan(tmpl, stop_at_second, &n, err, sizeof err), SAGA_EINVAL);
    assert_int_equal(n, 2);
    json_decref(tmpl);
}

static void test_alloc_failure(void **state) {
    (void)state;
    json_error_t jerr;
    json_t *tmpl = json_loads("{\"a\":\"${input.items}\",\"b\":[\"order ${input.order_id} ${input.addr} $${x}\"],"
                              "\"c\":5}",
                              0, &jerr);
    json_t *ctx = ctx_new();
    int failures = 0;
    for (long n = 0; n < 10000; n++) {
        char err[128] = "";
        saga_alloc_fail_after(n);
        json_t *out = saga_template_render(tmpl, ctx, err, sizeof err);
        saga_alloc_fail_after(-1);
        if (out) {
            json_decref(out);
            break;
        }
        assert_non_null(strstr(err, "out of memory"));
        failures++;
    }
    assert_true(failures > 5);
    json_decref(ctx);
    json_decref(tmpl);
}

static int setup(void **state) {
    (void)state;
    saga_alloc_install_jansson();
    return 0;
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_keeps_type),
        cmocka_unit_test(test_whole_roots),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_array_index),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_recursive_values_not_keys),
        cmocka_unit_test(test_result_is_independent_copy),
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_scan_defaults),
        cmocka_unit_test(test_default_alloc_failure),
        cmocka_unit_test(test_scan_unterminated),
        cmocka_unit_test(test_scan_visit_stops),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("template", tests, setup, NULL);
}
