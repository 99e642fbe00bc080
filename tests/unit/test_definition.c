/* Saga definition loader: typed values, defaults, every error class with
 * its JSON pointer and message, directory loading, hash, registry, and
 * allocation failure. Fixtures come from $SAGA_SOURCE_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "definition.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_sha256.h"
#include "saga_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static char *fixture_path(const char *rel) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    assert_non_null(src);
    size_t n = strlen(src) + strlen(rel) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", src, rel);
    return p;
}

static char *read_fixture(const char *rel, size_t *len) {
    char *path = fixture_path(rel);
    char *text = saga_read_file(path, len);
    if (!text) fail_msg("cannot read %s", path);
    free(path);
    return text;
}

static saga_definition_t *parse_str(const char *text, saga_def_errors_t *errs) {
    memset(errs, 0, sizeof *errs);
    return saga_definition_parse(text, strlen(text), errs);
}

static saga_definition_t *parse_fixture(const char *rel, saga_def_errors_t *errs) {
    size_t len = 0;
    char *text = read_fixture(rel, &len);
    memset(errs, 0, sizeof *errs);
    saga_definition_t *def = saga_definition_parse(text, len, errs);
    saga_free(text);
    return def;
}

static void dump_errors(const saga_def_errors_t *errs) {
    for (int i = 0; i < errs->count && i < 32; i++)
        fprintf(stderr, "  [%d] %s: %s\n", i, errs->items[i].pointer, errs->items[i].message);
}

/* Asserts one error with exactly this pointer and message. */
static void expect_error(const saga_def_errors_t *errs, const char *pointer, const char *message) {
    for (int i = 0; i < errs->count && i < 32; i++)
        if (strcmp(errs->items[i].pointer, pointer) == 0 && strcmp(errs->items[i].message, message) == 0)
            return;
    dump_errors(errs);
    fail_msg("no error '%s: %s'", pointer, message);
}

/* A one-step definition with `step_extra` spliced into the step object
 * and `saga_extra` into the saga object. */
static saga_definition_t *one_step(const char *saga_extra, const char *step_extra, saga_def_errors_t *errs) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"name\":\"s\",\"version\":1%s%s,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"%s%s}]}",
             *saga_extra ? "," : "", saga_extra, *step_extra ? "," : "", step_extra);
    return parse_str(text, errs);
}

/* Expects the one-step definition to fail with exactly one error. */
static void expect_only_error(const char *saga_extra, const char *step_extra, const char *pointer,
                              const char *message) {
    saga_def_errors_t errs;
    saga_definition_t *def = one_step(saga_extra, step_extra, &errs);
    if (def) saga_definition_free(&def);
    if (errs.count != 1) dump_errors(&errs);
    assert_int_equal(errs.count, 1);
    assert_null(def);
    expect_error(&errs, pointer, message);
}

/* ---- the example ---- */

static void test_example_loads(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "order_fulfillment");
    assert_int_equal(def->version, 1);
    assert_int_equal(def->timeout_ms, 5 * 60 * 1000);
    assert_true(strlen(def->description) > 0);
    assert_int_equal(def->step_count, 4);
    assert_string_equal(def->steps[0].name, "create_order");
    assert_string_equal(def->steps[0].topic, "order.commands");
    assert_string_equal(def->steps[0].action, "order.create");
    assert_string_equal(def->steps[0].compensation, "order.cancel");
    assert_string_equal(def->steps[3].compensation, "");
    assert_int_equal(saga_definition_step_index(def, "charge_payment"), 2);
    assert_int_equal(saga_definition_step_index(def, "nope"), -1);
    assert_int_equal(strlen(def->hash), 64);
    assert_non_null(def->source);
    saga_definition_free(&def);
    assert_null(def);
}

static void test_example_defaults_and_merge(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    /* defaults.retry applies to every step ... */
    const saga_retry_policy_t *r0 = &def->steps[0].retry;
    assert_int_equal(r0->max_attempts, 5);
    assert_int_equal(r0->initial_backoff_ms, 100);
    assert_true(r0->multiplier == 2.0);
    assert_int_equal(r0->max_backoff_ms, 10000);
    assert_int_equal(r0->jitter, SAGA_JITTER_FULL);
    /* ... and a partial step retry merges over it */
    const saga_retry_policy_t *r2 = &def->steps[2].retry;
    assert_int_equal(r2->max_attempts, 3);
    assert_int_equal(r2->initial_backoff_ms, 100);
    assert_int_equal(r2->max_backoff_ms, 10000);
    /* compensation retry: built-in defaults */
    const saga_retry_policy_t *c = &def->steps[1].compensation_retry;
    assert_int_equal(c->max_attempts, 10);
    assert_int_equal(c->initial_backoff_ms, 200);
    assert_true(c->multiplier == 2.0);
    assert_int_equal(c->max_backoff_ms, 30000);
    assert_int_equal(c->jitter, SAGA_JITTER_FULL);
    for (int i = 0; i < 4; i++) assert_int_equal(def->steps[i].timeout_ms, 10000);
    saga_definition_free(&def);
}

static void test_example_after_defaults_to_previous(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    assert_int_equal(def->steps[0].after_count, 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(def->steps[i].after_count, 1);
        assert_int_equal(def->steps[i].after[0], i - 1);
    }
    saga_definition_free(&def);
}

static void test_example_payloads(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    assert_true(json_is_object(def->steps[0].payload));
    assert_string_equal(json_string_value(json_object_get(def->steps[0].payload, "order_id")),
                        "${input.order_id}");
    assert_null(def->steps[0].compensation_payload);
    saga_definition_free(&def);
}

static void test_builtin_defaults(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/good/minimal.json", &errs);
    assert_non_null(def);
    const saga_step_def_t *s = &def->steps[0];
    assert_int_equal(def->timeout_ms, 0);
    assert_string_equal(def->description, "");
    assert_int_equal(s->timeout_ms, 10000);
    assert_int_equal(s->retry.max_attempts, 3);
    assert_int_equal(s->retry.initial_backoff_ms, 100);
    assert_true(s->retry.multiplier == 2.0);
    assert_int_equal(s->retry.max_backoff_ms, 10000);
    assert_int_equal(s->retry.jitter, SAGA_JITTER_FULL);
    assert_int_equal(s->compensation_retry.max_attempts, 10);
    assert_int_equal(s->compensation_retry.max_backoff_ms, 30000);
    assert_true(json_is_object(s->payload));
    assert_int_equal(json_object_size(s->payload), 0);
    assert_null(s->compensation_payload);
    assert_string_equal(s->compensation, "");
    saga_definition_free(&def);
}

static void test_parallel_steps(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/good/parallel.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "travel.booking");
    assert_int_equal(def->version, 2);
    assert_int_equal(def->timeout_ms, 30 * 60 * 1000);
    assert_int_equal(def->steps[1].after_count, 0); /* explicit [] */
    assert_int_equal(def->steps[2].after_count, 2);
    assert_int_equal(def->steps[2].after[0], 0);
    assert_int_equal(def->steps[2].after[1], 1);
    assert_int_equal(def->steps[0].timeout_ms, 20000);
    assert_int_equal(def->steps[1].timeout_ms, 60000);
    /* defaults.retry {max_attempts 4} merges over the built-in policy */
    assert_int_equal(def->steps[0].retry.max_attempts, 4);
    assert_int_equal(def->steps[0].retry.initial_backoff_ms, 100);
    /* step retry merges over that */
    assert_int_equal(def->steps[1].retry.max_attempts, 4);
    assert_int_equal(def->steps[1].retry.initial_backoff_ms, 1000);
    assert_int_equal(def->steps[1].retry.max_backoff_ms, 60000);
    assert_true(def->steps[1].retry.multiplier == 1.5);
    assert_int_equal(def->steps[1].retry.jitter, SAGA_JITTER_NONE);
    assert_int_equal(def->steps[2].compensation_retry.jitter, SAGA_JITTER_NONE);
    assert_int_equal(def->steps[2].compensation_retry.max_attempts, 10);
    assert_non_null(def->steps[0].compensation_payload);
    saga_definition_free(&def);
}

/* sagas/trip_booking.json: two steps in parallel, a third after both. */
static void test_trip_booking_example(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/trip_booking.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "trip_booking");
    assert_int_equal(def->version, 2); /* 2: the compensation payloads' defaults (issue 13.5) */
    assert_int_equal(def->timeout_ms, 10 * 60 * 1000);
    assert_int_equal(def->step_count, 3);
    assert_string_equal(def->steps[0].name, "reserve_flight");
    assert_string_equal(def->steps[0].topic, "flight.commands");
    assert_string_equal(def->steps[1].topic, "hotel.commands");
    assert_string_equal(def->steps[2].topic, "payment.commands");
    /* reserve_flight and reserve_hotel start with the saga */
    assert_int_equal(def->steps[0].after_count, 0);
    assert_int_equal(def->steps[1].after_count, 0);
    assert_int_equal(def->steps[2].after_count, 2);
    assert_int_equal(def->steps[2].after[0], 0);
    assert_int_equal(def->steps[2].after[1], 1);
    for (int i = 0; i < 3; i++) assert_true(strlen(def->steps[i].compensation) > 0);
    assert_non_null(def->steps[0].compensation_payload);
    assert_non_null(def->steps[1].compensation_payload);
    assert_null(def->steps[2].compensation_payload);
    /* timeouts and merged retry policies */
    assert_int_equal(def->steps[0].timeout_ms, 15000);
    assert_int_equal(def->steps[1].timeout_ms, 30000);
    assert_int_equal(def->steps[0].retry.max_attempts, 4);
    assert_int_equal(def->steps[2].retry.max_attempts, 3);
    assert_int_equal(def->steps[2].retry.initial_backoff_ms, 200);
    assert_int_equal(def->steps[2].retry.max_backoff_ms, 5000);
    assert_int_equal(def->steps[2].compensation_retry.max_attempts, 20);
    assert_int_equal(def->steps[2].compensation_retry.initial_backoff_ms, 200);
    assert_int_equal(def->steps[2].compensation_retry.max_backoff_ms, 60000);
    saga_definition_free(&def);
}

/* ---- error classes ---- */

static void test_err_unknown_fields_all_levels(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/unknown_fields.json", &errs);
    assert_null(def);
    assert_int_equal(errs.count, 3);
    expect_error(&errs, "/timout", "unknown field 'timout'");
    expect_error(&errs, "/defaults/retry/retyr", "unknown field 'retyr'");
    expect_error(&errs, "/steps/0/payloads", "unknown field 'payloads'");
}

static void test_err_types_all_reported(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/types.json", &errs);
    assert_null(def);
    expect_error(&errs, "/name", "may contain only lowercase letters, digits, '_', '.' and '-'");
    expect_error(&errs, "/version", "must be an integer, not a string");
    expect_error(&errs, "/steps/0/topic", "must be a string, not an integer");
    expect_error(&errs, "/steps/0/payload", "must be an object, not an array");
    expect_error(&errs, "/steps/0/timeout",
                 "must be a duration string like \"250ms\", \"10s\", \"5m\" or \"1h\", not an integer");
    expect_error(&errs, "/steps/0/retry/max_attempts", "must be at least 1");
    expect_error(&errs, "/steps/0/retry/multiplier", "must be at least 1");
    expect_error(&errs, "/steps/0/retry/jitter", "must be one of \"full\", \"none\"");
    expect_error(&errs, "/steps/0/retry/max_backoff", "must be at least initial_backoff (5s)");
    assert_int_equal(errs.count, 9);
}

static void test_err_not_an_object(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("[1,2]", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "", "must be an object, not an array");
}

static void test_err_missing_required(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"steps\":[{}]}", &errs));
    expect_error(&errs, "", "missing required field 'name'");
    expect_error(&errs, "", "missing required field 'version'");
    expect_error(&errs, "/steps/0", "missing required field 'name'");
    expect_error(&errs, "/steps/0", "missing required field 'topic'");
    expect_error(&errs, "/steps/0", "missing required field 'action'");
    assert_int_equal(errs.count, 5);
    assert_null(parse_str("{\"name\":\"x\",\"version\":1}", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "", "missing required field 'steps'");
}

static void test_err_version(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":0,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/version", "must be at least 1");
    assert_null(parse_str("{\"name\":\"x\",\"version\":1.5,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    expect_error(&errs, "/version", "must be an integer, not a number");
}

static void test_err_name_length(void **state) {
    (void)state;
    char name[200];
    memset(name, 'a', 128);
    name[128] = '\0';
    char extra[300];
    snprintf(extra, sizeof extra, "\"description\":\"d\"");
    char text[1024];
    saga_def_errors_t errs;
    snprintf(text, sizeof text,
             "{\"name\":\"%s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}", name);
    assert_null(parse_str(text, &errs));
    expect_error(&errs, "/name", "must be at most 127 characters");
    name[127] = '\0'; /* 127 is fine */
    snprintf(text, sizeof text,
             "{\"name\":\"%s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}", name);
    saga_definition_t *def = parse_str(text, &errs);
    assert_non_null(def);
    assert_int_equal(strlen(def->name), 127);
    saga_definition_free(&def);
}

static void test_err_steps_count(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":[]}", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps", "must have at least 1 step");

    char *text = malloc(65 * 64 + 100);
    assert_non_null(text);
    strcpy(text, "{\"name\":\"x\",\"version\":1,\"steps\":[");
    for (int i = 0; i < 65; i++)
        sprintf(text + strlen(text), "%s{\"name\":\"s%d\",\"topic\":\"t\",\"action\":\"x\"}", i ? "," : "", i);
    strcat(text, "]}");
    assert_null(parse_str(text, &errs));
    expect_error(&errs, "/steps", "must have at most 64 steps");
    /* 64 steps are fine: cut after the 64th */
    char *cut = strstr(text, ",{\"name\":\"s64\"");
    assert_non_null(cut);
    strcpy(cut, "]}");
    saga_definition_t *def = parse_str(text, &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_int_equal(def->step_count, 64);
    assert_int_equal(def->steps[63].after[0], 62);
    saga_definition_free(&def);
    free(text);
}

static void test_err_durations(void **state) {
    (void)state;
    expect_only_error("", "\"timeout\":\"10\"", "/steps/0/timeout",
                      "must be a duration like \"250ms\", \"10s\", \"5m\" or \"1h\" (got \"10\")");
    expect_only_error("", "\"timeout\":\"1e3s\"", "/steps/0/timeout",
                      "must be a duration like \"250ms\", \"10s\", \"5m\" or \"1h\" (got \"1e3s\")");
    expect_only_error("", "\"timeout\":\"0s\"", "/steps/0/timeout", "must be greater than 0");
    expect_only_error("", "\"timeout\":\"25h\"", "/steps/0/timeout", "must be at most 24h");
    expect_only_error("\"timeout\":\"721h\"", "", "/timeout", "must be at most 720h");
    expect_only_error("\"defaults\":{\"timeout\":\"0ms\"}", "", "/defaults/timeout", "must be greater than 0");
}

static void test_durations_accepted(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = one_step("\"timeout\":\"0s\"", "\"timeout\":\"1.5s\"", &errs);
    assert_non_null(def);
    assert_int_equal(def->timeout_ms, 0); /* "0s": no deadline */
    assert_int_equal(def->steps[0].timeout_ms, 1500);
    saga_definition_free(&def);
    def = one_step("\"timeout\":\"720h\"", "\"timeout\":\"24h\"", &errs);
    assert_non_null(def);
    assert_int_equal(def->timeout_ms, 720LL * 3600 * 1000);
    assert_int_equal(def->steps[0].timeout_ms, 24LL * 3600 * 1000);
    saga_definition_free(&def);
}

static void test_err_retry_inherited_backoff(void **state) {
    (void)state;
    /* initial_backoff above the inherited max_backoff (10s) */
    expect_only_error("", "\"retry\":{\"initial_backoff\":\"20s\"}", "/steps/0/retry/initial_backoff",
                      "must be at most max_backoff (10s, inherited)");
    expect_only_error("", "\"compensation_retry\":{\"max_backoff\":\"100ms\"}",
                      "/steps/0/compensation_retry/max_backoff", "must be at least initial_backoff (200ms, inherited)");
    expect_only_error("", "\"retry\":{\"max_attempts\":1.0}", "/steps/0/retry/max_attempts",
                      "must be an integer, not a number");
    expect_only_error("", "\"retry\":5", "/steps/0/retry", "must be an object, not an integer");
}

static void test_err_duplicate_step_names(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps/2/name", "duplicate step name 'a' (also /steps/0)");
}

static void test_err_graph(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/graph.json", &errs);
    assert_null(def);
    expect_error(&errs, "/steps/3/name", "duplicate step name 'a' (also /steps/0)");
    expect_error(&errs, "/steps/1/after/0", "a step cannot run after itself");
    expect_error(&errs, "/steps/1/after/1", "unknown step 'nope'");
    expect_error(&errs, "/steps/2/after", "dependency cycle: a -> c -> a");
    assert_int_equal(errs.count, 4);
}

static void test_err_after_shape(void **state) {
    (void)state;
    expect_only_error("", "\"after\":\"x\"", "/steps/0/after", "must be an array of step names, not a string");
    expect_only_error("", "\"after\":[1]", "/steps/0/after/0", "must be a string, not an integer");
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\",\"after\":[\"a\",\"a\"]}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps/1/after/1", "duplicate entry 'a' (also /steps/1/after/0)");
}

static void test_after_forward_reference(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                                       "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\",\"after\":[\"b\"],"
                                       " \"payload\":{\"v\":\"${steps.b.output.v}\"}},"
                                       "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\",\"after\":[]}]}",
                                       &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_int_equal(def->steps[0].after_count, 1);
    assert_int_equal(def->steps[0].after[0], 1);
    saga_definition_free(&def);
}

static void test_err_templates(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/templates.json", &errs);
    assert_null(def);
    expect_error(&errs, "/steps/0/payload/x", "${inptu.a}: unknown root 'inptu' (expected input, steps or saga)");
    expect_error(&errs, "/steps/0/payload/y",
                 "${steps.b.output}: step 'b' does not run before 'a' (it must be reached through 'after')");
    expect_error(&errs, "/steps/0/payload/z", "${saga.name}: saga has only 'id' and 'definition'");
    expect_error(&errs, "/steps/0/payload/w/1",
                 "${steps.a.result}: must be ${steps.NAME.output} or ${steps.NAME.output.PATH}");
    expect_error(&errs, "/steps/0/payload/v", "${input.a: unterminated '${'");
    expect_error(&errs, "/steps/1/payload/q",
                 "${steps.a.output.id}: step 'a' does not run before 'b' (it must be reached through 'after')");
    expect_error(&errs, "/steps/1/payload/r", "${steps.zz.output}: unknown step 'zz'");
    /* compensation_payload may use its own step, with a default only */
    expect_error(&errs, "/steps/0/compensation_payload/mine",
                 "compensation reads its own step's output without a default "
                 "(${steps.a.output.id} has no value after a timeout: write ${steps.a.output.id:-null})");
    assert_int_equal(errs.count, 8);
}

/* Issue 13.5: a compensation reading its own step's output must give a
 * default, or it could never run after a timeout (the output is absent). */
static void test_compensation_own_output_needs_default(void **state) {
    (void)state;
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref}\"}",
                      "/steps/0/compensation_payload/ref",
                      "compensation reads its own step's output without a default "
                      "(${steps.a.output.ref} has no value after a timeout: write ${steps.a.output.ref:-null})");
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"all\":[\"x ${steps.a.output}\"]}",
                      "/steps/0/compensation_payload/all/0",
                      "compensation reads its own step's output without a default "
                      "(${steps.a.output} has no value after a timeout: write ${steps.a.output:-null})");
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref:-nul}\"}",
                      "/steps/0/compensation_payload/ref",
                      "${steps.a.output.ref:-nul}: the default is not a JSON value (null, true, 0, \"text\", [], {})");
    const char *ok[] = {
        "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref:-null}\"}",
        "\"compensation\":\"undo\",\"compensation_payload\":{\"r\":\"id ${steps.a.output.ref:-\\\"?\\\"}\",\"o\":\"${steps.a.output:-{}}\"}",
        "\"compensation\":\"undo\",\"compensation_payload\":{\"i\":\"${input.x}\"}",
        "\"payload\":{\"i\":\"${input.x:-0}\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        saga_def_errors_t errs;
        saga_definition_t *def = one_step("", ok[i], &errs);
        if (!def) dump_errors(&errs);
        assert_non_null(def);
        saga_definition_free(&def);
    }
    /* A definition stored by an earlier sagad (sagas may run on it) still
     * loads from the database as it did then. */
    const char *old = "{\"name\":\"s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\","
                      "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref}\"}}]}";
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    assert_null(saga_definition_parse(old, strlen(old), &errs));
    memset(&errs, 0, sizeof errs);
    errs.stored = true;
    saga_definition_t *def = saga_definition_parse(old, strlen(old), &errs);
    assert_non_null(def);
    saga_definition_free(&def);
}

static void test_err_template_self_in_payload(void **state) {
    (void)state;
    expect_only_error("", "\"payload\":{\"me\":\"${steps.a.output}\"}", "/steps/0/payload/me",
                      "${steps.a.output}: step 'a' does not run before 'a' (it must be reached through 'after')");
    expect_only_error("", "\"payload\":{\"e\":\"${input..x}\"}", "/steps/0/payload/e",
                      "${input..x}: empty path segment");
}

static void test_template_transitive_ancestor_ok(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                                       "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                                       "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\"},"
                                       "{\"name\":\"c\",\"topic\":\"t\",\"action\":\"x\","
                                       " \"payload\":{\"v\":[\"${steps.a.output.v}\"],\"k\":{\"a\":\"$${x}\"}}}]}",
                                       &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    saga_definition_free(&def);
}

static void test_err_compensation_payload_without_compensation(void **state) {
    (void)state;
    expect_only_error("", "\"compensation_payload\":{}", "/steps/0/compensation_payload",
                      "given but the step has no 'compensation'");
}

static void test_err_pointer_escaping(void **state) {
    (void)state;
    expect_only_error("", "\"a/b~c\":1", "/steps/0/a~1b~0c", "unknown field 'a/b~c'");
}

static void test_err_step_names_and_topic(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a.b\",\"topic\":\"bad topic\",\"action\":\"\"}]}",
                          &errs));
    expect_error(&errs, "/steps/0/name", "may contain only lowercase letters, digits, '_' and '-'");
    expect_error(&errs, "/steps/0/topic", "may contain only letters, digits, '_', '.' and '-'");
    expect_error(&errs, "/steps/0/action", "must not be empty");
    assert_int_equal(errs.count, 3);
}

static void test_err_many_errors_counted(void **state) {
    (void)state;
    /* 40 unknown fields: all counted, the first 32 kept */
    char text[4096] = "{\"name\":\"x\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]";
    for (int i = 0; i < 40; i++) sprintf(text + strlen(text), ",\"f%02d\":1", i);
    strcat(text, "}");
    saga_def_errors_t errs;
    assert_null(parse_str(text, &errs));
    assert_int_equal(errs.count, 40);
    assert_string_equal(errs.items[31].pointer, "/f31");
}

static void test_syntax_error_line_column(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_fixture("tests/fixtures/definitions/mixed/c_syntax.json", &errs));
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 3);
    assert_int_equal(errs.items[0].column, 13); /* the "}" */
    assert_string_equal(errs.items[0].pointer, "");
    assert_true(strlen(errs.items[0].message) > 0);
}

static void test_syntax_duplicate_keys(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\n\"name\":\"y\"}", &errs));
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 2);
    assert_non_null(strstr(errs.items[0].message, "duplicate"));
}

/* ---- hash ---- */

static void test_hash_stable_across_key_order_and_spacing(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *a = parse_str("{\"name\":\"h\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}", &errs);
    saga_definition_t *b = parse_str("{ \"steps\" : [ {\"action\":\"x\", \"topic\":\"t\", \"name\":\"a\"} ],\n"
                                     "  \"version\": 1, \"name\": \"h\" }", &errs);
    saga_definition_t *c = parse_str("{\"name\":\"h\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"y\"}]}", &errs);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_string_equal(a->hash, b->hash);
    assert_string_not_equal(a->hash, c->hash);
    saga_definition_free(&a);
    saga_definition_free(&b);
    saga_definition_free(&c);
}

static void test_hash_is_sha256_of_canonical_json(void **state) {
    (void)state;
    /* canonical form: {"name":"h","steps":[{"action":"x","name":"a","topic":"t"}],"version":1}
     * sha256 computed independently (Python hashlib). */
    saga_def_errors_t errs;
    saga_definition_t *a = parse_str("{\"version\":1,\"name\":\"h\",\"steps\":[{\"topic\":\"t\",\"name\":\"a\",\"action\":\"x\"}]}", &errs);
    assert_non_null(a);
    assert_string_equal(a->hash, "bb39586ef90beaf2ff9776adfdbc300eb6fef89cb777658a5aaca778d5bd1d5c");
    saga_definition_free(&a);
}

static void test_sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    saga_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    saga_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    saga_sha256_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char many_a[1000];
    memset(many_a, 'a', sizeof many_a);
    saga_sha256_hex(many_a, sizeof many_a, hex);
    assert_string_equal(hex, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

static void test_sha256_padding_boundaries(void **state) {
    (void)state;
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "576a1bf8d4478657e6dc4af9398544765c2a92cde28478b019235cfed315fc09"},
        {56, "9b20501dfd1d99161c257950f3444f3e49230c351c5c8e0943ef369f85f5205d"},
        {63, "30b345906b493f06f69444b6521113511c242f30e29840462950035043682f1e"},
        {64, "d8bc63b4fc1156e5e7d95a418b9bf54cd3174bedbc2db40f74895349b229b3c0"},
        {65, "1ee23b0fbcaecc1aff4a9e8f1645f35ab2c8e13609cd73b68df8b5e3f63ce073"},
        {119, "7a6589821178918ca8d9edaba5abfc1e9b2669564f4469b66885379c1530b2c8"},
        {120, "655250427d56b1b0eeb8497d21428704273458a01772d6881b65c0abac0f8a98"},
    };
    unsigned char data[128];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)((i * 7) & 255);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char hex[65];
        saga_sha256_hex(data, cases[c].n, hex);
        assert_string_equal(hex, cases[c].hex);
        /* the same through update() in uneven pieces */
        saga_sha256_ctx_t ctx;
        uint8_t d[32];
        saga_sha256_init(&ctx);
        size_t off = 0, piece = 1;
        while (off < cases[c].n) {
            size_t take = piece < cases[c].n - off ? piece : cases[c].n - off;
            saga_sha256_update(&ctx, data + off, take);
            off += take;
            piece = piece * 3 + 1;
        }
        saga_sha256_final(&ctx, d);
        char hex2[65];
        for (int i = 0; i < 32; i++) snprintf(hex2 + 2 * i, 3, "%02x", d[i]);
        assert_string_equal(hex2, cases[c].hex);
    }
}

static void test_from_json_does_not_take_ownership(void **state) {
    (void)state;
    json_t *j = json_pack("{s:s,s:i,s:[{s:s,s:s,s:s}]}", "name", "j", "version", 3, "steps", "name", "a",
                          "topic", "t", "action", "x");
    assert_non_null(j);
    saga_def_errors_t errs = {0};
    saga_definition_t *def = saga_definition_from_json(j, &errs);
    assert_non_null(def);
    assert_int_equal(def->version, 3);
    json_object_set_new(j, "name", json_string("changed"));
    assert_string_equal(json_string_value(json_object_get(def->source, "name")), "j");
    saga_definition_free(&def);
    json_decref(j);
}

/* ---- registry ---- */

static saga_definition_t *def_nv(const char *name, int version, const char *action) {
    char text[512];
    snprintf(text, sizeof text,
             "{\"name\":\"%s\",\"version\":%d,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"%s\"}]}",
             name, version, action);
    saga_def_errors_t errs;
    saga_definition_t *d = parse_str(text, &errs);
    assert_non_null(d);
    return d;
}

static void test_registry_versions(void **state) {
    (void)state;
    saga_registry_t *reg = saga_registry_new();
    assert_non_null(reg);
    assert_int_equal(saga_registry_add(reg, def_nv("o", 2, "x")), 0);
    assert_int_equal(saga_registry_add(reg, def_nv("o", 1, "x")), 0);
    assert_int_equal(saga_registry_add(reg, def_nv("o", 3, "x")), 0);
    assert_int_equal(saga_registry_add(reg, def_nv("p", 7, "x")), 0);
    assert_int_equal(saga_registry_count(reg), 4);
    assert_int_equal(saga_registry_get(reg, "o", 0)->version, 3);
    assert_int_equal(saga_registry_get(reg, "o", 1)->version, 1);
    assert_int_equal(saga_registry_get(reg, "p", 0)->version, 7);
    assert_null(saga_registry_get(reg, "o", 4));
    assert_null(saga_registry_get(reg, "q", 0));
    assert_non_null(saga_registry_at(reg, 3));
    assert_null(saga_registry_at(reg, 4));
    assert_null(saga_registry_at(reg, -1));
    saga_registry_free(&reg);
    assert_null(reg);
}

static void test_registry_same_version(void **state) {
    (void)state;
    saga_registry_t *reg = saga_registry_new();
    assert_int_equal(saga_registry_add(reg, def_nv("o", 1, "x")), 0);
    assert_int_equal(saga_registry_add(reg, def_nv("o", 1, "x")), 0); /* same content: fine */
    assert_int_equal(saga_registry_count(reg), 1);
    assert_int_equal(saga_registry_add(reg, def_nv("o", 1, "y")), SAGA_EEXISTS);
    assert_int_equal(saga_registry_count(reg), 1);
    assert_string_equal(saga_registry_get(reg, "o", 1)->steps[0].action, "x");
    saga_registry_free(&reg);
}

static void test_registry_grows(void **state) {
    (void)state;
    saga_registry_t *reg = saga_registry_new();
    for (int v = 1; v <= 40; v++) assert_int_equal(saga_registry_add(reg, def_nv("g", v, "x")), 0);
    assert_int_equal(saga_registry_count(reg), 40);
    assert_int_equal(saga_registry_get(reg, "g", 0)->version, 40);
    assert_int_equal(saga_registry_get(reg, "g", 17)->version, 17);
    saga_registry_free(&reg);
}

/* ---- directory ---- */

static void test_load_dir_mixed(void **state) {
    (void)state;
    char *dir = fixture_path("tests/fixtures/definitions/mixed");
    saga_registry_t *reg = saga_registry_new();
    char report[4096];
    int failed = saga_registry_load_dir(reg, dir, report, sizeof report);
    fprintf(stderr, "%s", report);
    assert_int_equal(failed, 3); /* b_bad, c_syntax, e_conflict */
    assert_int_equal(saga_registry_count(reg), 2);  /* alpha v1 (+ identical f), alpha v2 */
    assert_int_equal(saga_registry_get(reg, "alpha", 0)->version, 2);
    assert_string_equal(saga_registry_get(reg, "alpha", 1)->steps[0].action, "a.do");

    char line[1024];
    snprintf(line, sizeof line, "%s/b_bad.json:/version: must be at least 1\n", dir);
    assert_non_null(strstr(report, line));
    snprintf(line, sizeof line, "%s/b_bad.json:/steps/0/retyr: unknown field 'retyr'\n", dir);
    assert_non_null(strstr(report, line));
    snprintf(line, sizeof line, "%s/c_syntax.json:3:13: ", dir);
    assert_non_null(strstr(report, line));
    snprintf(line, sizeof line, "%s/e_conflict.json:/version: definition 'alpha' version 1 is already loaded", dir);
    assert_non_null(strstr(report, line));
    assert_null(strstr(report, "a_good"));
    assert_null(strstr(report, "README"));
    /* lines come in file-name order */
    assert_true(strstr(report, "b_bad") < strstr(report, "c_syntax"));
    assert_true(strstr(report, "c_syntax") < strstr(report, "e_conflict"));
    saga_registry_free(&reg);
    free(dir);
}

static void test_load_dir_good(void **state) {
    (void)state;
    char *dir = fixture_path("tests/fixtures/definitions/good");
    saga_registry_t *reg = saga_registry_new();
    char report[1024];
    assert_int_equal(saga_registry_load_dir(reg, dir, report, sizeof report), 0);
    assert_string_equal(report, "");
    assert_int_equal(saga_registry_count(reg), 2);
    assert_string_equal(saga_registry_at(reg, 0)->name, "minimal");      /* minimal.json */
    assert_string_equal(saga_registry_at(reg, 1)->name, "travel.booking"); /* parallel.json */
    saga_registry_free(&reg);
    free(dir);
}

static void test_load_dir_sagas(void **state) {
    (void)state;
    char *dir = fixture_path("sagas");
    saga_registry_t *reg = saga_registry_new();
    char report[1024];
    assert_int_equal(saga_registry_load_dir(reg, dir, report, sizeof report), 0);
    assert_non_null(saga_registry_get(reg, "order_fulfillment", 1));
    assert_non_null(saga_registry_get(reg, "trip_booking", 2));
    saga_registry_free(&reg);
    free(dir);
}

static void test_load_dir_missing(void **state) {
    (void)state;
    saga_registry_t *reg = saga_registry_new();
    char report[256];
    int rc = saga_registry_load_dir(reg, "/nonexistent/sagad-defs", report, sizeof report);
    assert_true(rc < 0);
    assert_non_null(strstr(report, "/nonexistent/sagad-defs: cannot open directory"));
    saga_registry_free(&reg);
}

static void test_load_dir_small_report_truncates(void **state) {
    (void)state;
    char *dir = fixture_path("tests/fixtures/definitions/mixed");
    saga_registry_t *reg = saga_registry_new();
    char report[16];
    memset(report, 'x', sizeof report);
    assert_int_equal(saga_registry_load_dir(reg, dir, report, sizeof report), 3);
    assert_true(strlen(report) < sizeof report);
    assert_int_equal(saga_registry_load_dir(reg, dir, NULL, 0), 3);
    saga_registry_free(&reg);
    free(dir);
}

/* ---- allocation failure ---- */

/* Failures are injected into saga_definition_from_json, not into jansson's
 * parser: jansson 2.14 ignores a failed buffer growth in its lexer and then
 * reads past the buffer (akheron/jansson#362), which no caller can handle. */
static void test_alloc_failure_from_json(void **state) {
    (void)state;
    size_t len = 0;
    char *text = read_fixture("tests/fixtures/definitions/good/parallel.json", &len);
    json_error_t jerr;
    json_t *json = json_loadb(text, len, 0, &jerr);
    assert_non_null(json);
    int failures = 0;
    for (long n = 0; n < 100000; n++) {
        saga_def_errors_t errs;
        memset(&errs, 0, sizeof errs);
        saga_alloc_fail_after(n);
        saga_definition_t *def = saga_definition_from_json(json, &errs);
        saga_alloc_fail_after(-1);
        if (def) { /* the injected failure came after the last allocation */
            assert_int_equal(errs.count, 0);
            saga_definition_free(&def);
            break;
        }
        assert_int_equal(errs.count, 1);
        assert_string_equal(errs.items[0].pointer, "");
        assert_string_equal(errs.items[0].message, "out of memory");
        failures++;
    }
    assert_true(failures > 10);
    json_decref(json);
    saga_free(text);
}

static void test_alloc_failure_parse_first(void **state) {
    (void)state;
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    const char *text = "{\"name\":\"x\"}";
    saga_alloc_fail_after(0); /* jansson's first allocation (the lexer) fails */
    saga_definition_t *def = saga_definition_parse(text, strlen(text), &errs);
    saga_alloc_fail_after(-1);
    assert_null(def);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].message, "out of memory");
    assert_int_equal(errs.items[0].line, 0);
}

static void test_alloc_failure_registry_and_dir(void **state) {
    (void)state;
    /* Every string of the mixed fixtures is shorter than jansson's first
     * lexer buffer (16 bytes), so the parser's own OOM bug (above) is not
     * reached; keep them that way. */
    char *dir = fixture_path("tests/fixtures/definitions/mixed");
    int done = 0;
    for (long n = 0; n < 100000 && !done; n++) {
        saga_alloc_fail_after(n);
        saga_registry_t *reg = saga_registry_new();
        char report[4096];
        int rc = reg ? saga_registry_load_dir(reg, dir, report, sizeof report) : SAGA_ENOMEM;
        saga_alloc_fail_after(-1);
        if (rc == 3 && saga_registry_count(reg) == 2 && !strstr(report, "out of memory")) done = 1;
        saga_registry_free(&reg);
    }
    assert_true(done);
    free(dir);
}

static int setup(void **state) {
    (void)state;
    saga_alloc_install_jansson();
    return 0;
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_defaults_and_merge),
        cmocka_unit_test(test_example_after_defaults_to_previous),
        cmocka_unit_test(test_example_payloads),
        cmocka_unit_test(test_builtin_defaults),
        cmocka_unit_test(test_parallel_steps),
        cmocka_unit_test(test_trip_booking_example),
        cmocka_unit_test(test_err_unknown_fields_all_levels),
        cmocka_unit_test(test_err_types_all_reported),
        cmocka_unit_test(test_err_not_an_object),
        cmocka_unit_test(test_err_missing_required),
        cmocka_unit_test(test_err_version),
        cmocka_unit_test(test_err_name_length),
        cmocka_unit_test(test_err_steps_count),
        cmocka_unit_test(test_err_durations),
        cmocka_unit_test(test_durations_accepted),
        cmocka_unit_test(test_err_retry_inherited_backoff),
        cmocka_unit_test(test_err_duplicate_step_names),
        cmocka_unit_test(test_err_graph),
        cmocka_unit_test(test_err_after_shape),
        cmocka_unit_test(test_after_forward_reference),
        cmocka_unit_test(test_err_templates),
        cmocka_unit_test(test_err_template_self_in_payload),
        cmocka_unit_test(test_compensation_own_output_needs_default),
        cmocka_unit_test(test_template_transitive_ancestor_ok),
        cmocka_unit_test(test_err_compensation_payload_without_compensation),
        cmocka_unit_test(test_err_pointer_escaping),
        cmocka_unit_test(test_err_step_names_and_topic),
        cmocka_unit_test(test_err_many_errors_counted),
        cmocka_unit_test(test_syntax_error_line_column),
        cmocka_unit_test(test_syntax_duplicate_keys),
        cmocka_unit_test(test_hash_stable_across_key_order_and_spacing),
        cmocka_unit_test(test_hash_is_sha256_of_canonical_json),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_padding_boundaries),
        cmocka_unit_test(test_from_json_does_not_take_ownership),
        cmocka_unit_test(test_registry_versions),
        cmocka_unit_test(test_registry_same_version),
        cmocka_unit_test(test_registry_grows),
        cmocka_unit_test(test_load_dir_mixed),
        cmocka_unit_test(test_load_dir_good),
        cmocka_unit_test(test_load_dir_sagas),
        cmocka_unit_test(test_load_dir_missing),
        cmocka_unit_test(test_load_dir_small_report_truncates),
        cmocka_unit_test(test_alloc_failure_from_json),
        cmocka_unit_test(test_alloc_failure_parse_first),
        cmocka_unit_test(test_alloc_failure_registry_and_dir),
    };
    return cmocka_run_group_tests_name("definition", tests, setup, NULL);
}
